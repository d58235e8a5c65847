"Tests of `textkit.numpy_rnn`: gradients of the RNN and the LSTM (finite differences, torch autograd), clipping, Adam, sampling, the alphabet toy, deprecated names, docments, bad input."
import ast, inspect, textwrap, time, warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastcore.docments import docments
from hypothesis import given, settings, strategies as st

import textkit.numpy_rnn as numpy_rnn
from textkit.numpy_rnn import (ALPHABET, NumpyCharModel, NumpyRNN, NumpyLSTM, NumpyAdam, next_char_windows, grad_check,
                               grad_norm, clip_grad_norm, clip_grad_value)

MODELS = [NumpyRNN, NumpyLSTM]


def random_problem(cls, V, H, T, B, seed, with_h0=True):
    "A `cls` model with perturbed weights (non-zero biases too), random ids, targets and initial state."
    rng = np.random.default_rng(seed)
    model = cls(''.join(chr(ord('a') + i) for i in range(V)), hidden_sz=H, seed=seed)
    for w in model.params.values(): w += rng.normal(0, 0.3, w.shape)
    xs, ys = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    h0 = None
    if with_h0: h0 = rng.normal(0, 0.5, (B, H)) if cls is NumpyRNN else (rng.normal(0, 0.5, (B, H)), rng.normal(0, 0.5, (B, H)))
    return model, xs, ys, h0


def torch_twin(model):
    "`model` as a float64 `ModuleDict(rnn=nn.RNN or nn.LSTM, out=nn.Linear)` with the same weights."
    V, H = len(model.vocab), model.hidden_sz
    rnn = (torch.nn.LSTM if isinstance(model, NumpyLSTM) else torch.nn.RNN)(V, H)
    net = torch.nn.ModuleDict(dict(rnn=rnn, out=torch.nn.Linear(H, V))).double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.torch_state_dict().items()})
    return net


def torch_loss_and_grads(model, xs, ys, h0):
    "Loss, gradients named like `model.params`, and final states of `model`'s torch twin, by autograd."
    net, V, B = torch_twin(model), len(model.vocab), xs.shape[1]
    if h0 is None: h0 = np.zeros((B, model.hidden_sz)) if isinstance(model, NumpyRNN) else (np.zeros((B, model.hidden_sz)),) * 2
    th0 = tuple(torch.from_numpy(s)[None] for s in h0) if isinstance(h0, tuple) else torch.from_numpy(h0)[None]
    out, hT = net.rnn(F.one_hot(torch.from_numpy(xs), V).double(), th0)
    loss = F.cross_entropy(net.out(out).flatten(0, 1), torch.from_numpy(ys).flatten())
    loss.backward()
    r = net.rnn
    # both torch hidden biases get d/d(b_h): check they agree before mapping them to one
    np.testing.assert_allclose(r.bias_ih_l0.grad.numpy(), r.bias_hh_l0.grad.numpy(), rtol=0, atol=1e-14)
    grads = dict(W_xh=r.weight_ih_l0.grad.T, W_hh=r.weight_hh_l0.grad.T, b_h=r.bias_ih_l0.grad,
                 W_hy=net.out.weight.grad.T, b_y=net.out.bias.grad)
    final = tuple(s[0].detach().numpy() for s in hT) if isinstance(hT, tuple) else hT[0].detach().numpy()
    return loss.item(), {k: v.numpy() for k, v in grads.items()}, final


# --- gradients ----------------------------------------------------------------------------------

@settings(max_examples=8, deadline=None)
@given(cls=st.sampled_from(MODELS), V=st.integers(2, 6), H=st.integers(1, 5), T=st.integers(1, 6), B=st.integers(1, 4),
       seed=st.integers(0, 2**16), with_h0=st.booleans())
def test_grad_check_random_sizes(cls, V, H, T, B, seed, with_h0):
    model, xs, ys, h0 = random_problem(cls, V, H, T, B, seed, with_h0)
    before = {k: v.copy() for k, v in model.params.items()}
    errs = grad_check(model, xs, ys, h0)
    assert set(errs) == set(model.params)
    assert max(errs.values()) < 1e-6, errs
    for k in before: np.testing.assert_array_equal(model.params[k], before[k])  # weights restored


