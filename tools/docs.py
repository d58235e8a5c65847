"""Build the documentation site in _docs/ without Quarto: nbdev's processing, then Sphinx with MyST-NB.

Usage: python tools/docs.py [--pages GLOB] [--force]
  --pages GLOB   reprocess only the notebooks whose file name matches GLOB (e.g. '01_cells*'); the others keep
                 their last processed version (fast iteration on one page)
  --force        reprocess every notebook, ignoring nbdev's cache in _proc/

1. `nbdev.serve.proc_nbs` (what `nbdev-proc-nbs` runs, minus its attempt to install Quarto) writes the processed
   notebooks to _proc/: `show_doc` cells added after exported cells and executed, `#| hide` and exported cells
   removed, backticked names linked. textkit/_nbdev.py makes that step run only imports, exported cells and
   `show_doc`, so it needs no corpus and never trains: pages show the outputs saved in the notebooks. It runs with
   TEXTKIT_DATA unset, an empty TEXTKIT_CACHE and HTTP(S) proxies pointing at a closed local port, so any attempt
   to load a corpus or reach the network fails the build instead of passing unnoticed.
2. The processed notebooks are turned from Quarto's dialect into MyST-NB's (`quarto_to_myst`) in _build/docs-src/.
3. `sphinx-build` renders them with the configuration in tools/sphinx/ (MathJax served from the site) into
   _build/html/, copied to _docs/.
"""
import argparse, fnmatch, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import yaml

root = Path(__file__).resolve().parent.parent
nbs, proc, src, out = root/'nbs', root/'_proc', root/'_build'/'docs-src', root/'_docs'
site_url = 'https://textkit.github.io/textkit/'
_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def offline_env():
    "Environment for processing: no corpora, an empty cache, no network"
    env = dict(os.environ)
    env.pop('TEXTKIT_DATA', None)
    env['TEXTKIT_CACHE'] = tempfile.mkdtemp(prefix='textkit-docs-cache-')
    closed = 'http://127.0.0.1:9'  # the discard port: nothing listens, so every proxied request fails at once
    for k in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'): env[k] = closed
    env['no_proxy'] = env['NO_PROXY'] = ''
    env.setdefault('MPLBACKEND', 'Agg'); env.setdefault('OMP_NUM_THREADS', '1')
    return env

def process(pages='', force=False, n_workers=2):
    "nbdev's docs processing of nbs/ into _proc/, offline"
    code = ("import sys; from nbdev.serve import proc_nbs; "
            "proc_nbs(sys.argv[1], n_workers=int(sys.argv[2]), force=sys.argv[3]=='1', file_glob=sys.argv[4])")
    subprocess.run([sys.executable, '-c', code, str(nbs), str(n_workers), '1' if force else '0', pages],
                   cwd=root, env=offline_env(), check=True)

# Quarto -> MyST-NB
def directives(source):
    "Quarto cell options (`#| key: value` lines at the top of a cell) and the source without them"
    opts, lines = {}, source.splitlines()
    while lines and (m := _directive.match(lines[0])):
        opts[m.group(1)] = m.group(2) or 'true'; lines.pop(0)
    return opts, '\n'.join(lines)

def relative_links(text, depth):
    "Links to the published site become links within this site, from a page `depth` folders down"
    return text.replace(site_url, '../'*depth)

def page_name(nb_path, fm):
    "Page path as nbdev/Quarto names it: `output-file` beside the notebook (01_cells.ipynb -> cells)"
    rel = nb_path.relative_to(proc)
    name = Path(fm.get('output-file', rel.name)).stem
    return (rel.parent/name).as_posix()

def showdoc_markdown(md):
    "`show_doc` output as Markdown for Sphinx: an anchor named as nbdev links it, the heading, signature, docstring"
    md = re.sub(r'^---\s*\n', '', md.lstrip())  # Quarto's rule above each entry: CSS draws it instead
    src = re.search(r'\[source\]\(([^)]*)\)(\{[^}]*\})?\s*\n', md)
    if src: md = md.replace(src.group(0), '')
    h = re.search(r'^(#+)\s+(.+?)\s*$', md, re.M)
    if not h: return md
    name = h.group(2).strip('`')
    # Sphinx names the heading's section `make_id(name)`; nbdev links to `name.lower()`: add that id where it differs
    from docutils.nodes import make_id
    nid = f' id="{name.lower()}"' if make_id(name) != name.lower() else ''
    anchor = f'\n\n<span class="tk-doc"{nid} data-name="{name}"></span>\n'
    link = f'\n<a class="tk-source reference external" href="{src.group(1)}">source</a>\n' if src else ''
    return md[:h.end()] + anchor + link + md[h.end():]

def text(v): return ''.join(v) if isinstance(v, list) else v

