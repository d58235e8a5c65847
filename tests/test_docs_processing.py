"How nbdev processes textkit's notebooks for the docs (textkit/_nbdev.py, [tool.nbdev] in pyproject.toml)"
from pathlib import Path
import pytest
import json
from fastcore.nbio import read_nb
from nbdev.processors import FilterDefaults

root = Path(__file__).resolve().parent.parent

def code(src, outputs=()):
    return {'cell_type': 'code', 'source': src, 'metadata': {}, 'outputs': list(outputs), 'execution_count': None}

SAVED = {'output_type': 'stream', 'name': 'stdout', 'text': 'the saved output\n'}

def process(cells, monkeypatch, tmp_path):
    monkeypatch.chdir(root)  # nbdev reads [tool.nbdev] from the project's pyproject.toml
    f = tmp_path/'t.ipynb'
    f.write_text(json.dumps({'cells': [{'cell_type': 'markdown', 'source': '# T\n\n> s', 'metadata': {}}] + cells,
                             'metadata': {'kernelspec': {'language': 'python', 'name': 'python3'}},
                             'nbformat': 4, 'nbformat_minor': 5}))
    nb = read_nb(f)
    FilterDefaults()(nb)
    return nb

def test_procs_in_nbdev_order():
    "textkit's executor stands where nbdev's `exec_show_docs` does: after `clean_show_doc`, before `rm_export`"
    names = [getattr(p, '__name__', str(p)) for p in FilterDefaults().procs()]
    assert 'exec_show_docs' not in names
    i = names.index('exec_doc_cells')
    assert names[i-1] == 'clean_show_doc' and names[i+1:] == ['rm_export', 'ai_magics', 'clean_magics', 'hide_',
                                                              'add_links', 'add_fold', 'mv_exports', 'strip_hidden_metadata']

def test_mixed_cell_runs_its_imports_only(monkeypatch, tmp_path):
    "A cell with imports and other code (loading a corpus, training) runs its imports; its saved outputs stay"
    nb = process([code('#| export\ndef double(x:int, # a number\n          ):\n    "Twice `x`"\n    return 2*x'),
                  code("from textwrap import dedent\nraise RuntimeError('a corpus would load here')", [SAVED]),
                  code('show_doc(dedent)')], monkeypatch, tmp_path)
    srcs = [c.get('source', '') for c in nb.cells]
    mixed = next(c for c in nb.cells if 'RuntimeError' in c.get('source', ''))
    assert [o['text'] for o in mixed.outputs] == ['the saved output\n']
    docs = [c for c in nb.cells if 'show_doc(' in c.get('source', '')]
    md = [o['data']['text/markdown'] for c in docs for o in c.outputs if 'text/markdown' in o.get('data', {})]
    assert any('double' in m and 'a number' in m for m in md), srcs  # the exported function, with its docments
    assert any('dedent' in m for m in md)                            # the import ran, so show_doc finds the name

def test_import_error_is_reported(monkeypatch, tmp_path):
    "An import that fails still fails processing, with the cell's imports in the message"
    with pytest.raises(Exception, match='no_such_module'):
        process([code('#| export\ndef f(): pass'), code('import no_such_module\nx = 1')], monkeypatch, tmp_path)

def test_show_doc_has_a_table_of_parameters(monkeypatch):
    "`show_doc` (textkit's renderer, set in pyproject.toml) lists each parameter's type, default and comment"
    monkeypatch.chdir(root)
    from nbdev.showdoc import show_doc
    from textkit._nbdev import DocmentsRenderer
    def f(x:int,       # the input
          *args,
          k:str='a|b', # a pipe stays in its cell
          **kwargs
         )->float:     # the result
        "Do it"
    md = show_doc(f)._repr_markdown_()
    assert isinstance(show_doc(f), DocmentsRenderer)
    rows = md.split('| -- | -------- | ----------- | ----------- |\n')[1].splitlines()
    assert rows == ['| x | int |  | the input |', '| \\*args |  |  |  |',
                    "| k | str | `'a\\|b'` | a pipe stays in its cell |", '| \\*\\*kwargs |  |  |  |',
                    '| **Returns** | float |  | the result |']
