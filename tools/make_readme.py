"""Write README.md from nbs/index.ipynb (what `nbdev-readme` does, without Quarto).

Usage: python tools/make_readme.py [--check]   (--check: exit 1 if README.md is out of date)
"""
import re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parent.parent

def readme() -> str:
    nb = nbformat.read(root/'nbs'/'index.ipynb', as_version=4)
    nb.metadata['language_info'] = {'name': 'python'}  # fenced code blocks as ```python
    # Drop cells hidden from the docs and nbdev directives, like nbdev does
    nb.cells = [c for c in nb.cells if not re.search(r'^#\|\s*(hide|export)', c.source, re.M)]
    for c in nb.cells:
        if c.cell_type == 'code': c.source = re.sub(r'^#\|.*\n?', '', c.source, flags=re.M)
    body, _ = MarkdownExporter().from_notebook_node(nb)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return "<!-- WARNING: generated from nbs/index.ipynb by tools/make_readme.py: do not edit -->\n\n" + body

if __name__ == '__main__':
    new = readme()
    if '--check' in sys.argv:
        if (root/'README.md').read_text(encoding='utf-8') != new:
            sys.exit("README.md is out of date: run `python tools/make_readme.py`")
    else: (root/'README.md').write_text(new, encoding='utf-8')