@pytest.mark.parametrize('cls', MODELS)
def test_grad_check_passes_in_float64(cls):
    "The stated bound on a fixed, mid-sized problem for both models: every relative error below 1e-6."
    model, xs, ys, h0 = random_problem(cls, 7, 6, 8, 3, seed=11)
    errs = grad_check(model, xs, ys, h0)
    assert all(w.dtype == np.float64 for w in model.params.values())
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize('cls', MODELS)
def test_grad_check_catches_a_wrong_gradient(cls, monkeypatch):
    model, xs, ys, h0 = random_problem(cls, 4, 3, 5, 2, seed=0)
    backward = cls.backward
    def wrong(self, cache):
        g = backward(self, cache)
        g['W_hh'][:, :3] *= 1.01  # the RNN's W_hh, the LSTM's input-gate block
        return g
    monkeypatch.setattr(cls, 'backward', wrong)
    errs = grad_check(model, xs, ys, h0)
    assert errs['W_hh'] > 1e-4 and errs['W_xh'] < 1e-6


@pytest.mark.parametrize('cls', MODELS)
@pytest.mark.parametrize('V,H,T,B,with_h0', [(3, 2, 1, 1, False), (5, 4, 6, 3, True), (26, 16, 8, 5, True),
                                             (7, 9, 12, 1, False)])
def test_same_as_torch_autograd(cls, V, H, T, B, with_h0):
    "Same loss (1e-10), same gradients (1e-10 absolute) and same final states (1e-12) as torch.nn.RNN / torch.nn.LSTM."
    model, xs, ys, h0 = random_problem(cls, V, H, T, B, seed=V * H + T, with_h0=with_h0)
    tl, tg, tfinal = torch_loss_and_grads(model, xs, ys, h0)
    l, g = model.loss_and_grads(xs, ys, h0)
    assert abs(l - tl) < 1e-10
    assert set(g) == set(tg)
    for k in g:
        assert g[k].shape == tg[k].shape
        np.testing.assert_allclose(g[k], tg[k], rtol=0, atol=1e-10, err_msg=k)
    states = model.forward(xs, h0)[1]
    final = tuple(s[-1] for s in states) if isinstance(states, tuple) else states[-1]
    np.testing.assert_allclose(final, tfinal, rtol=0, atol=1e-12)


@pytest.mark.parametrize('cls', MODELS)
def test_batch_is_mean_of_single_sequences(cls):
    model, xs, ys, h0 = random_problem(cls, 6, 5, 4, 3, seed=1)
    l, g = model.loss_and_grads(xs, ys, h0)
    sl = lambda b: h0[b:b + 1] if isinstance(h0, np.ndarray) else tuple(s[b:b + 1] for s in h0)
    singles = [model.loss_and_grads(xs[:, b], ys[:, b], sl(b)) for b in range(3)]
    assert abs(l - np.mean([s[0] for s in singles])) < 1e-12
    for k in g: np.testing.assert_allclose(g[k], np.mean([s[1][k] for s in singles], 0), rtol=0, atol=1e-14)
    logits, states = model.forward(xs, h0)
    assert logits.shape == (4, 3, 6)
    for s, s0 in zip(states if isinstance(states, tuple) else (states,), h0 if isinstance(h0, tuple) else (h0,)):
        assert s.shape == (5, 3, 5)
        np.testing.assert_array_equal(s[0], s0)


@pytest.mark.parametrize('cls', MODELS)
def test_torch_state_dict_round_trip(cls):
    V, H = 5, 4
    rnn = (torch.nn.LSTM if cls is NumpyLSTM else torch.nn.RNN)(V, H)
    net = torch.nn.ModuleDict(dict(rnn=rnn, out=torch.nn.Linear(H, V))).double()  # two non-zero biases
    model = cls('abcde', hidden_sz=H)
    model.load_torch_state_dict(net.state_dict())
    xs = np.array([[0, 1], [2, 3], [4, 0]])
    out, _ = net.rnn(F.one_hot(torch.from_numpy(xs), V).double())
    np.testing.assert_allclose(model.forward(xs)[0], net.out(out).detach().numpy(), rtol=0, atol=1e-12)
    again = cls('abcde', hidden_sz=H, seed=7)
    again.load_torch_state_dict(model.torch_state_dict())
    for k in model.params: np.testing.assert_array_equal(again.params[k], model.params[k])
    G = cls.n_gates
    with pytest.raises(ValueError, match=rf'W_xh: expected shape \(5, {3 * G}\), got \(5, {4 * G}\)'):
        cls('abcde', hidden_sz=3).load_torch_state_dict(net.state_dict())
    other = NumpyRNN if cls is NumpyLSTM else NumpyLSTM  # an RNN's weights do not load into an LSTM, nor back
    with pytest.raises(ValueError, match='W_xh: expected shape'): other('abcde', hidden_sz=H).load_torch_state_dict(net.state_dict())


