"Scratch cells and layers of `textkit.cells` against `torch.nn`: values, gradients, masking, round trips, bad input."
import pytest, torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from hypothesis import given, settings, strategies as st
from textkit.cells import *

# name: (scratch class, torch class, options)
CELLS = {'rnn_tanh': (RNNCell, nn.RNNCell, dict(nonlinearity='tanh')), 'rnn_relu': (RNNCell, nn.RNNCell, dict(nonlinearity='relu')),
         'lstm': (LSTMCell, nn.LSTMCell, {}), 'gru': (GRUCell, nn.GRUCell, {})}
LAYERS = {'rnn_tanh': (RNN, nn.RNN, dict(nonlinearity='tanh')), 'rnn_relu': (RNN, nn.RNN, dict(nonlinearity='relu')),
          'lstm': (LSTM, nn.LSTM, {}), 'gru': (GRU, nn.GRU, {})}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
few = settings(max_examples=25, deadline=None)

def twins(table, kind, dtype, **cfg):
    "A scratch module and its `torch.nn` twin holding the same weights"
    cls, torch_cls, opts = table[kind]
    scratch = cls(**cfg, **opts, dtype=dtype)
    fused = torch_cls(**cfg, **opts, dtype=dtype)
    fused.load_state_dict(scratch.state_dict())
    return scratch, fused

def flat(state):
    "Tensors of a state or output: `t`, `(t, (h, c))`, ... as a flat tuple"
    if isinstance(state, torch.Tensor): return (state,)
    return tuple(t for s in state for t in flat(s))