def quarto_to_myst(nb, depth):
    "Rewrite a processed notebook's Quarto conventions as MyST-NB ones; returns the page title too"
    cells, title = [], None
    for c in nb['cells']:
        s = text(c.get('source', ''))
        if c['cell_type'] == 'raw' and s.startswith('---'):  # front matter: title and summary, as nbdev shows them
            fm = yaml.safe_load(s.strip().strip('-')) or {}
            title = fm.get('title', '')
            body = f"# {title}\n"
            if fm.get('description'): body += f"\n{{.tk-description}}\n{' '.join(str(fm['description']).split())}\n"
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': body}); continue
        if c['cell_type'] == 'markdown':
            if s.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            c['source'] = relative_links(s, depth); c.pop('attachments', None) if not c.get('attachments') else None
            cells.append(c); continue
        if c['cell_type'] != 'code': continue
        if 'source' not in c: continue  # removed by nbdev (exported or hidden cells)
        opts, body = directives(s)
        tags = set(c['metadata'].get('tags', []))
        if opts.get('include') == 'false': continue
        if opts.get('output') == 'asis':  # Quarto pastes the Markdown output as part of the page
            md = ''.join(text(o['data']['text/markdown']) for o in c.get('outputs', [])
                         if 'text/markdown' in o.get('data', {}))
            if 'show_doc' in body: md = showdoc_markdown(md)
            if opts.get('echo', 'true') != 'false': cells.append({**c, 'source': body, 'outputs': []})
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': relative_links(md, depth)}); continue
        if opts.get('echo') == 'false': tags.add('remove-input')
        if opts.get('output') == 'false': tags.add('remove-output')
        outputs = []
        for o in c.get('outputs', []):
            if 'data' in o:
                o['data'] = {k: v for k, v in o['data'].items() if not k.startswith('application/vnd.jupyter.widget')}
                if 'text/markdown' in o['data']: o['data']['text/markdown'] = relative_links(text(o['data']['text/markdown']), depth)
                if not o['data']: continue
            outputs.append(o)
        meta = {k: v for k, v in c['metadata'].items() if k not in ('execution', 'language')}
        if tags: meta['tags'] = sorted(tags)
        cells.append({**c, 'source': body, 'metadata': meta, 'outputs': outputs})
    for i, c in enumerate(cells): c.setdefault('id', f'tk-{i}')  # cells nbdev added have no id
    nb['cells'] = cells
    nb['metadata'].pop('widgets', None)
    return nb, title

def convert():
    "All processed notebooks -> _build/docs-src/, written only where changed so Sphinx rebuilds only those pages"
    pages, written = [], set()
    for f in sorted(proc.rglob('*.ipynb')):
        if any(p.startswith(('.', '_')) for p in f.relative_to(proc).parts): continue
        nb = json.loads(f.read_text(encoding='utf-8'))
        first = text(nb['cells'][0].get('source', '')) if nb['cells'] else ''
        fm = yaml.safe_load(first.strip().strip('-')) if first.startswith('---') else {}
        name = page_name(f, fm or {})
        nb, title = quarto_to_myst(nb, name.count('/'))
        pages.append((f.relative_to(proc).as_posix(), name, title))
        dest = src/f'{name}.ipynb'
        written.add(dest)
        if name == 'index': index_nb, index_dest = nb, dest  # written below, with the navigation
        else: _write_if_changed(dest, json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    # The index holds the navigation: API pages in notebook order, then the tutorials
    api = [n for f, n, t in pages if n != 'index' and '/' not in n]
    tuts = [n for f, n, t in pages if '/' in n]
    nav = '```{toctree}\n:hidden:\n:caption: API\n\n' + '\n'.join(api) + '\n```\n\n'
    nav += '```{toctree}\n:hidden:\n:caption: Tutoriales (en español)\n\n' + '\n'.join(tuts) + '\n```\n'
    index_nb['cells'].append({'cell_type': 'markdown', 'id': 'tk-nav', 'metadata': {}, 'source': nav})
    _write_if_changed(index_dest, json.dumps(index_nb, indent=1, ensure_ascii=False) + '\n')
    for f in src.rglob('*.ipynb'):  # pages whose notebook is gone
        if f not in written: f.unlink()
    (src/'pages.json').write_text(json.dumps(pages, indent=1, ensure_ascii=False))
    return pages

def _write_if_changed(p, s):
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists() or p.read_text(encoding='utf-8') != s: p.write_text(s, encoding='utf-8')

def mathjax():
    "MathJax 3 (PyPI's django-static-mathjax ships its files) copied into the site's static files"
    import mathjax as mj
    es5 = Path(mj.__file__).parent/'static'/'mathjax'/'es5'
    dest = src/'_static'/'mathjax'
    if (dest/'tex-chtml-full.js').exists(): return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5/'tex-chtml-full.js', dest)
    for d in ('output', 'ui', 'a11y', 'input'): shutil.copytree(es5/d, dest/d, dirs_exist_ok=True)

def sphinx():
    "Render _build/docs-src/ into _build/html/ (MyST-NB keeps its files beside it, in _build/), then copy it to _docs/"
    html = root/'_build'/'html'
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-c', str(root/'tools'/'sphinx'), '-j', '2', '-q',
           '--keep-going', '-d', str(root/'_build'/'doctrees'), str(src), str(html)]
    r = subprocess.run(cmd, cwd=root, env=offline_env())
    if r.returncode: sys.exit(f'sphinx-build failed ({r.returncode})')
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(html, out)

def main(pages='', force=False):
    t0 = time.time()
    process(pages, force); t1 = time.time()
    convert(); mathjax(); t2 = time.time()
    sphinx(); t3 = time.time()
    print(f'docs: nbdev processing {t1-t0:.0f} s, conversion {t2-t1:.0f} s, sphinx {t3-t2:.0f} s; '
          f'site in {out.relative_to(root)}/ (open {out.relative_to(root)}/index.html)')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pages', default='', help="notebook file-name glob to reprocess, e.g. '01_cells*'")
    ap.add_argument('--force', action='store_true', help='reprocess every notebook')
    a = ap.parse_args()
    main(a.pages, a.force)
