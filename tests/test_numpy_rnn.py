"Tests of `textkit.numpy_rnn`: gradients (finite differences, torch autograd), clipping, Adam, the alphabet toy, bad input."
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from textkit.numpy_rnn import (ALPHABET, NumpyRNN, NumpyAdam, next_char_windows, grad_check, grad_norm,
                               clip_grad_norm, clip_grad_value)


def random_problem(V, H, T, B, seed, with_h0=True):
    "A `NumpyRNN` with perturbed weights (non-zero biases too), random ids, targets and initial state."
    rng = np.random.default_rng(seed)
    model = NumpyRNN(''.join(chr(ord('a') + i) for i in range(V)), n_hidden=H, seed=seed)
    for w in model.params.values(): w += rng.normal(0, 0.3, w.shape)
    xs, ys = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    h0 = rng.normal(0, 0.5, (B, H)) if with_h0 else None
    return model, xs, ys, h0


def torch_twin(model):
    V, H = len(model.vocab), model.n_hidden
    net = torch.nn.ModuleDict(dict(rnn=torch.nn.RNN(V, H), out=torch.nn.Linear(H, V))).double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.torch_state_dict().items()})
    return net


def torch_loss_and_grads(model, xs, ys, h0):
    net = torch_twin(model)
    V, (T, B) = len(model.vocab), xs.shape
    h0 = torch.zeros(1, B, model.n_hidden, dtype=torch.float64) if h0 is None else torch.from_numpy(h0)[None]
    out, hT = net.rnn(F.one_hot(torch.from_numpy(xs), V).double(), h0)
    loss = F.cross_entropy(net.out(out).flatten(0, 1), torch.from_numpy(ys).flatten())
    loss.backward()
    r = net.rnn
    # both torch hidden biases get d/d(b_h): check they agree before mapping them to one
    np.testing.assert_allclose(r.bias_ih_l0.grad.numpy(), r.bias_hh_l0.grad.numpy(), rtol=0, atol=1e-14)
    grads = dict(W_xh=r.weight_ih_l0.grad.T, W_hh=r.weight_hh_l0.grad.T, b_h=r.bias_ih_l0.grad,
                 W_hy=net.out.weight.grad.T, b_y=net.out.bias.grad)
    return loss.item(), {k: v.numpy() for k, v in grads.items()}, hT[0].detach().numpy()


# --- gradients ----------------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(V=st.integers(2, 6), H=st.integers(1, 6), T=st.integers(1, 6), B=st.integers(1, 4),
       seed=st.integers(0, 2**16), with_h0=st.booleans())
def test_grad_check_random_sizes(V, H, T, B, seed, with_h0):
    model, xs, ys, h0 = random_problem(V, H, T, B, seed, with_h0)
    before = {k: v.copy() for k, v in model.params.items()}
    errs = grad_check(model, xs, ys, h0)
    assert set(errs) == set(model.params)
    assert max(errs.values()) < 1e-6, errs
    for k in before: np.testing.assert_array_equal(model.params[k], before[k])  # weights restored


def test_grad_check_catches_a_wrong_gradient(monkeypatch):
    model, xs, ys, h0 = random_problem(4, 3, 5, 2, seed=0)
    backward = NumpyRNN.backward
    def wrong(self, cache):
        g = backward(self, cache)
        g['W_hh'] = g['W_hh'] * 1.01
        return g
    monkeypatch.setattr(NumpyRNN, 'backward', wrong)
    errs = grad_check(model, xs, ys, h0)
    assert errs['W_hh'] > 1e-3 and errs['W_xh'] < 1e-6


@pytest.mark.parametrize('V,H,T,B,with_h0', [(3, 2, 1, 1, False), (5, 4, 6, 3, True), (26, 16, 8, 5, True),
                                             (7, 9, 12, 1, False)])
def test_same_as_torch_autograd(V, H, T, B, with_h0):
    model, xs, ys, h0 = random_problem(V, H, T, B, seed=V * H + T, with_h0=with_h0)
    tl, tg, thT = torch_loss_and_grads(model, xs, ys, h0)
    l, g = model.loss_and_grads(xs, ys, h0)
    assert abs(l - tl) < 1e-10
    assert set(g) == set(tg)
    for k in g:
        assert g[k].shape == tg[k].shape
        np.testing.assert_allclose(g[k], tg[k], rtol=0, atol=1e-10, err_msg=k)
    np.testing.assert_allclose(model.forward(xs, h0)[1][-1], thT, rtol=0, atol=1e-12)


def test_batch_is_mean_of_single_sequences():
    model, xs, ys, h0 = random_problem(6, 5, 4, 3, seed=1)
    l, g = model.loss_and_grads(xs, ys, h0)
    singles = [model.loss_and_grads(xs[:, b], ys[:, b], h0[b:b + 1]) for b in range(3)]
    assert abs(l - np.mean([s[0] for s in singles])) < 1e-12
    for k in g: np.testing.assert_allclose(g[k], np.mean([s[1][k] for s in singles], 0), rtol=0, atol=1e-14)
    logits, hs = model.forward(xs, h0)
    assert logits.shape == (4, 3, 6) and hs.shape == (5, 3, 5)
    np.testing.assert_array_equal(hs[0], h0)


