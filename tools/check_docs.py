"""Check the built docs site (_docs/) as a reader would, in headless Chromium driven by Selenium.

Usage: python tools/check_docs.py [--pages GLOB] [--shots/--no-shots]
  --pages GLOB   check only the pages whose path matches GLOB (e.g. 'cells.html', 'tutorials/*'), and only the
                 public names of the modules documented on those pages

Every page is served from a local HTTP server and opened in Debian's chromium (chromium-driver):
- the page loads without JavaScript console errors, and requests nothing outside the site;
- no request fails (missing image, script, style or font), every image is drawn, every internal link points to a
  page of the site and, with a fragment, to an element with that id;
- every name in a module's `__all__` appears on its API page: functions and classes as a `show_doc` entry with
  their signature and table of parameters, other names (constants) in code on that page; every exported function's entry is followed,
  before the next entry, by at least one code cell that shows its output (an example);
- the search page finds `LSTM`;
- screenshots of the home page, the `cells` page and a tutorial page with a plot go to _docs/screenshots/.
What is missing is listed, per page and per notebook, and makes the check fail (exit status 1).
"""
import argparse, ast, fnmatch, functools, http.server, json, re, sys, threading, time
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote

root = Path(__file__).resolve().parent.parent
site = root/'_docs'
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'

def serve(path):
    "A quiet HTTP server on a free local port, serving `path`"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f'http://127.0.0.1:{httpd.server_address[1]}/'

def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for p in (CHROMIUM, CHROMEDRIVER):
        if not Path(p).exists(): sys.exit(f"{p} not found: install Debian's browser with "
                                          "`apt-get update && apt-get install -y chromium chromium-driver`")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,1000',
              '--hide-scrollbars', '--no-first-run', '--disable-extensions', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--lang=en'):
        o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    return webdriver.Chrome(options=o, service=Service(CHROMEDRIVER))

