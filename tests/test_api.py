"The surface a fastai user touches: fastai's verbs on textkit's language models, no shadowed fastai names, docments"
import dataclasses, importlib, inspect, re, subprocess, sys
import pytest, torch
from fastai.learner import Learner

from textkit.data import char_lm_dls, get_corpus
from textkit.lm import lm_learner, LanguageModelLearner, LanguageModel

torch.set_num_threads(1)
MODULES = ['data', 'cells', 'numpy_rnn', 'callbacks', 'lm', 'classifier', 'experiments', 'viz', 'io', 'models', 'distributed', 'cli', 'ulmfit']

@pytest.fixture(scope='module')
def learn():
    dls = char_lm_dls(get_corpus('quijote')[:20_000], bs=8, seq_len=32)
    l = lm_learner(dls, 'lstm', emb_sz=8, hidden_sz=16, n_layers=1)
    with l.no_bar(), l.no_logging(): l.fit(1, 1e-2)
    return l

def test_predict_is_linear_cost_generation(learn):
    assert isinstance(learn, LanguageModelLearner)
    out = learn.predict('En un', n_words=10, temperature=0.7, seed=0)
    assert out.startswith('En un') and len(out) == 15
    assert out == learn.generate('En un', 10, temperature=0.7, seed=0)

def test_get_preds_whole_stream(learn):
    with learn.no_bar(): preds, targs = learn.get_preds()
    assert preds.shape == (*targs.shape, len(learn.dls.vocab))
    assert torch.allclose(preds.sum(-1), torch.ones(targs.shape), atol=1e-4)

def test_show_batch_and_results(learn):
    learn.dls.show_batch(max_n=2)
    with learn.no_bar(): learn.show_results(max_n=2)

def test_summary_and_export(learn, tmp_path):
    assert 'Total params' in str(learn.summary())
    learn.export(tmp_path/'lm.pkl')
    assert (tmp_path/'lm.pkl').stat().st_size > 0

def test_nothing_patched_onto_fastai_learner():
    import textkit.all  # noqa: F401
    assert not hasattr(Learner, 'generate')