def run(m, x, hx, seed, **kw):
    "Outputs of `m(x, hx)` and gradients (input, state, parameters) of a fixed random function of them"
    m.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    hx = None if hx is None else tuple(t.clone().requires_grad_() for t in hx) if isinstance(hx, tuple) else hx.clone().requires_grad_()
    res = m(x, hx, **kw) if kw else m(x, hx)
    g = torch.Generator().manual_seed(seed)
    sum((t*torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in flat(res)).backward()
    grads = {'input': x.grad} | {f'hx{i}': t.grad for i, t in enumerate(flat(hx) if hx is not None else ())}
    return res, grads | {k: p.grad for k, p in m.named_parameters()}

def assert_same(a, b, tol):
    for x, y in zip(flat(a), flat(b), strict=True): torch.testing.assert_close(x, y, atol=tol, rtol=tol)

def assert_same_grads(ga, gb, tol):
    assert list(ga) == list(gb)
    for k in ga: torch.testing.assert_close(ga[k], gb[k], atol=tol, rtol=tol, msg=lambda m: f"grad of {k}: {m}")

dtypes = st.sampled_from([torch.float32, torch.float64])

@few
@given(kind=st.sampled_from(list(CELLS)), dtype=dtypes, input_size=st.integers(1, 6), hidden_size=st.integers(1, 6),
       batch=st.one_of(st.none(), st.integers(1, 4)), bias=st.booleans(), with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_cells_match_torch(kind, dtype, input_size, hidden_size, batch, bias, with_state, seed):
    torch.manual_seed(seed)
    scratch, fused = twins(CELLS, kind, dtype, input_size=input_size, hidden_size=hidden_size, bias=bias)
    lead = () if batch is None else (batch,)
    x = torch.randn(*lead, input_size, dtype=dtype)
    hx = None
    if with_state:
        hx = torch.randn(*lead, hidden_size, dtype=dtype)
        if kind == 'lstm': hx = (hx, torch.randn(*lead, hidden_size, dtype=dtype))
    out, g = run(scratch, x, hx, seed)
    ref, ref_g = run(fused, x, hx, seed)
    assert_same(out, ref, TOL[dtype])
    assert_same_grads(g, ref_g, TOL[dtype])

@few
@given(kind=st.sampled_from(list(LAYERS)), dtype=dtypes, input_size=st.integers(1, 5), hidden_size=st.integers(1, 5),
       num_layers=st.integers(1, 3), bidirectional=st.booleans(), batch_first=st.booleans(), bias=st.booleans(),
       seq=st.integers(1, 6), batch=st.one_of(st.none(), st.integers(1, 3)), with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_layers_match_torch(kind, dtype, input_size, hidden_size, num_layers, bidirectional, batch_first, bias, seq, batch, with_state, seed):
    torch.manual_seed(seed)
    scratch, fused = twins(LAYERS, kind, dtype, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                           bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    shape = (seq, input_size) if batch is None else (batch, seq, input_size) if batch_first else (seq, batch, input_size)
    x = torch.randn(*shape, dtype=dtype)
    hx = None
    if with_state:
        hshape = (num_layers*(1+bidirectional), *(() if batch is None else (batch,)), hidden_size)
        hx = torch.randn(*hshape, dtype=dtype)
        if kind == 'lstm': hx = (hx, torch.randn(*hshape, dtype=dtype))
    out, g = run(scratch, x, hx, seed)
    ref, ref_g = run(fused, x, hx, seed)
    assert_same(out, ref, TOL[dtype])
    assert_same_grads(g, ref_g, TOL[dtype])

def pad_batch(seqs, pad_first, batch_first, gen):
    "Pad `seqs` with large random values (never zeros, so that leaks show) on either side"
    T = max(len(s) for s in seqs)
    out = 100*torch.randn(len(seqs), T, seqs[0].shape[-1], generator=gen, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        if pad_first: out[i, T-len(s):] = s
        else: out[i, :len(s)] = s
    return out if batch_first else out.transpose(0, 1)

def requiring_grad(hx):
    "A copy of state `hx` (None, `h` or `(h, c)`) whose tensors require grad"
    if hx is None: return None
    if isinstance(hx, tuple): return tuple(t.clone().requires_grad_() for t in hx)
    return hx.clone().requires_grad_()

@few
@given(kind=st.sampled_from(list(LAYERS)), dtype=dtypes, num_layers=st.integers(1, 3), bidirectional=st.booleans(),
       batch_first=st.booleans(), pad_first=st.booleans(), use_mask=st.booleans(), with_state=st.booleans(),
       lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_masked_matches_packed(kind, dtype, num_layers, bidirectional, batch_first, pad_first, use_mask, with_state, lengths, seed):
    "Scratch layer on a left- or right-padded batch with `mask` or `lengths` equals `torch.nn` on the packed batch"
    torch.manual_seed(seed)
    I, H, B, T, tol = 3, 4, len(lengths), max(lengths), TOL[dtype]
    scratch, fused = twins(LAYERS, kind, dtype, input_size=I, hidden_size=H, num_layers=num_layers,
                           bidirectional=bidirectional, batch_first=batch_first)
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(n, I, generator=gen, dtype=dtype) for n in lengths]
    lens = torch.tensor(lengths)
    hx = None
    if with_state:
        hx = torch.randn(num_layers*(1+bidirectional), B, H, dtype=dtype)
        if kind == 'lstm': hx = (hx, torch.randn_like(hx))
    if pad_first or use_mask: kw = dict(mask=lengths_to_mask(lens, T, pad_first=pad_first, batch_first=batch_first))
    else: kw = dict(lengths=lens)
    x, hx_s = pad_batch(seqs, pad_first, batch_first, gen).requires_grad_(), requiring_grad(hx)
    out, h_n = scratch(x, hx_s, **kw)
    xr, hx_f = pad_batch(seqs, False, batch_first, gen).requires_grad_(), requiring_grad(hx)
    ref_out, ref_h = fused(pack_padded_sequence(xr, lens, batch_first=batch_first, enforce_sorted=False), hx_f)
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=batch_first, total_length=T)
    # values: final states, outputs on real tokens, zeros on padding
    assert_same(h_n, ref_h, tol)
    to_bt = (lambda t: t) if batch_first else (lambda t: t.transpose(0, 1))  # (batch, seq, ...)
    out_b, ref_b = to_bt(out), to_bt(ref_out)
    real = [slice(T-n, T) if pad_first else slice(0, n) for n in lengths]
    pads = [slice(0, T-n) if pad_first else slice(n, T) for n in lengths]
    for i, n in enumerate(lengths):
        torch.testing.assert_close(out_b[i, real[i]], ref_b[i, :n], atol=tol, rtol=tol)
        assert (out_b[i, pads[i]] == 0).all()
    # gradients of the same function of real outputs and final states
    w_out = torch.randn(B, T, out_b.shape[-1], generator=gen, dtype=dtype)
    w_h = [torch.randn(t.shape, generator=gen, dtype=dtype) for t in flat(h_n)]
    def loss(o, hn, shift):
        ws = torch.stack([w_out[i].roll(T-n, 0) if shift else w_out[i] for i, n in enumerate(lengths)])
        return (o*ws).sum() + sum((t*w).sum() for t, w in zip(flat(hn), w_h))
    loss(out_b, h_n, pad_first).backward()
    loss(ref_b, ref_h, False).backward()
    ref_params = dict(fused.named_parameters())
    for k, p in scratch.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[k].grad, atol=tol, rtol=tol, msg=lambda s: f"grad of {k}: {s}")
    for a, b in zip(flat(hx_s) if hx is not None else (), flat(hx_f) if hx is not None else ()):
        torch.testing.assert_close(a.grad, b.grad, atol=tol, rtol=tol)
    gx, gxr = to_bt(x.grad), to_bt(xr.grad)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(gx[i, real[i]], gxr[i, :n], atol=tol, rtol=tol)
        assert (gx[i, pads[i]] == 0).all()

def test_padding_never_changes_a_sequence():
    "A sequence alone equals the same sequence inside a left- or right-padded batch, for lengths and mask"
    torch.manual_seed(0)
    for cls in (RNN, LSTM, GRU):
        m = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        gen = torch.Generator().manual_seed(1)
        seqs = [torch.randn(n, 3, generator=gen) for n in (5, 2, 7)]
        lens = torch.tensor([5, 2, 7])
        for pad_first in (False, True):
            x = pad_batch(seqs, pad_first, True, gen)
            out, h = m(x, mask=lengths_to_mask(lens, 7, pad_first=pad_first))
            if not pad_first:
                out2, h2 = m(x, lengths=lens)
                assert_same((out, h), (out2, h2), 0)
            for i, s in enumerate(seqs):
                o1, h1 = m(s[None])
                real = slice(7-len(s), 7) if pad_first else slice(0, len(s))
                torch.testing.assert_close(out[i, real], o1[0], atol=1e-6, rtol=1e-6)
                for a, b in zip(flat(h), flat(h1)): torch.testing.assert_close(a[:, i], b[:, 0], atol=1e-6, rtol=1e-6)

def test_mask_without_padding_is_identity_and_empty_sequence_keeps_h0():
    m = GRU(3, 4, bidirectional=True)
    x, h0 = torch.randn(5, 2, 3), torch.randn(2, 2, 4)
    assert_same(m(x, h0, mask=torch.ones(5, 2, dtype=torch.bool)), m(x, h0), 0)
    out, h = m(x, h0, lengths=torch.tensor([0, 5]))
    assert (out[:, 0] == 0).all()
    torch.testing.assert_close(h[:, 0], h0[:, 0])

def test_unbatched_mask():
    m = LSTM(3, 4)
    x = torch.randn(6, 3)
    out, (h, c) = m(x, mask=torch.tensor([False, False, True, True, True, True]))
    out1, (h1, c1) = m(x[2:])
    torch.testing.assert_close(out[2:], out1); torch.testing.assert_close(h, h1)
    assert (out[:2] == 0).all()

ALL = [(RNNCell, (3, 4)), (LSTMCell, (3, 4)), (GRUCell, (3, 4)),
       (RNN, (3, 4, 2)), (LSTM, (3, 4, 2)), (GRU, (3, 4, 2))]

@pytest.mark.parametrize('cls,args', ALL)
def test_same_seed_same_init(cls, args):
    "Parameters drawn in torch's order and distribution: same seed, same weights"
    torch_cls = getattr(nn, cls.__name__)
    torch.manual_seed(7); a = cls(*args, bidirectional=True) if 'Cell' not in cls.__name__ else cls(*args)
    torch.manual_seed(7); b = torch_cls(*args, bidirectional=True) if 'Cell' not in cls.__name__ else torch_cls(*args)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa: assert torch.equal(sa[k], sb[k]), k
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]

@pytest.mark.parametrize('cls,args', ALL)
@pytest.mark.parametrize('bias', [True, False])
def test_state_dict_round_trips(cls, args, bias):
    torch_cls = getattr(nn, cls.__name__)
    kw = dict(bias=bias) | ({} if 'Cell' in cls.__name__ else dict(bidirectional=True))
    a, b = cls(*args, **kw), torch_cls(*args, **kw)
    b.load_state_dict(a.state_dict())              # scratch -> torch
    c = cls(*args, **kw); c.load_state_dict(b.state_dict())  # torch -> scratch
    for k, v in a.state_dict().items(): assert torch.equal(v, c.state_dict()[k])
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randn(2, 5, 3) if 'Cell' not in cls.__name__ else torch.randn(2, 3)
    assert_same(a(x), b(x), 1e-6)

@pytest.mark.parametrize('cls,args', ALL)
def test_to_torch_from_torch_round_trip(cls, args):
    kw = {} if 'Cell' in cls.__name__ else dict(batch_first=True, bidirectional=True, dropout=0.25)
    if cls in (RNN, RNNCell): kw['nonlinearity'] = 'relu'
    a = cls(*args, **kw, dtype=torch.float64).eval()
    t = to_torch(a)
    assert type(t) is getattr(nn, cls.__name__) and not t.training
    assert next(t.parameters()).dtype == torch.float64
    for k in ('input_size', 'hidden_size', 'bias') + (() if 'Cell' in cls.__name__ else ('num_layers', 'batch_first', 'dropout', 'bidirectional')):
        assert getattr(t, k) == getattr(a, k), k
    if 'nonlinearity' in kw: assert t.nonlinearity == 'relu'
    b = from_torch(t)
    assert type(b) is cls and b.extra_repr() == a.extra_repr() and not b.training
    for k, v in a.state_dict().items(): assert torch.equal(v, b.state_dict()[k])
    for k, v in a.state_dict().items(): assert torch.equal(v, a.to_torch().state_dict()[k])
    x = torch.randn(2, 5, 3, dtype=torch.float64) if 'Cell' not in cls.__name__ else torch.randn(2, 3, dtype=torch.float64)
    assert_same(a(x), t(x), 1e-10)

def test_conversion_refusals():
    with pytest.raises(ValueError, match='textbook GRU'): to_torch(GRU(3, 4, reset_after=False))
    with pytest.raises(ValueError, match='textbook GRU'): GRUCell(3, 4, reset_after=False).to_torch()
    proj = from_torch(nn.LSTM(3, 4, proj_size=2))  # projections convert both ways now
    assert type(proj) is LSTM and proj.proj_size == 2 and to_torch(proj).proj_size == 2
    with pytest.raises(TypeError, match='from_torch converts'): from_torch(nn.Linear(3, 4))
    with pytest.raises(TypeError, match='to_torch converts'): to_torch(nn.LSTM(3, 4))

def gru_textbook(x, h, w_ih, w_hh, b_ih, b_hh):
    "The GRU of Cho et al. (2014) written out gate by gate, z keeping the old state"
    (W_ir, W_iz, W_in), (W_hr, W_hz, W_hn) = w_ih.chunk(3), w_hh.chunk(3)
    (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = b_ih.chunk(3), b_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + (r*h) @ W_hn.T + b_hn)
    return (1-z)*n + z*h

@few
@given(input_size=st.integers(1, 5), hidden_size=st.integers(1, 5), batch=st.integers(1, 3), seq=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gru_textbook_is_different_but_valid(input_size, hidden_size, batch, seq, bias, seed):
    torch.manual_seed(seed)
    cell = GRUCell(input_size, hidden_size, bias=bias, reset_after=False, dtype=torch.float64)
    x, h = torch.randn(batch, input_size, dtype=torch.float64), torch.randn(batch, hidden_size, dtype=torch.float64)
    zeros = torch.zeros(3*hidden_size, dtype=torch.float64)
    b_ih, b_hh = (cell.bias_ih, cell.bias_hh) if bias else (zeros, zeros)
    torch.testing.assert_close(cell(x, h), gru_textbook(x, h, cell.weight_ih, cell.weight_hh, b_ih, b_hh), atol=1e-10, rtol=1e-10)
    # the layer runs the same textbook step along the sequence
    layer = GRU(input_size, hidden_size, bias=bias, reset_after=False, dtype=torch.float64)
    layer.load_state_dict({k+'_l0': v for k, v in cell.state_dict().items()})
    xs = torch.randn(seq, batch, input_size, dtype=torch.float64)
    out, h_n = layer(xs, h[None])
    for t in range(seq): h = cell(xs[t], h); torch.testing.assert_close(out[t], h, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h_n[0], h, atol=1e-10, rtol=1e-10)

def test_gru_textbook_differs_from_torch():
    torch.manual_seed(0)
    textbook, pytorch_form = GRUCell(4, 5, reset_after=False), GRUCell(4, 5)
    pytorch_form.load_state_dict(textbook.state_dict())
    ref = to_torch(pytorch_form)
    x, h = torch.randn(3, 4), torch.randn(3, 5)
    torch.testing.assert_close(pytorch_form(x, h), ref(x, h))
    assert (textbook(x, h) - ref(x, h)).abs().max() > 1e-3

def test_dropout():
    torch.manual_seed(0)
    m = LSTM(3, 8, num_layers=3, dropout=0.5, bidirectional=True)
    x = torch.randn(6, 2, 3)
    ref = to_torch(m)
    m.eval(); ref.eval()
    assert_same(m(x), ref(x), 1e-6)                # no dropout in eval mode
    m.train()
    a, b = m(x)[0], m(x)[0]
    assert not torch.allclose(a, b)                # dropout active between layers in training
    mask = torch.tensor([[True, True]]*4 + [[False, True]]*2)
    out, _ = m(x, mask=mask)
    assert (out[4:, 0] == 0).all()                 # padding stays zero through dropout
    with pytest.warns(UserWarning, match='num_layers=1'): GRU(3, 4, dropout=0.2)

def test_reprs():
    assert repr(RNNCell(3, 4, nonlinearity='relu')) == "RNNCell(3, 4, nonlinearity=relu)"
    assert repr(LSTM(3, 4, 2, bias=False, batch_first=True)) == "LSTM(3, 4, num_layers=2, bias=False, batch_first=True)"
    assert repr(GRU(3, 4, reset_after=False)) == "GRU(3, 4, reset_after=False)"

def test_lengths_to_mask():
    lens = torch.tensor([3, 1, 0])
    assert lengths_to_mask(lens, 4).tolist() == [[True, True, True, False], [True, False, False, False], [False]*4]
    assert lengths_to_mask(lens, 4, pad_first=True).tolist() == [[False, True, True, True], [False, False, False, True], [False]*4]
    assert lengths_to_mask([2, 4], 4, batch_first=False).shape == (4, 2)

BAD = [  # torch.nn's exception types, torch.nn's facts, and the value or shape that was given
    (lambda: RNNCell(3, 4, nonlinearity='sigmoid'), ValueError, "Unknown nonlinearity 'sigmoid'"),
    (lambda: RNN(3, 4, nonlinearity='gelu'), ValueError, "Unknown nonlinearity 'gelu'"),
    (lambda: LSTMCell(-1, 4), RuntimeError, 'negative dimension -1: LSTMCell got input_size=-1'),
    (lambda: LSTMCell(3.0, 4), TypeError, 'input_size should be of type int, got: float (3.0)'),
    (lambda: GRU(3, 2.5), TypeError, 'hidden_size should be of type int, got: float (2.5)'),
    (lambda: GRU(0, 2), ValueError, 'input_size must be greater than zero, got 0'),
    (lambda: LSTM(3, 4, num_layers=0), ValueError, 'num_layers must be greater than zero, got 0'),
    (lambda: LSTM(3, 4, num_layers=2.0), TypeError, 'num_layers should be of type int, got: float'),
    (lambda: LSTM(3, 4, 2, dropout=1.5), ValueError, 'dropout should be a number in range [0, 1] representing the probability of an element being zeroed, got 1.5'),
    (lambda: LSTM(3, 4, proj_size=4), ValueError, 'proj_size has to be smaller than hidden_size, got proj_size=4, hidden_size=4'),
    (lambda: GRU(3, 4, proj_size=2), ValueError, 'proj_size argument is only supported for LSTM'),
    (lambda: LSTM(3, 4, bidirectional='False'), TypeError, "bidirectional should be of type bool, got: str ('False')"),
    (lambda: GRU(3, 4, bias='False'), TypeError, "bias should be of type bool, got: str ('False')"),
    (lambda: LSTMCell(3, 4)(torch.randn(2, 5)), RuntimeError, 'LSTMCell: input has inconsistent input_size: got 5 expected 3'),
    (lambda: GRUCell(3, 4)(torch.randn(2, 2, 3)), ValueError, 'GRUCell: Expected input to be 1D or 2D, got 3D instead (shape (2, 2, 3))'),
    (lambda: RNNCell(3, 4)([1., 2., 3.]), TypeError, 'expects a Tensor input'),
    (lambda: RNNCell(3, 4)(torch.randn(2, 3), torch.randn(3, 4)), RuntimeError, "Input batch size 2 doesn't match hidden0 batch size 3"),
    (lambda: RNNCell(3, 4)(torch.randn(3), torch.randn(2, 4)), RuntimeError, 'hidden0 must be 1-D like the input, got shape (2, 4)'),
    (lambda: LSTMCell(3, 4)(torch.randn(2, 3), torch.randn(2, 4)), TypeError, 'pair (h, c)'),
    (lambda: LSTM(3, 4)(torch.randn(5, 2, 4)), RuntimeError, 'LSTM: input.size(-1) must be equal to input_size. Expected 3, got 4'),
    (lambda: GRU(3, 4)(torch.randn(5, 4)), RuntimeError, 'GRU: input.size(-1) must be equal to input_size. Expected 3, got 4'),
    (lambda: GRU(3, 4)(torch.randn(1, 5, 2, 3)), ValueError, 'GRU: Expected input to be 2D or 3D, got 4D instead'),
    (lambda: GRU(3, 4, 2)(torch.randn(5, 2, 3), torch.randn(1, 2, 4)), RuntimeError, 'Expected hidden size (2, 2, 4), got [1, 2, 4]'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), torch.randn(2, 4)), RuntimeError, 'For batched 3-D input, hx should also be 3-D but got (2-D) tensors'),
    (lambda: GRU(3, 4)(torch.randn(5, 3, dtype=torch.float64)), ValueError, 'RNN input dtype (torch.float64) does not match weight dtype (torch.float32)'),
    (lambda: LSTM(3, 4)(torch.randn(5, 2, 3), torch.randn(1, 2, 4)), TypeError, 'pair (h, c)'),
    (lambda: LSTM(3, 4, proj_size=2)(torch.randn(5, 2, 3), (torch.randn(1, 2, 4), torch.randn(1, 2, 4))), RuntimeError, 'Expected hidden[0] size (1, 2, 2), got [1, 2, 4]'),
    (lambda: LSTM(3, 4)(torch.randn(0, 2, 3)), RuntimeError, 'Expected sequence length to be larger than 0 in RNN'),
    (lambda: LSTM(3, 4)(pack_padded_sequence(torch.randn(5, 2, 3), [5, 3]), lengths=[5, 3]), ValueError, 'PackedSequence carries its own lengths'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), mask=torch.ones(2, 5, dtype=torch.bool)), ValueError, 'bool tensor of shape (5, 2)'),
    (lambda: GRU(3, 4, batch_first=True)(torch.randn(2, 5, 3), mask=torch.ones(2, 5)), ValueError, 'expects mask as a bool tensor'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([6, 2])), ValueError, 'lengths must lie in [0, 5]'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([5])), ValueError, 'expects lengths as 2 integers'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([5., 2.])), ValueError, 'expects lengths as 2 integers'),
    (lambda: GRU(3, 4)(torch.randn(5, 2, 3), lengths=[5, 2], mask=torch.ones(5, 2, dtype=torch.bool)), ValueError, 'not both'),
]