def test_shared_code_is_shared():
    "The RNN and the LSTM differ only in their recurrence: everything else is the base's."
    for name in ('loss', 'loss_and_grads', 'fit', 'predict', 'forward', 'encode', 'decode', 'torch_state_dict',
                 'load_torch_state_dict', '_output_backward', '_gate_grads'):
        assert getattr(NumpyRNN, name) is getattr(NumpyLSTM, name) is getattr(NumpyCharModel, name), name
    for name in ('_forward', 'backward'): assert getattr(NumpyRNN, name) is not getattr(NumpyLSTM, name)
    assert (NumpyRNN.n_gates, NumpyLSTM.n_gates) == (1, 4)


# --- clipping and Adam --------------------------------------------------------------------------

def test_clip_grad_norm_bounds_norm_and_keeps_direction():
    model, xs, ys, h0 = random_problem(NumpyRNN, 5, 4, 6, 3, seed=2)
    _, g = model.loss_and_grads(xs, ys, h0)
    big = {k: 1e4 * v for k, v in g.items()}
    orig = {k: v.copy() for k, v in big.items()}
    total = clip_grad_norm(big, 1.0)
    assert abs(total - grad_norm(orig)) < 1e-9 * total
    assert grad_norm(big) <= 1.0
    assert abs(grad_norm(big) - 1.0) < 1e-5
    for k in big: np.testing.assert_allclose(big[k] / grad_norm(big), orig[k] / grad_norm(orig), atol=1e-12)
    # same as torch.nn.utils.clip_grad_norm_
    ts = [torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for v in orig.values()]
    for t, v in zip(ts, orig.values()): t.grad = torch.from_numpy(v.copy())
    torch.nn.utils.clip_grad_norm_(ts, 1.0)
    for t, v in zip(ts, big.values()): np.testing.assert_allclose(v, t.grad.numpy(), rtol=1e-12, atol=0)
    # below the threshold nothing changes
    small = {k: v.copy() for k, v in g.items()}
    clip_grad_norm(small, 2 * grad_norm(g))
    for k in g: np.testing.assert_array_equal(small[k], g[k])


def test_clip_grad_value_bounds_entries():
    rng = np.random.default_rng(0)
    g = {'a': rng.normal(0, 10, (4, 3)), 'b': rng.normal(0, 10, 5)}
    expected = {k: np.clip(v, -5, 5) for k, v in g.items()}
    clip_grad_value(g, 5.0)
    for k in g:
        assert np.abs(g[k]).max() <= 5.0
        np.testing.assert_array_equal(g[k], expected[k])


@pytest.mark.parametrize('cls', MODELS)
def test_fit_clips_gradients(cls, monkeypatch):
    "`fit` hands Adam gradients whose norm is at most `max_norm`."
    seen = []
    step = NumpyAdam.step
    def spy(self, grads):
        seen.append(grad_norm(grads))
        step(self, grads)
    monkeypatch.setattr(NumpyAdam, 'step', spy)
    model = cls(ALPHABET, hidden_sz=8)
    xs, ys = next_char_windows(model.encode(ALPHABET))
    model.fit(xs, ys, n_steps=5, max_norm=0.05)
    assert len(seen) == 5 and max(seen) <= 0.05