@pytest.mark.parametrize('order', ['fastai_first', 'textkit_first'])
def test_no_fastai_name_shadowed(order):
    "Both star imports, in either order: every name they share is the same object, and fastai's perplexity still works"
    first, second = ('fastai.text.all', 'textkit.all') if order == 'fastai_first' else ('textkit.all', 'fastai.text.all')
    code = f"""
import torch
from {first} import *
from {second} import *
import fastai.text.all as fa, textkit.all as tk
shared = [n for n in set(dir(fa)) & set(dir(tk)) if not n.startswith('_') and getattr(fa, n) is not getattr(tk, n)]
assert not shared, shared
from fastai.metrics import Perplexity
assert isinstance(perplexity, Perplexity)
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]

def test_cli_functions_stay_in_cli():
    import textkit.all as tk
    for name in ('main', 'demo', 'data', 'embeddings', 'COMMANDS', 'positional', 'lm_train', 'clf_train'):
        assert not hasattr(tk, name), name

def _public_functions():
    for m in MODULES:
        mod = importlib.import_module(f'textkit.{m}')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                if '__init__' in vars(obj) and obj.__module__ == mod.__name__ and not dataclasses.is_dataclass(obj):
                    yield f'{m}.{name}', obj.__init__
                for k, v in vars(obj).items():
                    if inspect.isfunction(v) and not k.startswith('_') and v.__module__ == mod.__name__: yield f'{m}.{name}.{k}', v
            elif inspect.isfunction(obj) and obj.__module__ == mod.__name__: yield f'{m}.{name}', obj

def _docs(f) -> dict:
    "Docments of `f`, following fastai's `delegates` to the function that documents the delegated parameters"
    from fastcore.docments import docments
    docs = {k: v for k, v in docments(f, full=False).items() if v}
    to = getattr(f, '__delwrap__', None)
    return {**_docs(inspect.unwrap(to)), **docs} if to is not None else docs

def _return_line_commented(f) -> bool:
    "Whether the line with the return annotation carries the comment docments gives the return value (else it is a parameter's)"
    lines = inspect.getsource(f).splitlines()
    line = next((l for l in lines if re.search(r'\)\s*->.*:', l)), '')
    return '#' in line

@pytest.mark.parametrize('module', MODULES)
def test_every_public_parameter_has_a_docment(module):
    "Each parameter has its own comment beside it (`**kwargs` aside: fastcore's docments cannot read its comment)"
    missing, as_return = [], []
    for qual, f in _public_functions():
        if not qual.startswith(module + '.'): continue
        f = inspect.unwrap(f)
        params = [p for p in inspect.signature(f).parameters.values()
                  if p.name not in ('self', 'cls') and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        docs = _docs(f)
        missing += [f'{qual}({p.name})' for p in params if not docs.get(p.name)]
        if docs.get('return') and not _return_line_commented(f): as_return.append(qual)
    assert not missing, f"{len(missing)} parameters without a docment: {missing}"
    assert not as_return, f"comments rendered as the return value's: {as_return}"

def test_deprecated_names_still_work():
    with pytest.warns(DeprecationWarning, match='dropouts'):
        m = LanguageModel(10, dropouts=0.3)
    assert (m.config['input_p'], m.config['hidden_p'], m.config['output_p']) == (0.3, 0.3, 0.3)
    from textkit.classifier import TextClassifier
    with pytest.warns(DeprecationWarning, match='rnn_drop'):
        c = TextClassifier(10, rnn_drop=0.2)
    assert (c.config['hidden_p'], c.config['output_p']) == (0.2, 0.2)

# --- the checks of issue 11's last list: one timer, one validation helper, one special-token set, no dead imports

import ast, pathlib
SOURCES = sorted(p for p in pathlib.Path(importlib.import_module('textkit').__file__).parent.glob('*.py') if not p.name.startswith('_'))

def test_no_dead_imports():
    "pyflakes finds nothing but the star imports of `textkit.all` (its purpose)"
    out = subprocess.run([sys.executable, '-m', 'pyflakes', *map(str, SOURCES)], capture_output=True, text=True).stdout
    def patched(l):  # `@patch` methods of the same name on two classes: pyflakes sees a redefinition
        f, n = l.split(':')[:2]
        return "redefinition of unused" in l and pathlib.Path(f).read_text().splitlines()[int(n)-2].startswith('@patch')
    problems = [l for l in out.splitlines() if not l.startswith(str(SOURCES[0].parent/'all.py')) and not patched(l)]
    assert not problems, '\n'.join(problems)

def test_one_choice_validator():
    "Choices among names are checked by `check_choice` only: no hand-written 'Unknown ...' or 'must be one of' checks left"
    pat = re.compile(r"raise \w+\(f?[\"'](Unknown \w|\w+ must be '|.*choose one of)")
    hits = [f'{p.name}: {l.strip()}' for p in SOURCES for l in p.read_text().splitlines()
            if pat.search(l) and 'def check_choice' not in l and p.name != 'cells.py']  # cells: torch.nn's own messages
    assert [h for h in hits if not h.startswith('data.py: if value not in valid')] == [], hits

def test_one_special_token_set():
    "Special tokens are spelt in `textkit.data` only (`SPECIAL_TOKS`, `LM_SPECIAL_TOKS`, `FAKE_TOK`, fastai's constants)"
    pat = re.compile(r"""['"]xx(unk|pad|bos|eos|fld|rep|wrep|up|maj|fake)['"]""")
    hits = [f'{p.name}:{i}: {l.strip()}' for p in SOURCES if p.name != 'data.py'
            for i, l in enumerate(p.read_text().splitlines(), 1) if pat.search(l.split('#')[0])]
    assert not hits, hits
    from textkit.data import SPECIAL_TOKS, LM_SPECIAL_TOKS, FAKE_TOK
    from textkit.lm import NEVER_SAMPLED
    from fastai.text.core import defaults
    assert set(defaults.text_spec_tok) | {FAKE_TOK} == set(SPECIAL_TOKS) and set(LM_SPECIAL_TOKS) | set(NEVER_SAMPLED) <= set(SPECIAL_TOKS)

def test_closing_paren_on_its_own_line():
    "A signature over several lines closes with `)` at the start of a line (fastai's style), so `-> X:` carries no parameter's comment"
    bad = []
    for p in SOURCES:
        text = p.read_text(); lines = text.splitlines()
        for n in ast.walk(ast.parse(text)):
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            a = n.args
            last = max((x.end_lineno for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg, *a.defaults, *a.kw_defaults] if x is not None),
                       default=n.lineno)
            if last == n.lineno: continue  # a signature on one line
            tail = lines[last:n.body[0].lineno]  # the lines after the last parameter, up to the body's first
            if not any(l.strip().startswith(')') for l in tail): bad.append(f'{p.name}:{n.lineno} {n.name}')
    assert not bad, bad

def test_one_timer():
    "Training time is measured by `TimeBudget` only, into `learn.train_time`; the other clocks in textkit time no training"
    clocks = re.compile(r'time\.(process_time|perf_counter|time|monotonic)\(?')
    users = {p.name for p in SOURCES if clocks.search(p.read_text())}
    assert users <= {'callbacks.py', 'cli.py', 'distributed.py'}, users  # cli: the demo's wall-clock total, printed for the user
    assert 'process_time' not in (SOURCES[0].parent/'distributed.py').read_text()  # distributed: a timeout on worker processes only
    cli = (SOURCES[0].parent/'cli.py').read_text()
    assert 'process_time' not in cli and cli.count('perf_counter') == 3, 'the CLI times no training itself'
    from textkit.lm import train_lm
    l = train_lm('quijote', max_chars=20_000, bs=8, seq_len=16, emb_sz=8, hidden_sz=16, n_layers=1, epochs=1, show_progress=False)
    assert set(l.train_time) == {'cpu', 'wall'} and l.train_time['cpu'] > 0
    from textkit.callbacks import TimeBudget
    with pytest.raises(ValueError, match="Unknown clock 'gpu': choose one of 'cpu', 'wall'"): TimeBudget(1, clock='gpu')