@pytest.mark.parametrize('f,exc,msg', BAD)
def test_bad_input_gives_clear_errors(f, exc, msg):
    with pytest.raises(exc) as e: f()
    assert msg in str(e.value)

def test_backward_is_linear_in_sequence_length():
    "Outputs are stacked, not written in place: the autograd graph grows linearly with the sequence"
    def graph(T):
        out, _ = GRU(2, 3, bidirectional=True)(torch.randn(T, 1, 2))
        seen, todo = set(), [out.grad_fn]
        while todo:
            f = todo.pop()
            if f is None or f in seen: continue
            seen.add(f); todo += [g for g, _ in f.next_functions]
        return len(seen), {type(f).__name__ for f in seen}
    (n10, kinds), (n20, _), (n40, _) = graph(10), graph(20), graph(40)
    assert n40 - n20 == 2*(n20 - n10)
    assert not any('Copy' in k or 'IndexPut' in k for k in kinds)
    assert {'StackBackward0', 'UnbindBackward0'} <= kinds

STRICTER = [  # textkit refuses at construction what torch.nn takes silently or fails on later
    (lambda cls: cls(3, 4, bidirectional='False'), nn.LSTM),   # torch: a string is true, two directions
    (lambda cls: cls(3, 4, nonlinearity='gelu'), nn.RNNCell),  # torch cells: RuntimeError at the first call
]

