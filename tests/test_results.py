"Result files: every table a notebook shows is a committed file in nbs/results with its command; no progress bars in saved outputs"
import json, re
from pathlib import Path
import pandas as pd, pytest
from textkit.experiments import read_results, save_results, results_dir

ROOT = Path(__file__).parent.parent
NBS = sorted((ROOT/'nbs').glob('**/*.ipynb'))
RESULTS = ROOT/'nbs'/'results'
NAME = r"'((?:lm|clf|t\d\d)_\w+)'"  # the result files' names: lm_*, clf_* (API notebooks), tNN_* (tutorial NN)

def _cells(kind='code'):
    for p in NBS:
        for c in json.loads(p.read_text())['cells']:
            if c['cell_type'] == kind: yield p, ''.join(c['source']), c

def test_every_file_read_or_written_by_a_notebook_is_committed():
    names = {(p.name, m) for p, s, _ in _cells() for m in re.findall(r"read_results\(" + NAME, s)}
    names |= {(p.name, re.search(NAME, s[i.start():]).group(1)) for p, s, _ in _cells() for i in re.finditer(r'save_results\(', s)
              if re.search(NAME, s[i.start():])}
    assert len(names) >= 20
    missing = sorted((nb, n) for nb, n in names if not (RESULTS/f'{n}.csv').is_file())
    assert not missing, missing

@pytest.mark.parametrize('path', sorted(RESULTS.glob('*.csv')), ids=lambda p: p.stem)
def test_result_file_says_its_command(path):
    df = pd.read_csv(path)
    assert df.columns[-1] == 'command' and df.command.notna().all() and len(df)
    assert all(c.startswith(('python bench/', 'nbdev-test ', 'TEXTKIT_FULL=1 nbdev-test ')) for c in df.command), df.command.unique()

def test_every_result_file_is_shown_by_a_cell():
    shown = {m for _, s, _ in _cells() for m in re.findall(r"read_results\(" + NAME, s)}
    assert not sorted(p.stem for p in RESULTS.glob('*.csv') if p.stem not in shown)

def test_slow_cells_that_write_a_table_are_followed_by_a_cell_that_shows_it():
    for p in NBS:
        cells = [c for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code']
        for i, c in enumerate(cells):
            s = ''.join(c['source'])
            if s.startswith('#| slow') and 'save_results' in s:
                name = re.search(NAME, s[s.index('save_results'):]).group(1)
                assert f"read_results('{name}')" in ''.join(cells[i+1]['source']), (p.name, name)

def test_round_trip(tmp_path):
    df = pd.DataFrame({'arch': ['rnn', 'gru'], 'perplexity': [5.43, 9.25], 'steps': [266, 96]})
    save_results(df, 'x', 'python bench/x.py', tmp_path)
    r = read_results('x', tmp_path)
    assert r.attrs['command'] == 'python bench/x.py' and r.equals(df)
    assert results_dir() == RESULTS or results_dir().resolve() == RESULTS.resolve()

def test_no_progress_bars_in_saved_outputs():
    bars = re.compile('━|█|<progress|progress-bar')
    hits = [(p.name, len(bars.findall(json.dumps(c.get('outputs', []), ensure_ascii=False)))) for p, _, c in _cells()]
    assert not [h for h in hits if h[1]], [h for h in hits if h[1]]