def test_adam_matches_torch():
    rng = np.random.default_rng(3)
    params = {'w': rng.normal(size=(3, 4)), 'b': rng.normal(size=4)}
    tparams = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in params.values()]
    opt, topt = NumpyAdam(params, lr=0.03, betas=(0.8, 0.99), eps=1e-6), torch.optim.Adam(tparams, lr=0.03, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(10):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        for t, v in zip(tparams, grads.values()): t.grad = torch.from_numpy(v.copy())
        opt.step(grads)
        topt.step()
    for t, v in zip(tparams, params.values()): np.testing.assert_allclose(v, t.detach().numpy(), rtol=0, atol=1e-12)


# --- the alphabet toy ---------------------------------------------------------------------------

def test_next_char_windows():
    xs, ys = next_char_windows(np.arange(26), 3)
    assert xs.shape == ys.shape == (3, 23)
    np.testing.assert_array_equal(xs[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(ys[:, -1], [23, 24, 25])
    np.testing.assert_array_equal(ys[:-1], xs[1:])


@pytest.mark.parametrize('cls', MODELS)
def test_alphabet_predictions(cls):
    "Both models learn the toy with the same defaults (200 full-batch Adam steps, lr 1e-2, H=32)."
    model = cls(ALPHABET, hidden_sz=32, seed=0)
    xs, ys = next_char_windows(model.encode(ALPHABET), 3)
    t0 = time.perf_counter()
    losses = model.fit(xs, ys)
    assert time.perf_counter() - t0 < 10
    assert losses[-1] < 0.01 < 3 < losses[0]
    assert losses[-1] < losses[len(losses) // 2] < losses[0]
    assert model.predict('abc') == 'd'
    assert model.predict('bcd') == 'e'
    assert model.predict('cde') == 'f'
    assert model.predict('abc', n=3) == 'def'
    assert model.predict('a', n=25) == ALPHABET[1:]
    assert model.predict('x', n=0) == ''


@pytest.mark.parametrize('cls', MODELS)
def test_sampling(cls):
    "Sampling is reproducible under a seed, follows the temperature, and at a tiny temperature is greedy."
    model = cls(ALPHABET, hidden_sz=8, seed=0)
    xs, ys = next_char_windows(model.encode(ALPHABET), 3)
    model.fit(xs, ys, n_steps=30)
    a = model.predict('abc', n=40, greedy=False, seed=1)
    assert len(a) == 40 and set(a) <= set(ALPHABET)
    assert model.predict('abc', n=40, greedy=False, seed=1) == a
    assert model.predict('abc', n=40, greedy=False, seed=2) != a
    assert model.predict('abc', n=40, greedy=False, temperature=1e-3, seed=3) == model.predict('abc', n=40)
    # the first sampled character follows softmax(logits / temperature)
    logits = model.forward(model.encode('abc'))[0][-1, 0] / 2.
    p = np.exp(logits - logits.max()); p /= p.sum()
    counts = np.bincount([model.vocab.index(model.predict('abc', greedy=False, temperature=2., seed=s)) for s in range(400)],
                         minlength=26)
    assert np.abs(counts / 400 - p).max() < 0.08


def test_training_is_deterministic_under_a_seed():
    xs, ys = next_char_windows(np.arange(26), 3)
    for cls in MODELS:
        a, b, c = (cls(ALPHABET, hidden_sz=16, seed=s) for s in (42, 42, 43))
        la, lb, lc = (m.fit(xs, ys, n_steps=30) for m in (a, b, c))
        assert la == lb and la != lc
        for k in a.params: np.testing.assert_array_equal(a.params[k], b.params[k])


# --- deprecated names ---------------------------------------------------------------------------

@pytest.mark.parametrize('cls', MODELS)
def test_n_hidden_is_deprecated(cls):
    "`n_hidden` (keyword and attribute) still works for one release, with a DeprecationWarning; `hidden_sz` warns nothing."
    with pytest.warns(DeprecationWarning, match='n_hidden is deprecated, use hidden_sz'):
        old = cls(ALPHABET, n_hidden=12, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        new = cls(ALPHABET, hidden_sz=12, seed=3)
        assert new.hidden_sz == 12 and repr(new) == f"{cls.__name__}(vocab={ALPHABET!r}, hidden_sz=12)"
    assert old.hidden_sz == 12
    for k in new.params: np.testing.assert_array_equal(old.params[k], new.params[k])
    with pytest.warns(DeprecationWarning, match='hidden_sz'): assert new.n_hidden == 12
    with pytest.raises(TypeError, match='not both'): cls(ALPHABET, hidden_sz=8, n_hidden=8)


def test_positional_hidden_size_still_works():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert NumpyRNN(ALPHABET, 7).hidden_sz == 7


# --- the reference renders right ----------------------------------------------------------------

def public_callables():
    for name in numpy_rnn.__all__:
        obj = getattr(numpy_rnn, name)
        if inspect.isclass(obj):
            yield name, obj.__init__
            for m, f in vars(obj).items():
                if callable(f) and not m.startswith('_'): yield f'{name}.{m}', f
            if obj is NumpyCharModel:
                for m in dir(obj):
                    f = getattr(obj, m)
                    if inspect.isfunction(f) and not m.startswith('_') and m not in vars(obj): yield f'{name}.{m}', f
        elif callable(obj): yield name, obj


def test_every_public_parameter_has_its_own_docment():
    seen = set()
    for name, f in public_callables():
        seen.add(name)
        docs = docments(f)
        missing = [p for p in inspect.signature(f).parameters if p != 'self' and not docs.get(p)]
        assert not missing, f"{name}: no docment for {missing}"
    assert {'NumpyCharModel.fit', 'NumpyCharModel.predict', 'grad_check', 'NumpyLSTM.backward', 'NumpyAdam.step'} <= seen


def test_multiline_signatures_close_on_their_own_line():
    "A parameter's comment written after `) -> X:` would render as the return value's: the `)` sits alone."
    for name, f in public_callables():
        src = textwrap.dedent(inspect.getsource(f))
        fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef))
        first, last = fn.lineno, fn.body[0].lineno - 1
        if last > first:
            closing = src.splitlines()[last - 1].strip()
            assert closing.startswith(')'), f"{name}: signature closes with {closing!r}"


def test_no_pyflakes_warnings():
    from pyflakes.api import check
    from pyflakes.reporter import Reporter
    import io
    out = io.StringIO()
    assert check(inspect.getsource(numpy_rnn), 'numpy_rnn.py', Reporter(out, out)) == 0, out.getvalue()


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', MODELS)
def test_bad_input_errors(cls):
    model = cls(ALPHABET, hidden_sz=4)
    with pytest.raises(ValueError, match=r"unknown characters \['!', 'C'\]"): model.predict('abC!')
    with pytest.raises(ValueError, match='ñ'): model.encode('año')
    with pytest.raises(ValueError, match='empty'): model.predict('')
    with pytest.raises(ValueError, match='n must be'): model.predict('a', n=-1)
    with pytest.raises(ValueError, match='temperature must be > 0'): model.predict('a', greedy=False, temperature=0)
    with pytest.raises(ValueError, match=r'outside \[0, 26\): \[26, 30\]'): model.forward(np.array([[0, 26], [30, 1]]))
    with pytest.raises(ValueError, match='integer'): model.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match='non-empty'): model.forward(np.zeros((0, 2), int))
    with pytest.raises(ValueError, match='same shape'): model.loss(np.zeros((3, 2), int), np.zeros((3, 1), int))
    with pytest.raises(ValueError, match='distinct'): cls('abca')
    with pytest.raises(ValueError, match='distinct'): cls('')
    with pytest.raises(ValueError, match='distinct'): cls(['a', 'b'])
    with pytest.raises(ValueError, match='hidden_sz must be an integer >= 1, got 0'): cls('ab', hidden_sz=0)
    with pytest.raises(ValueError, match='hidden_sz must be an integer >= 1, got 2.5'): cls('ab', hidden_sz=2.5)
    with pytest.raises(ValueError, match='longer than seq_len'): next_char_windows(np.arange(3), 3)
    xs = np.zeros((3, 2), int)
    if cls is NumpyRNN:
        with pytest.raises(ValueError, match=r'h0 must have shape \(2, 4\)'): model.forward(xs, np.zeros((1, 4)))
    else:
        with pytest.raises(ValueError, match=r'pair \(h0, c0\)'): model.forward(xs, np.zeros((2, 4)))
        with pytest.raises(ValueError, match=r'c0 must have shape \(2, 4\)'): model.forward(xs, (np.zeros((2, 4)), np.zeros((2, 5))))
        with pytest.raises(ValueError, match=r'h0 must have shape \(2, 4\)'): model.forward(xs, (np.zeros((1, 4)), np.zeros((2, 4))))