@pytest.mark.parametrize('make,torch_cls', STRICTER)
def test_stricter_than_torch(make, torch_cls):
    make(torch_cls)  # torch.nn builds it
    with pytest.raises((TypeError, ValueError)): make(globals()[torch_cls.__name__])

@few
@given(dtype=dtypes, input_size=st.integers(1, 5), hidden_size=st.integers(2, 6), proj=st.data(), num_layers=st.integers(1, 3),
       bidirectional=st.booleans(), batch_first=st.booleans(), bias=st.booleans(), seq=st.integers(1, 5),
       batch=st.one_of(st.none(), st.integers(1, 3)), with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_lstm_projections_match_torch(dtype, input_size, hidden_size, proj, num_layers, bidirectional, batch_first, bias, seq, batch, with_state, seed):
    "LSTM with `proj_size`: outputs, final states and every gradient equal torch.nn's"
    torch.manual_seed(seed)
    P = proj.draw(st.integers(1, hidden_size - 1))
    scratch, fused = twins(LAYERS, 'lstm', dtype, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                           bidirectional=bidirectional, batch_first=batch_first, bias=bias, proj_size=P)
    shape = (seq, input_size) if batch is None else (batch, seq, input_size) if batch_first else (seq, batch, input_size)
    x, hx = torch.randn(*shape, dtype=dtype), None
    if with_state:
        lead = (num_layers*(1+bidirectional), *(() if batch is None else (batch,)))
        hx = (torch.randn(*lead, P, dtype=dtype), torch.randn(*lead, hidden_size, dtype=dtype))
    out, g = run(scratch, x, hx, seed)
    ref, ref_g = run(fused, x, hx, seed)
    assert out[0].shape[-1] == P*(1+bidirectional) and out[1][0].shape[-1] == P and out[1][1].shape[-1] == hidden_size
    assert_same(out, ref, TOL[dtype])
    assert_same_grads(g, ref_g, TOL[dtype])

@pytest.mark.parametrize('enforce_sorted', [True, False])
def test_packed_in_packed_out(enforce_sorted):
    "A PackedSequence in gives torch.nn's PackedSequence out, gradients included, and the same numbers as `lengths=`"
    torch.manual_seed(0)
    lengths = [5, 3, 3, 1] if enforce_sorted else [3, 5, 1, 3]
    for kind in LAYERS:
        scratch, fused = twins(LAYERS, kind, torch.float64, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
        x = torch.randn(5, 4, 3, dtype=torch.float64)
        outs = []
        for m in (scratch, fused):
            xl = x.clone().requires_grad_()
            out, h = m(pack_padded_sequence(xl, lengths, enforce_sorted=enforce_sorted))
            (out.data.sin().sum() + sum(t.cos().sum() for t in flat(h))).backward()
            outs.append((out, h, xl.grad, [p.grad for p in m.parameters()]))
        (o, h, gx, gp), (ro, rh, rgx, rgp) = outs
        assert type(o) is type(ro) and torch.equal(o.batch_sizes, ro.batch_sizes)
        assert (o.sorted_indices is None) == enforce_sorted and (o.sorted_indices is None or torch.equal(o.sorted_indices, ro.sorted_indices))
        assert_same((o.data, h, gx, *gp), (ro.data, rh, rgx, *rgp), 1e-10)
        padded, h2 = scratch(x, lengths=torch.tensor(lengths))
        assert_same(h, h2, 1e-12)
        torch.testing.assert_close(pad_packed_sequence(o, total_length=5)[0], padded, atol=1e-12, rtol=0)

# the fast LSTM path (`lstm_scan`), on every device present: the cuda cases are skipped where there is no GPU
DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device'))]

def _fast_and_reference(device, **cfg):
    "An LSTM on the fast path, the same weights on the reference `scan`, and the `torch.nn` twin, in float64 on `device`"
    torch.manual_seed(0)
    fast = LSTM(**cfg, dtype=torch.double, device=device)
    slow = LSTM(**cfg, dtype=torch.double, device=device)
    slow.load_state_dict(fast.state_dict()); slow.fast_path = False
    return fast, slow, fast.to_torch()

def _run_dev(m, x, hx, seed=0, **kw):
    "`run` on any device: outputs and the gradients of a fixed random function of them"
    torch.manual_seed(1)  # the same dropout masks on both paths
    m.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    hx = None if hx is None else tuple(t.clone().requires_grad_() for t in hx) if isinstance(hx, tuple) else hx.clone().requires_grad_()
    res = m(x, hx, **kw)
    g = torch.Generator().manual_seed(seed)
    sum((t*torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)).sum() for t in flat(res)).backward()
    return flat(res) + (x.grad,) + tuple(t.grad for t in (flat(hx) if hx is not None else ())) + tuple(p.grad for p in m.parameters())

def _same(a, b, tol=1e-10):
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, atol=tol, rtol=0)

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('bidirectional', [False, True])
@pytest.mark.parametrize('training', [False, True])
def test_fast_lstm_equals_reference_and_torch(device, bidirectional, training):
    "Values and every gradient within 1e-10 in float64: with lengths= and dropout in training against the reference, packed against torch.nn"
    fast, slow, ref = _fast_and_reference(device, input_size=3, hidden_size=5, num_layers=2, bidirectional=bidirectional, dropout=0.4)
    for m in (fast, slow, ref): m.train(training)
    T, B, D = 6, 4, 2 if bidirectional else 1
    x = torch.randn(T, B, 3, dtype=torch.double, device=device)
    hx = tuple(torch.randn(2*D, B, 5, dtype=torch.double, device=device) for _ in range(2))
    lens = torch.tensor([6, 3, 1, 0])
    for kw in ({}, dict(lengths=lens), dict(mask=lengths_to_mask(lens, T, batch_first=False).to(device))):
        _same(_run_dev(fast, x, hx, **kw), _run_dev(slow, x, hx, **kw))
    if not training:  # torch.nn's dropout masks differ from ours; evaluation compares with it
        _same(_run_dev(fast, x, hx), _run_dev(ref, x, hx))
        lens = torch.tensor([6, 3, 1, 2])  # a PackedSequence needs lengths >= 1
        p_fast, p_ref = (m(pack_padded_sequence(x, lens, enforce_sorted=False), hx) for m in (fast, ref))
        torch.testing.assert_close(pad_packed_sequence(p_fast[0])[0], pad_packed_sequence(p_ref[0])[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(p_fast[1], p_ref[1], atol=1e-10, rtol=0)

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('padded', [False, True])
def test_lstm_scan_gradcheck(device, reverse, padded):
    from torch.autograd import gradcheck, gradgradcheck
    torch.manual_seed(2)
    T, B, H = 5, 3, 4
    args = [torch.randn(*s, dtype=torch.double, device=device, requires_grad=True) for s in [(T, B, 4*H), (B, H), (B, H), (4*H, H), (4*H,)]]
    mask = lengths_to_mask(torch.tensor([5, 2, 0]), T, batch_first=False)[..., None].to(device) if padded else None
    f = lambda *a: lstm_scan(*a, mask=mask, reverse=reverse)
    assert gradcheck(f, args, fast_mode=True) and gradgradcheck(f, args, fast_mode=True)
    with_grad = f(*args)
    with torch.no_grad():  # the forward-only path (no saved activations) gives the very same values
        for a, b in zip(f(*args), with_grad): torch.testing.assert_close(a, b, atol=0, rtol=0)

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kind', list(LAYERS))
def test_layers_on_device(device, kind):
    "Every scratch layer, built on `device`, equals its torch.nn twin there, values and gradients"
    cls, torch_cls, opts = LAYERS[kind]
    torch.manual_seed(3)
    scratch = cls(4, 6, num_layers=2, bidirectional=True, **opts, device=device, dtype=torch.double)
    fused = torch_cls(4, 6, num_layers=2, bidirectional=True, **opts, device=device, dtype=torch.double)
    fused.load_state_dict(scratch.state_dict())
    assert all(p.device.type == device for p in scratch.parameters())
    x = torch.randn(7, 3, 4, dtype=torch.double, device=device)
    a, b = _run_dev(scratch, x, None), _run_dev(fused, x, None)
    assert a[0].device.type == device
    _same(a, b)

def test_fast_path_where_it_applies(monkeypatch):
    "lstm_scan runs LSTM layers (training, inference, lengths=); the reference scan runs projections, fast_path=False, tracing, RNN and GRU"
    import textkit.cells as tc
    calls = []
    orig = tc.lstm_scan
    monkeypatch.setattr(tc, 'lstm_scan', lambda *a, **k: calls.append(1) or orig(*a, **k))
    x = torch.randn(5, 2, 3)
    def used(m, **kw):
        calls.clear(); m(x, **kw); return len(calls)
    lstm = LSTM(3, 4, bidirectional=True)
    assert used(lstm) == 2 and used(lstm, lengths=[5, 2]) == 2
    with torch.no_grad(): assert used(lstm) == 2
    assert used(LSTM(3, 4, proj_size=2)) == 0
    assert used(GRU(3, 4)) == 0 and used(RNN(3, 4)) == 0
    off = LSTM(3, 4); off.fast_path = False
    assert used(off) == 0
    calls.clear(); torch.jit.trace(lstm, x, check_trace=False); assert not calls