def test_torch_state_dict_round_trip():
    V, H = 5, 4
    net = torch.nn.ModuleDict(dict(rnn=torch.nn.RNN(V, H), out=torch.nn.Linear(H, V))).double()  # two non-zero biases
    model = NumpyRNN('abcde', n_hidden=H)
    model.load_torch_state_dict(net.state_dict())
    xs = np.array([[0, 1], [2, 3], [4, 0]])
    out, _ = net.rnn(F.one_hot(torch.from_numpy(xs), V).double())
    np.testing.assert_allclose(model.forward(xs)[0], net.out(out).detach().numpy(), rtol=0, atol=1e-12)
    again = NumpyRNN('abcde', n_hidden=H, seed=7)
    again.load_torch_state_dict(model.torch_state_dict())
    for k in model.params: np.testing.assert_array_equal(again.params[k], model.params[k])
    with pytest.raises(ValueError, match=r'W_xh: expected shape \(5, 3\), got \(5, 4\)'):
        NumpyRNN('abcde', n_hidden=3).load_torch_state_dict(net.state_dict())


# --- clipping and Adam --------------------------------------------------------------------------

def test_clip_grad_norm_bounds_norm_and_keeps_direction():
    model, xs, ys, h0 = random_problem(5, 4, 6, 3, seed=2)
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


def test_fit_clips_gradients(monkeypatch):
    "`fit` hands Adam gradients whose norm is at most `max_norm`."
    seen = []
    step = NumpyAdam.step
    def spy(self, grads):
        seen.append(grad_norm(grads))
        step(self, grads)
    monkeypatch.setattr(NumpyAdam, 'step', spy)
    model = NumpyRNN(ALPHABET, n_hidden=8)
    xs, ys = next_char_windows(model.encode(ALPHABET))
    model.fit(xs, ys, n_steps=5, max_norm=0.05)
    assert len(seen) == 5 and max(seen) <= 0.05


def test_adam_matches_torch():
    rng = np.random.default_rng(3)
    params = {'w': rng.normal(size=(3, 4)), 'b': rng.normal(size=4)}
    tparams = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in params.values()]
    opt, topt = NumpyAdam(params, lr=0.03), torch.optim.Adam(tparams, lr=0.03)
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


def test_alphabet_predictions():
    model = NumpyRNN(ALPHABET, n_hidden=32, seed=0)
    xs, ys = next_char_windows(model.encode(ALPHABET), 3)
    t0 = time.perf_counter()
    losses = model.fit(xs, ys)
    assert time.perf_counter() - t0 < 5
    assert losses[-1] < 0.01 < 3 < losses[0]
    assert losses[-1] < losses[len(losses) // 2] < losses[0]
    assert model.predict('abc') == 'd'
    assert model.predict('bcd') == 'e'
    assert model.predict('cde') == 'f'
    assert model.predict('abc', n=3) == 'def'
    assert model.predict('x', n=0) == ''


def test_training_is_deterministic_under_a_seed():
    xs, ys = next_char_windows(np.arange(26), 3)
    a, b, c = (NumpyRNN(ALPHABET, n_hidden=16, seed=s) for s in (42, 42, 43))
    la, lb, lc = (m.fit(xs, ys, n_steps=50) for m in (a, b, c))
    assert la == lb and la != lc
    for k in a.params: np.testing.assert_array_equal(a.params[k], b.params[k])


# --- bad input ----------------------------------------------------------------------------------

def test_bad_input_errors():
    model = NumpyRNN(ALPHABET, n_hidden=4)
    with pytest.raises(ValueError, match=r"unknown characters \['!', 'C'\]"): model.predict('abC!')
    with pytest.raises(ValueError, match='ñ'): model.encode('año')
    with pytest.raises(ValueError, match='empty'): model.predict('')
    with pytest.raises(ValueError, match='n must be'): model.predict('a', n=-1)
    with pytest.raises(ValueError, match=r'outside \[0, 26\): \[26, 30\]'): model.forward(np.array([[0, 26], [30, 1]]))
    with pytest.raises(ValueError, match='integer'): model.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match='same shape'): model.loss(np.zeros((3, 2), int), np.zeros((3, 1), int))
    with pytest.raises(ValueError, match=r'h0 must have shape \(2, 4\)'): model.forward(np.zeros((3, 2), int), np.zeros((1, 4)))
    with pytest.raises(ValueError, match='distinct'): NumpyRNN('abca')
    with pytest.raises(ValueError, match='distinct'): NumpyRNN('')
    with pytest.raises(ValueError, match='n_hidden'): NumpyRNN('ab', n_hidden=0)
    with pytest.raises(ValueError, match='longer than seq_len'): next_char_windows(np.arange(3), 3)