# What the page tells about itself, computed in the browser once it has loaded (and MathJax has typeset)
PAGE_JS = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) ? MathJax.startup.promise : Promise.resolve();
ready.then(() => new Promise(r => setTimeout(r, 50))).then(() => {
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const images = [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  // API entries in page order, with the code cells that follow each one
  const entries = []; let cur = null;
  for (const el of document.querySelectorAll('span.tk-doc, div.cell')) {
    if (el.matches('span.tk-doc')) {
      // the entry's section holds the signature, its first code block outside a cell
      const sec = el.closest('section');
      const pre = sec ? sec.querySelector(':scope > div[class*="highlight"] pre') : null;
      const sig = pre ? pre.textContent : '';
      const table = sec ? [...sec.querySelectorAll('table')].some(t => !t.closest('div.cell')) : false;
      cur = {name: el.dataset.name, id: el.id, signature: sig, table: table, examples: 0};
      entries.push(cur);
    } else if (cur) {
      const inp = el.querySelector(':scope > div.cell_input');
      const out = el.querySelector(':scope > div.cell_output');
      if (inp && out && (out.textContent.trim() || out.querySelector('img'))) cur.examples++;
    }
  }
  const code = [...document.querySelectorAll('code, pre')].map(e => e.textContent).join('\n');
  const plots = document.querySelectorAll('div.cell_output img').length;
  const math = document.querySelectorAll('mjx-container').length;
  done({links, images, ids, entries, code, plots, math, title: document.title});
});
"""

def module_names():
    "{module: (names in `__all__`, names that are functions, names that are classes)} from textkit's generated modules"
    res = {}
    for f in sorted((root/'textkit').glob('*.py')):
        if f.name.startswith('_') or f.name == 'all.py': continue
        tree = ast.parse(f.read_text(encoding='utf-8'))
        names, funcs, classes = [], set(), set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == '__all__' for t in node.targets):
                names = ast.literal_eval(node.value)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): funcs.add(node.name)
            if isinstance(node, ast.ClassDef): classes.add(node.name)
        res[f.stem] = (names, funcs, classes)
    return res

def module_pages():
    "{module: (page, notebook)}: the page nbdev links a module's names to, and the notebook it comes from"
    from textkit._modidx import d
    res = {}
    for mod, syms in d['syms'].items():
        m = mod.split('.')[-1]
        pages = {v[0].split('#')[0] for v in syms.values()}
        if pages: res[m] = (sorted(pages)[0], None)
    for f in sorted((root/'nbs').glob('*.ipynb')):
        s = f.read_text(encoding='utf-8')
        if (m := re.search(r'#\|\s*default_exp\s+(\w+)', s)) and m.group(1) in res:
            res[m.group(1)] = (res[m.group(1)][0], f'nbs/{f.name}')
    return res

def check(pages_glob='', shots=True, allow_missing_examples=False):
    t0 = time.time()
    if not (site/'index.html').exists(): sys.exit('_docs/index.html not found: run `make docs` first')
    httpd, base = serve(site)
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html')
                   if not p.relative_to(site).parts[0].startswith(('_', 'screenshots')))
    chosen = [p for p in pages if fnmatch.fnmatch(p, pages_glob)] if pages_glob else pages
    if not chosen: sys.exit(f'no page matches {pages_glob!r}: pages are {pages}')
    problems, info = {}, {}
    add = lambda page, msg: problems.setdefault(page, []).append(msg)
    drv = browser()
    try:
        drv.set_script_timeout(30)
        for page in chosen:
            drv.get_log('performance'); drv.get_log('browser')  # forget the previous page's logs
            drv.get(base + page)
            info[page] = r = drv.execute_async_script(PAGE_JS)
            for e in drv.get_log('browser'):
                if e['level'] == 'SEVERE': add(page, f"console error: {e['message']}")
            urls = {}
            for e in drv.get_log('performance'):
                m = json.loads(e['message'])['message']
                p = m.get('params', {})
                if m['method'] == 'Network.requestWillBeSent':
                    url = urls[p['requestId']] = p['request']['url']
                    if not url.startswith((base, 'data:', 'blob:', 'about:')): add(page, f'request outside the site: {url}')
                elif m['method'] == 'Network.responseReceived' and p['response']['status'] >= 400:
                    add(page, f"HTTP {p['response']['status']}: {p['response']['url']}")
                elif m['method'] == 'Network.loadingFailed' and not p.get('canceled'):
                    add(page, f"failed to load ({p.get('errorText')}): {urls.get(p.get('requestId'), '?')}")
            for i in r['images']:
                if not i['ok']: add(page, f"image not drawn: {i['src']}")
        # internal links: the page exists, and so does the fragment's target
        ids = {p: set(r['ids']) for p, r in info.items()}
        for page, r in info.items():
            for href in set(r['links']):
                u = urlsplit(href)
                if not href.startswith(base):
                    if u.netloc == 'textkit.github.io': add(page, f'link to the published site instead of this one: {href}')
                    continue
                path = unquote(u.path[len(urlsplit(base).path):]) or 'index.html'
                if path.endswith('/'): path += 'index.html'
                if not (site/path).exists(): add(page, f'broken link: {href}'); continue
                if u.fragment and path.endswith('.html'):
                    if path not in ids:
                        if path not in pages: continue
                        drv.get(base + path); ids[path] = set(drv.execute_async_script(PAGE_JS)['ids'])
                    if unquote(u.fragment) not in ids[path]: add(page, f'broken link (no #{u.fragment} on {path}): {href}')
        # screenshots
        if shots:
            out = site/'screenshots'; out.mkdir(exist_ok=True)
            tut = next((p for p in chosen if p.startswith('tutorials/') and info[p]['plots']), None)
            for name, page in (('home', 'index.html'), ('cells', 'cells.html'), ('tutorial', tut)):
                if page is None or page not in info: continue
                drv.get(base + page); drv.execute_async_script(PAGE_JS)
                # the cells page at its first API entry (signature, then an example); the tutorial at its first plot
                target = {'cells': "(document.querySelector('span.tk-doc[data-name=\"RNNCell\"]') || document.querySelector('span.tk-doc')).closest('section')",
                          'tutorial': "document.querySelector('div.cell_output img').closest('div.cell')"}.get(name)
                if target:
                    for _ in range(2):  # again once fonts and formulas above have settled
                        drv.execute_script(f"const e = {target}; if (e) e.scrollIntoView()"); time.sleep(0.5)
                drv.save_screenshot(str(out/f'{name}.png'))
                print(f'screenshot: {out.relative_to(root)}/{name}.png ({page})')
        # search works offline
        if not pages_glob or fnmatch.fnmatch('search.html', pages_glob):
            drv.get(base + 'search.html?q=LSTM')
            n = 0
            for _ in range(100):
                n = drv.execute_script("return document.querySelectorAll('#search-results li').length")
                if n: break
                time.sleep(0.1)
            if not n: add('search.html', 'searching for LSTM finds nothing')
        # public names
        missing, tally = {}, dict(entries=[0, 0], examples=[0, 0], constants=[0, 0])
        pages_of = module_pages()
        for mod, (names, funcs, classes) in module_names().items():
            page, nb = pages_of.get(mod, (f'{mod}.html', None))
            if page not in info: continue
            r = info[page]
            entries = {e['name']: e for e in r['entries']}
            miss = lambda msg: missing.setdefault((nb, page), []).append(msg)
            for n in names:
                e = entries.get(n)
                if n in funcs or n in classes:
                    ok = e is not None and f'{n}(' in e['signature']
                    tally['entries'][0] += ok; tally['entries'][1] += 1
                    if e is None: miss(f'{n}: no show_doc entry')
                    elif not ok: miss(f'{n}: entry without signature')
                    elif not e['table'] and not re.search(rf'\b{re.escape(n)}\(\s*\)', e['signature']):
                        miss(f'{n}: entry without its table of parameters')
                    if n in funcs:
                        ex = e is not None and e['examples'] > 0
                        tally['examples'][0] += ex; tally['examples'][1] += 1
                        if e is not None and not ex: miss(f'{n}: no example cell with output in its section')
                else:  # constants have no signature: they must at least be shown in code on their page
                    ok = e is not None or bool(re.search(rf'\b{re.escape(n)}\b', r['code']))
                    tally['constants'][0] += ok; tally['constants'][1] += 1
                    if not ok: miss(f'{n}: not shown anywhere on the page')
    finally:
        drv.quit(); httpd.shutdown()
    # report
    n_links = sum(len(set(r['links'])) for r in info.values())
    print(f"docs-check: {len(info)} pages opened in headless Chromium, {n_links} links, "
          f"{sum(len(r['images']) for r in info.values())} images, "
          f"{sum(r['plots'] for r in info.values())} plots, {sum(r['math'] for r in info.values())} formulas, "
          f"{time.time()-t0:.0f} s")
    t = tally
    print(f"public names: {t['entries'][0]} of {t['entries'][1]} functions and classes with a show_doc entry and "
          f"signature; {t['examples'][0]} of {t['examples'][1]} functions with an example cell and its output; "
          f"{t['constants'][0]} of {t['constants'][1]} constants shown")
    for page, msgs in problems.items():
        print(f'\n{page}: {len(msgs)} problem(s)')
        for m in sorted(set(msgs)): print(f'  - {m}')
    for (nb, page), msgs in missing.items():
        print(f'\n{nb or "?"} ({page}): {len(msgs)} missing')
        for m in msgs: print(f'  - {m}')
    blocking = [m for v in missing.values() for m in v if not (allow_missing_examples and 'no example cell' in m)]
    ok = not problems and not blocking
    if allow_missing_examples and missing and not blocking:
        print("\n(--allow-missing-examples: the functions without an example are listed above, not failed)")
    n_names = tally['entries'][1] + tally['constants'][1]
    n_bad = len({(k, m.split(':')[0]) for k, v in missing.items() for m in v})
    print(f"\ndocs-check: {'OK' if ok else 'FAILED'}: {n_names - n_bad} of {n_names} public names fully documented, "
          f"{sum(len(set(v)) for v in problems.values())} page problem(s)")
    return ok

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pages', default='', help="page path glob, e.g. 'cells.html' or 'tutorials/*'")
    ap.add_argument('--no-shots', dest='shots', action='store_false', help='skip the screenshots')
    ap.add_argument('--allow-missing-examples', action='store_true',
                    help='list functions without an example cell and its output, without failing on them')
    a = ap.parse_args()
    sys.exit(0 if check(a.pages, a.shots, a.allow_missing_examples) else 1)
