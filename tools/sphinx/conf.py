# Sphinx configuration of the offline docs site (`make docs`; tools/docs.py explains the pipeline).
# Sources are the notebooks after nbdev's processing, converted by tools/docs.py into _build/docs-src/.
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parents[2]
meta = tomllib.loads((root/'pyproject.toml').read_text())['project']

project = 'textkit'
author = 'textkit developers'
copyright = 'textkit developers, Apache-2.0'
language = 'en'
smartquotes = False                    # comments in signatures and tables keep their straight quotes
extensions = ['myst_nb']
exclude_patterns = ['**.ipynb_checkpoints', 'pages.json']

# Pages show the outputs saved in the notebooks: nothing is executed
nb_execution_mode = 'off'
nb_merge_streams = True
nb_ipywidgets_js = {}                  # no widget scripts from a CDN
nb_render_markdown_format = 'myst'
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_block', 'attrs_inline']
myst_all_links_external = True         # tools/docs.py writes every link as a relative URL or an absolute one
myst_heading_anchors = 0
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type']

# Everything a page loads is served by the site: MathJax from _static (copied by tools/docs.py), no web fonts
mathjax_path = 'mathjax/tex-chtml-full.js'
html_theme = 'furo'
html_title = 'textkit'
html_static_path = ['_static', str(root/'_build'/'docs-src'/'_static')]
html_css_files = ['textkit.css']
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {'navigation_with_keys': True}
html_favicon = 'favicon.svg'
