"""Remove fastprogress bars (HTML displays and console bar text) from the saved outputs of notebooks:
`python tools/strip_bars.py nbs/*.ipynb nbs/tutorials/*.ipynb` after `nbdev-test --save` (tests/test_results.py checks none are left)"""
import json, re, sys
from pathlib import Path
BAR = re.compile(r'█?[ \t]*\|[█\-]*\|[ \t]*\d+\.\d+% \[[^\]\n]*\][ \t]*')
def is_bar(o):
    h = ''.join(o.get('data', {}).get('text/html', ''))
    return o['output_type'] == 'display_data' and ('<progress' in h or 'table.fastprogress' in h)
def clean(t):
    out = []
    for line in t.split('\n'):
        if BAR.search(line) or '\r' in line:
            line = BAR.sub('', line.split('\r')[-1] if not BAR.search(line.split('\r')[-1]) else line).replace('\r', '')
            line = BAR.sub('', line)
            if not line.strip(): continue
            line = line.rstrip()
        out.append(line)
    out = [l.replace('█', '') for l in out if l.strip() != '█']   # what is left of a bar cut by a carriage return
    return '\n'.join(out)
for p in sys.argv[1:]:
    nb = json.loads(Path(p).read_text()); n = 0
    for c in nb['cells']:
        outs = []
        for o in c.get('outputs', []):
            if is_bar(o): n += 1; continue
            if o['output_type'] == 'stream':
                t = ''.join(o['text']); t2 = clean(t)
                if t2 != t: n += 1; o['text'] = t2.splitlines(keepends=True)
                if not t2.strip(): continue
            outs.append(o)
        if 'outputs' in c: c['outputs'] = outs
    Path(p).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); print(p, n, 'bar outputs removed')
