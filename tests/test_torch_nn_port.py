"""PyTorch's own RNN tests, rewritten for textkit's scratch cells and layers.

Sources (torch 2.13): `test/test_nn.py` (the RNN/LSTM/GRU tests of `TestNN` and `TestNNDeviceType`) and
`test/test_modules.py` run over the `ModuleInfo` entries of `torch/testing/_internal/common_modules.py` for
`RNN`, `LSTM`, `GRU`, `RNNCell`, `LSTMCell` and `GRUCell` (their sample inputs and all their error inputs).
Every test takes `impl`, the module namespace under test: `textkit.cells`, or `torch.nn` as the control run
that proves the test itself right. The cuDNN comparisons run where CUDA is available and are skipped elsewhere.
"""
import copy, io, re, warnings
from itertools import product
import pytest, torch
from torch import nn
import torch.nn.utils.rnn as rnn_utils
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call
import textkit.cells as tk

IMPLS = {'textkit': tk, 'torch': nn}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (cuDNN)')
DEVICES = ['cpu', pytest.param('cuda', marks=cuda)]

@pytest.fixture(params=list(IMPLS))
def impl(request): return IMPLS[request.param]

@pytest.fixture(autouse=True)
def _seed(): torch.manual_seed(0)

def close(a, b, atol=1e-6, rtol=0, msg=None):
    "Nested tensors (tuples, lists, PackedSequence) equal within `atol`"
    if isinstance(a, rnn_utils.PackedSequence): a, b = tuple(a), tuple(b)
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), msg
        for x, y in zip(a, b): close(x, y, atol, rtol, msg)
    elif a is None: assert b is None, msg
    else: torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=msg)

def twin_of(m):
    "The `torch.nn` module with `m`'s configuration and weights (`m` itself in the control run)"
    return m if type(m).__module__.startswith('torch.') else tk.to_torch(m)

# ---------------------------------------------------------------------------------------------------------------
# test_nn.py: cells

@pytest.mark.parametrize('name,bias', list(product(['RNNCell', 'GRUCell'], [True, False])))
def test_RNN_cell(impl, name, bias):
    input, hx = torch.randn(3, 10), torch.randn(3, 20)
    cell = getattr(impl, name)(10, 20, bias=bias)
    for _ in range(6): hx = cell(input, hx)
    hx.sum().backward()
    assert all(p.grad is not None for p in cell.parameters())

def test_RNN_cell_forward_zero_hidden_size(impl):
    input, hx = torch.randn(3, 10), torch.randn(3, 0)
    for cell in (impl.RNNCell(10, 0, nonlinearity='relu'), impl.RNNCell(10, 0, nonlinearity='tanh'), impl.GRUCell(10, 0)):
        assert cell(input, hx).shape == torch.Size([3, 0])

@pytest.mark.parametrize('name', ['RNNCell', 'GRUCell'])
def test_RNN_cell_forward_input_size(impl, name):
    with pytest.raises(RuntimeError): getattr(impl, name)(10, 20)(torch.randn(3, 11), torch.randn(3, 20))

@pytest.mark.parametrize('make', [lambda i: i.RNNCell(10, 20, nonlinearity='relu'), lambda i: i.RNNCell(10, 20, nonlinearity='tanh'),
                                  lambda i: i.GRUCell(10, 20)])
def test_RNN_cell_forward_hidden_size(impl, make):
    with pytest.raises(RuntimeError): make(impl)(torch.randn(3, 10), torch.randn(3, 21))

@pytest.mark.parametrize('bias', [True, False])
def test_LSTM_cell(impl, bias):
    input, hx, cx = torch.randn(3, 10), torch.randn(3, 20), torch.randn(3, 20)
    lstm = impl.LSTMCell(10, 20, bias=bias)
    for _ in range(6): hx, cx = lstm(input, (hx, cx))
    (hx + cx).sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())

def test_LSTM_cell_forward_input_size(impl):
    with pytest.raises(RuntimeError): impl.LSTMCell(10, 20)(torch.randn(3, 11), (torch.randn(3, 20), torch.randn(3, 20)))

@pytest.mark.parametrize('which', ['hx', 'cx'])
def test_LSTM_cell_forward_hidden_size(impl, which):
    good, bad = torch.randn(3, 20), torch.randn(3, 21)
    with pytest.raises(RuntimeError): impl.LSTMCell(10, 20)(torch.randn(3, 10), (bad, good) if which == 'hx' else (good, bad))

@pytest.mark.parametrize('case', ['hidden batch size', 'hidden size', 'input size'])
def test_RNN_cell_no_broadcasting(impl, case):
    input, good_hx = torch.randn(3, 10), torch.randn(3, 20)
    bad_hx = torch.randn(1, 20) if case == 'hidden batch size' else torch.randn(3, 1) if case == 'hidden size' else good_hx
    if case == 'input size': input = torch.randn(3, 1)
    for cell, hx in [(impl.RNNCell(10, 20), bad_hx), (impl.GRUCell(10, 20), bad_hx),
                     (impl.LSTMCell(10, 20), (bad_hx, good_hx)), (impl.LSTMCell(10, 20), (good_hx, bad_hx))]:
        with pytest.raises(RuntimeError): cell(input, hx)

def test_lstmcell_backward_only_one_output_grad(impl):
    l = impl.LSTMCell(2, 3).to(dtype=torch.double)
    s = torch.randn(1, 2, dtype=torch.double, requires_grad=True)
    for i in range(2):
        out = l(s)[i]
        out.sum().backward()
        assert not (s.grad is None or s.grad.abs().sum().item() == 0)

# ---------------------------------------------------------------------------------------------------------------
# test_nn.py: layers, arguments and states

def _bad_shapes(correct_input, correct_hidden, bad=7):
    "The shape cases of `test_rnn_args_check`: one dimension of the input or of the state made wrong"
    upd = lambda shape, dim, size: tuple(size if i == dim else s for i, s in enumerate(shape))
    return [(upd(correct_input, 1, bad), correct_hidden),   # input batch size
            (correct_input, upd(correct_hidden, 1, bad)),   # hidden batch size
            (upd(correct_input, 2, bad), correct_hidden),   # input size
            (correct_input, upd(correct_hidden, 2, bad)),   # hidden size
            (correct_input, upd(correct_hidden, 0, bad))]   # hidden[0]: layers*directions

@pytest.mark.parametrize('mode', ['RNN', 'LSTM', 'GRU'])
@pytest.mark.parametrize('case', range(5))
def test_rnn_args_check(impl, mode, case):
    input_size, hidden_size, num_layers, batch_size, seq_len = 3, 5, 2, 4, 6
    input_shape, hidden_shape = _bad_shapes((seq_len, batch_size, input_size), (num_layers, batch_size, hidden_size))[case]
    input, hidden = torch.randn(input_shape), torch.randn(hidden_shape)
    if mode == 'LSTM': hidden = (hidden, hidden)
    with pytest.raises(RuntimeError): getattr(impl, mode)(input_size, hidden_size, num_layers)(input, hidden)

@pytest.mark.parametrize('case', range(8))
def test_projections_lstm_args_check(impl, case):
    input_size, hidden_size, proj_size, num_layers, batch_size, seq_len, bad = 3, 5, 2, 2, 4, 6, 7
    ci, ch, cc = (seq_len, batch_size, input_size), (num_layers, batch_size, proj_size), (num_layers, batch_size, hidden_size)
    upd = lambda shape, dim, size: tuple(size if i == dim else s for i, s in enumerate(shape))
    cases = [(upd(ci, 1, bad), ch, cc), (ci, upd(ch, 1, bad), upd(cc, 1, bad)), (upd(ci, 2, bad), ch, cc),
             (ci, upd(ch, 2, bad), upd(cc, 2, bad)), (ci, upd(ch, 0, bad), upd(cc, 0, bad)),
             (ci, upd(ch, 2, hidden_size), cc),   # h of hidden_size instead of proj_size
             (ci, upd(ch, 2, bad), cc), (ci, ch, upd(cc, 2, bad))]
    i, h, c = cases[case]
    model = impl.LSTM(input_size, hidden_size, num_layers, proj_size=proj_size)
    with pytest.raises(RuntimeError): model(torch.randn(i), (torch.randn(h), torch.randn(c)))

@pytest.mark.parametrize('mode', ['RNN', 'GRU', 'LSTM'])
def test_rnn_initial_hidden_state(impl, mode):
    rnn = getattr(impl, mode)(30, 20, 2)
    input, hidden = torch.randn(10, 32, 30), torch.zeros(2, 32, 20)
    if mode == 'LSTM': hidden = (hidden, hidden)
    output1, hidden1 = rnn(input, hidden)
    output2, hidden2 = rnn(input)
    close(output1, output2, 0); close(hidden1, hidden2, 0)

def test_projections_lstm_initial_hidden_state(impl):
    for bidir in (False, True):
        rnn = impl.LSTM(30, 20, 2, bidirectional=bidir, proj_size=10)
        D = 2 if bidir else 1
        input = torch.randn(10, 32, 30)
        hidden = (torch.zeros(2*D, 32, 10), torch.zeros(2*D, 32, 20))
        output1, hidden1 = rnn(input, hidden)
        output2, hidden2 = rnn(input)
        close(output1, output2, 0); close(hidden1, hidden2, 0)
        assert output1.shape == (10, 32, 10*D) and hidden1[0].shape == (2*D, 32, 10) and hidden1[1].shape == (2*D, 32, 20)

@pytest.mark.parametrize('mode', ['RNN', 'GRU'])
def test_projections_errors_on_gru_and_rnn(impl, mode):
    with pytest.raises(ValueError): getattr(impl, mode)(30, 20, 2, proj_size=3)

def test_RNN_nonlinearity(impl):
    assert impl.RNN(1, 10).nonlinearity == 'tanh'
    assert impl.RNN(1, 10, nonlinearity='relu').nonlinearity == 'relu'
    with pytest.raises(ValueError, match='Unknown nonlinearity'): impl.RNN(1, 10, nonlinearity='garbage')

def test_RNN_nonlinearity_passed_as_arg(impl):
    assert impl.RNN(2, 3, 1, 'relu').nonlinearity == 'relu'

@pytest.mark.parametrize('mode,bidirectional', list(product(['RNN', 'LSTM', 'GRU'], [True, False])))
def test_error_RNN_seq_len_zero(impl, mode, bidirectional):
    rnn = getattr(impl, mode)(5, 6, bidirectional=bidirectional)
    with pytest.raises(RuntimeError, match='Expected sequence length to be larger than 0 in RNN'): rnn(torch.ones(0, 10, 5))

@pytest.mark.parametrize('mode', ['RNN', 'LSTM', 'GRU'])
def test_RNN_input_size_zero(impl, mode):
    "A batch of zero sequences (torch's test name says input size; it is the batch dimension that is empty)"
    outs = getattr(impl, mode)(input_size=3, hidden_size=4)(torch.zeros((5, 0, 3)))
    assert outs[0].shape == torch.Size([5, 0, 4])
    outs[0].sum().backward()

def test_rnn_backward_to_input_but_not_parameters(impl):
    l = impl.LSTM(2, 3)
    for p in l.parameters(): p.requires_grad = False
    s = torch.randn(1, 1, 2, requires_grad=True)
    out, _ = l(s)
    out.sum().backward()
    assert not (s.grad is None or s.grad.abs().sum().item() == 0)

@pytest.mark.parametrize('dtype', [torch.float, torch.double])
def test_rnn_retain_variables(impl, dtype):
    for rnn in (impl.LSTM(10, 20, num_layers=2).to(dtype), impl.GRU(10, 20, num_layers=2).to(dtype), impl.RNN(10, 20, num_layers=2).to(dtype)):
        input = torch.randn(5, 6, 10, dtype=dtype, requires_grad=True)
        output = rnn(input)
        output[0].sum().backward(retain_graph=True)
        grads = [input.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
        for _ in range(4):
            rnn.zero_grad(); input.grad.zero_()
            output[0].sum().backward(retain_graph=True)
            close(grads, [input.grad] + [p.grad for p in rnn.parameters()], 0)

# ---------------------------------------------------------------------------------------------------------------
# test_nn.py: dropout

@pytest.mark.parametrize('p,train', list(product([0, 0.276, 0.731, 1], [True, False])))
def test_RNN_dropout(impl, p, train):
    "Dropout sits between layers: with all-ones weights the output is a known multiple of the kept units"
    rnn = impl.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity='relu').train(train)
    for w in (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.weight_ih_l1, rnn.weight_hh_l1): w.data.fill_(1)
    output, hy = rnn(torch.ones(1, 1, 10), torch.zeros(2, 1, 1000))
    assert output.min() == output.max()
    val = output[0, 0, 0].item()
    if p == 0 or not train: assert val == 10000
    elif p == 1: assert val == 0
    else:
        assert 8000 < val < 12000
        denorm_mod = (val*(1 - p)) % 10
        assert min(denorm_mod, 10 - denorm_mod) < 1e-2
    assert hy[0].min() == hy[0].max() and hy[1].min() == hy[1].max()
    assert hy[0, 0, 0].item() == 10 and hy[1, 0, 0].item() == val

@pytest.mark.parametrize('p,train', list(product([0, 0.1234], [True, False])))
def test_RNN_dropout_state(impl, p, train):
    "Dropout masks are drawn anew at each call, also after a round trip through `torch.save`/`torch.load`"
    rnn = impl.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity='relu').train(train)
    input, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
    output1, hy1 = rnn(input, hx)
    output2, hy2 = rnn(input, hx)
    buf = io.BytesIO(); torch.save(rnn, buf); buf.seek(0)
    rnn2 = torch.load(buf, weights_only=False)
    rnn2.flatten_parameters()
    output3, hy3 = rnn2(input, hx)
    if p == 0 or not train:
        close(output1, output2, 0); close(output1, output3, 0); close(hy1, hy2, 0); close(hy1, hy3, 0)
    else:
        assert not torch.equal(output1, output2) and not torch.equal(output1, output3)
        assert not torch.equal(hy1, hy2) and not torch.equal(hy1, hy3)

@pytest.mark.parametrize('train', [True, False])
def test_RNN_change_dropout(impl, train):
    rnn = impl.RNN(100, 100, 2, dropout=0, nonlinearity='relu').train(train)
    input, prev_output = torch.rand(3, 2, 100), None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        rnn.dropout = p
        output1, hy1 = rnn(input)
        output2, hy2 = rnn(input)
        if p == 0 or p == 1 or not train: close(output1, output2, 0); close(hy1, hy2, 0)
        else: assert not torch.equal(output1, output2) and not torch.equal(hy1, hy2)
        if prev_output is not None:
            if not train: close(output1, prev_output, 0); close(output2, prev_output, 0)
            else: assert not torch.equal(output1, prev_output) and not torch.equal(output2, prev_output)
        prev_output = output1.detach()

# ---------------------------------------------------------------------------------------------------------------
# test_nn.py: packed sequences, weight norm, flat weights, double backward

@pytest.mark.parametrize('dtype', [torch.float, torch.double])
@pytest.mark.parametrize('enforce_sorted,lengths', [(True, [5]), (False, [5]), (True, [10, 10, 6, 2, 2, 1, 1]),
                                                    (False, [10, 10, 6, 2, 2, 1, 1]), (False, [2, 1, 3, 2, 10, 5, 3])])
@pytest.mark.parametrize('use_default_hiddens', [True, False])
@pytest.mark.parametrize('proj_size', [0, 2])
def test_variable_sequence(impl, dtype, enforce_sorted, lengths, use_default_hiddens, proj_size):
    "A packed batch gives what each sequence gives alone, forward and backward (bidirectional, 2 layers)"
    input_size, hidden_size, num_layers, D = 3, 4, 2, 2
    T, B = max(lengths), len(lengths)
    x_leaf = torch.randn(T, B, input_size, dtype=dtype, requires_grad=True)
    lstm = impl.LSTM(input_size, hidden_size, bidirectional=True, num_layers=num_layers, proj_size=proj_size).to(dtype)
    lstm2 = copy.deepcopy(lstm)
    hidden0 = None
    if not use_default_hiddens:
        hidden0 = (torch.randn(D*num_layers, B, proj_size or hidden_size, dtype=dtype), torch.randn(D*num_layers, B, hidden_size, dtype=dtype))
    seq_outs, seq_hiddens = [], []
    for i, l in enumerate(lengths):
        out, hid = lstm2(x_leaf[:l, i:i+1], None if hidden0 is None else tuple(h[:, i:i+1] for h in hidden0))
        seq_outs.append(torch.cat([out, out.new_zeros(T - l, *out.shape[1:])]))
        seq_hiddens.append(hid)
    seq_out = torch.cat(seq_outs, 1)
    seq_hidden = tuple(torch.cat(hids, 1) for hids in zip(*seq_hiddens))
    packed = rnn_utils.pack_padded_sequence(x_leaf, lengths, enforce_sorted=enforce_sorted)
    packed_out, packed_hidden = lstm(packed, hidden0)
    assert isinstance(packed_out, rnn_utils.PackedSequence)
    unpacked, unpacked_len = rnn_utils.pad_packed_sequence(packed_out)
    prec = 1e-5 if dtype == torch.float else 1e-10
    close(packed_hidden, seq_hidden, prec); close(unpacked, seq_out, prec)
    assert unpacked_len.tolist() == lengths
    seq_out.sum().backward()
    grad_x = x_leaf.grad.clone(); x_leaf.grad.zero_()
    unpacked.sum().backward()
    close(x_leaf.grad, grad_x, prec)
    for p1, p2 in zip(lstm.parameters(), lstm2.parameters()): close(p1.grad, p2.grad, prec)

@pytest.mark.parametrize('enforce_sorted', [True, False])
def test_packed_matches_torch(impl, enforce_sorted):
    "The packed output of the scratch layer equals torch.nn's: data, batch sizes and both index permutations"
    lengths = [6, 4, 4, 1] if enforce_sorted else [4, 6, 1, 4]
    for mode in ('RNN', 'GRU', 'LSTM'):
        m = getattr(impl, mode)(3, 5, 2, bidirectional=True, batch_first=True)
        x = torch.randn(4, 6, 3)
        packed = rnn_utils.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=enforce_sorted)
        hx = torch.randn(4, 4, 5)
        if mode == 'LSTM': hx = (hx, torch.randn(4, 4, 5))
        out, h = m(packed, hx)
        ref, ref_h = twin_of(m)(packed, hx)
        assert type(out) is rnn_utils.PackedSequence
        assert torch.equal(out.batch_sizes, ref.batch_sizes)
        for a, b in [(out.sorted_indices, ref.sorted_indices), (out.unsorted_indices, ref.unsorted_indices)]:
            assert (a is None and b is None) or torch.equal(a, b)
        close(out.data, ref.data, 1e-5); close(h, ref_h, 1e-5)

def test_rnn_weight_norm(impl):
    "`_flat_weights` follows a weight replaced by `weight_norm` and restored by `remove_weight_norm`"
    def check_weight_norm(l, name, num_params):
        x = torch.randn(2, 1, 32)
        before = l(x)[0]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.nn.utils.weight_norm is deprecated
            l = torch.nn.utils.weight_norm(l, name=name)
            assert sum(isinstance(p, nn.Parameter) for p in l._flat_weights) == num_params - 1
            close(l(x)[0], before, 1e-5)  # the reparametrized weight is the same weight
            l = torch.nn.utils.remove_weight_norm(l, name=name)
        assert sum(isinstance(p, nn.Parameter) for p in l._flat_weights) == num_params
        close(l(x)[0], before, 1e-5)
    check_weight_norm(impl.LSTM(32, 32), 'weight_ih_l0', 4)
    check_weight_norm(impl.LSTM(32, 32, proj_size=16), 'weight_hr_l0', 5)

def test_partial_flat_weights(impl):
    "A weight deleted, the module moved (to float64 here; torch's test moves it to CUDA) and the weight set again"
    m = impl.LSTM(10, 6, 2)
    inp = torch.randn(3, 2, 10)
    out_expected = m(inp)
    weight_orig = m.weight_hh_l0
    del m.weight_hh_l0
    assert not hasattr(m, 'weight_hh_l0')
    m.double()
    m.weight_hh_l0 = weight_orig.double()
    close(m(inp.double())[0].float(), out_expected[0], 1e-6)

def test_rnnbase_api(impl):
    "`all_weights`, `_flat_weights`, `flatten_parameters`, `proj_size` and `isinstance(·, nn.RNNBase)`, as torch.nn"
    for m in (impl.LSTM(3, 5, 2, bidirectional=True, proj_size=2), impl.GRU(3, 5, bias=False), impl.RNN(3, 5, 3, nonlinearity='relu')):
        ref = twin_of(m)
        assert isinstance(m, nn.RNNBase)
        assert m.proj_size == ref.proj_size and m._flat_weights_names == ref._flat_weights_names
        assert [[tuple(w.shape) for w in ws] for ws in m.all_weights] == [[tuple(w.shape) for w in ws] for ws in ref.all_weights]
        assert all(w is getattr(m, n) for w, n in zip(m._flat_weights, m._flat_weights_names))
        before = [w.clone() for w in m._flat_weights]
        assert m.flatten_parameters() is None
        close(list(m._flat_weights), before, 0)
    for c in (impl.RNNCell(3, 4), impl.LSTMCell(3, 4), impl.GRUCell(3, 4)): assert isinstance(c, nn.RNNCellBase)

@pytest.mark.parametrize('mode,bias', list(product(['LSTM', 'GRU', 'RNN'], [True, False])))
def test_grad_and_gradgrad(impl, mode, bias):
    "torch's `test_LSTM_grad_and_gradgrad`/`test_GRU_grad_and_gradgrad` (CUDA there), on the CPU in float64"
    hsize = 4
    inp = torch.rand(1, 3, hsize, dtype=torch.double, requires_grad=True)
    mod = getattr(impl, mode)(hsize, hsize, bias=bias).double()
    f = lambda x: tuple(t for o in mod(x) for t in (o if isinstance(o, tuple) else (o,)))
    assert gradcheck(f, inp, check_batched_grad=False, fast_mode=True)
    assert gradgradcheck(f, inp, check_batched_grad=False, fast_mode=True)

# ---------------------------------------------------------------------------------------------------------------
# test_nn.py: cuDNN (run where CUDA is available)

def _rnn_cases():
    "The modules of `test_cudnn_forward_exception` with a state whose size is wrong"
    return [(lambda i: i.LSTM(10, 20, batch_first=True), lambda d: (torch.zeros(1, 2, 19, device=d), torch.zeros(1, 2, 19, device=d))),
            (lambda i: i.LSTM(10, 20, batch_first=True, proj_size=10), lambda d: (torch.zeros(1, 2, 19, device=d), torch.zeros(1, 2, 19, device=d))),
            (lambda i: i.GRU(10, 20, batch_first=True), lambda d: torch.zeros(1, 2, 19, device=d)),
            (lambda i: i.RNN(10, 20, batch_first=True), lambda d: torch.zeros(1, 2, 19, device=d))]

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('case', range(4))
def test_cudnn_forward_exception(impl, device, case):
    make, hidden = _rnn_cases()[case]
    rnn = make(impl).to(device)
    x_wrong, x_right = torch.randn(2, 3, 3, device=device), torch.randn(2, 3, 10, device=device)
    with pytest.raises(RuntimeError, match='Expected hidden.*size'): rnn(x_right, hidden(device))
    with pytest.raises(RuntimeError, match=re.escape('input.size(-1) must be equal to input_size')): rnn(x_wrong)

def _forward_backward(on_cuda, rnn, input_val, grad_output, weights_val, hx_val, grad_hy, cx_val=None, grad_cy=None):
    "torch's `forward_backward` of `_test_RNN_cpu_vs_cudnn`: copy the weights, run forward and backward, collect"
    is_lstm = isinstance(rnn, (nn.LSTM, tk.LSTM))
    with torch.no_grad():
        for x_layer, y_layer in zip(rnn.all_weights, weights_val):
            for x, y in zip(x_layer, y_layer): x.copy_(y)
    dev = 'cuda' if on_cuda else 'cpu'
    rnn.to(dev)
    if isinstance(input_val, rnn_utils.PackedSequence):
        input_var = input_val.data.detach().to(dev).requires_grad_(True)
        input = rnn_utils.PackedSequence(input_var, input_val.batch_sizes)
    else: input = input_var = input_val.detach().to(dev).requires_grad_(True)
    if is_lstm:
        hx = (hx_val.detach().to(dev).requires_grad_(True), (hx_val if cx_val is None else cx_val).add(1).to(dev).requires_grad_(True))
    else: hx = hx_val.detach().to(dev).requires_grad_(True)
    output, hy = rnn(input, hx)
    if isinstance(output, rnn_utils.PackedSequence): output = output.data
    g_out, g_hy = grad_output.to(dev), grad_hy.to(dev)
    if is_lstm:
        g_cy = (grad_hy if grad_cy is None else grad_cy).add(1).to(dev)
        torch.autograd.backward([output, hy[0], hy[1]], [g_out, g_hy, g_cy])
    else: torch.autograd.backward([output, hy], [g_out, g_hy])
    res = {'output': output, 'hy': hy[0] if is_lstm else hy, 'grad_input': input_var.grad,
           'grad_hx': hx[0].grad if is_lstm else hx.grad, 'cy': hy[1] if is_lstm else None, 'grad_cx': hx[1].grad if is_lstm else None}
    return {k: None if v is None else v.detach().cpu() for k, v in res.items()}, [[w.grad.cpu() for w in ws] for ws in rnn.all_weights]

def _cpu_vs_cudnn(impl, dropout, dtype=torch.double):
    "`_test_RNN_cpu_vs_cudnn`: `impl`'s module on the CPU against torch.nn's on cuDNN, same weights, every configuration"
    input_size, hidden_size, proj_size, num_layers, seq_length, batch = 10, 6, 3, 2, 7, 6
    noncontig = lambda t: torch.stack([t.clone().zero_(), t], t.dim()).select(t.dim(), 1)
    def compare(cpu, gpu):
        (out_c, gw_c), (out_g, gw_g) = cpu, gpu
        assert list(out_c) == list(out_g)
        for k in out_c: close(out_c[k], out_g[k], 5e-5, msg=k)
        close(gw_c, gw_g, 5e-5)
    def run(mode, proj, bias, bidirectional, batch_first, contig, variable_len, lens_as_tensor, **kw):
        D = 2 if bidirectional else 1
        h_out = proj or hidden_size
        shape = (batch, seq_length) if batch_first else (seq_length, batch)
        input_val, grad_output = torch.randn(*shape, input_size, dtype=dtype), torch.randn(*shape, h_out*D, dtype=dtype)
        hx_val, grad_hy = torch.randn(num_layers*D, batch, h_out, dtype=dtype), torch.randn(num_layers*D, batch, h_out, dtype=dtype)
        cx_val = grad_cy = None
        if proj: cx_val, grad_cy = torch.randn(num_layers*D, batch, hidden_size, dtype=dtype), torch.randn(num_layers*D, batch, hidden_size, dtype=dtype)
        if not contig: grad_output, grad_hy, input_val, hx_val = map(noncontig, (grad_output, grad_hy, input_val, hx_val))
        if variable_len:
            lengths = [7, 5, 5, 2, 1, 1]
            if lens_as_tensor: lengths = torch.tensor(lengths, dtype=torch.long)
            input_val = rnn_utils.pack_padded_sequence(input_val, lengths, batch_first=batch_first)
            grad_output = rnn_utils.pack_padded_sequence(grad_output, lengths, batch_first=batch_first).data
        cfg = dict(bias=bias, dropout=dropout, bidirectional=bidirectional, batch_first=batch_first, **kw) | (dict(proj_size=proj) if proj else {})
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            rnn = getattr(impl, mode)(input_size, hidden_size, num_layers, **cfg).to(dtype)
            rnn_gpu = getattr(nn, mode)(input_size, hidden_size, num_layers, **cfg).to(dtype)
        cpu = _forward_backward(False, rnn, input_val, grad_output, rnn.all_weights, hx_val, grad_hy, cx_val, grad_cy)
        gpu = _forward_backward(True, rnn_gpu, input_val, grad_output, rnn.all_weights, hx_val, grad_hy, cx_val, grad_cy)
        compare(cpu, gpu)
    flags = list(product((True, False), repeat=6))
    for mode in ('RNN', 'LSTM', 'GRU'):
        for f in flags: run(mode, 0, *f)
    for nonlinearity in ('tanh', 'relu'): run('RNN', 0, True, False, False, True, False, False, nonlinearity=nonlinearity)
    for f in flags: run('LSTM', proj_size, *f)

@cuda
def test_RNN_cpu_vs_cudnn_no_dropout(impl): _cpu_vs_cudnn(impl, 0)

@cuda
def test_RNN_cpu_vs_cudnn_with_dropout(impl): _cpu_vs_cudnn(impl, 1)  # dropout 1 is deterministic: nothing passes between layers

@cuda
@pytest.mark.parametrize('mode', ['RNN', 'LSTM', 'GRU'])
def test_cpu_gpu_parity(impl, mode):
    "test_modules.py's `test_cpu_gpu_parity`: the same module, weights and input on the CPU and on the GPU"
    m = getattr(impl, mode)(3, 5, 2, bidirectional=True).double()
    x = torch.randn(4, 2, 3, dtype=torch.double)
    out_cpu = m(x)
    out_gpu = copy.deepcopy(m).cuda()(x.cuda())
    close(out_cpu, tuple(t.cpu() if isinstance(t, torch.Tensor) else tuple(u.cpu() for u in t) for t in out_gpu), 1e-10)

# ---------------------------------------------------------------------------------------------------------------
# common_modules.py: every error input of the six ModuleInfos, as data (ctor args, ctor kwargs, forward input, error)

F64 = object()  # marker: the forward input has the other dtype (float64 against a float32 module)
LAYER_ERRORS = [
    ((10, 0, 1), {}, None, ValueError, "hidden_size must be greater than zero"),
    ((10, 10, 0), {}, None, ValueError, "num_layers must be greater than zero"),
    ((3, 5), {}, (F64, (2, 4, 3)), ValueError,
     r"RNN input dtype .* does not match weight dtype .* Convert input: input\.to\(.*\), or convert model: model\.to\(.*\)"),
    ((3, 5), dict(bias=0), None, TypeError, "bias should be of type bool, got: int"),
    ((3, 5), dict(bias=1), None, TypeError, "bias should be of type bool, got: int"),
    ((3, 5), dict(bias="True"), None, TypeError, "bias should be of type bool, got: str"),
    ((3, 5), dict(batch_first=0), None, TypeError, "batch_first should be of type bool, got: int"),
    ((3, 5), dict(batch_first=1), None, TypeError, "batch_first should be of type bool, got: int"),
    ((3, 5), dict(batch_first="False"), None, TypeError, "batch_first should be of type bool, got: str"),
    ((3.0, 5), {}, None, TypeError, "input_size should be of type int, got: float"),
    (("10", 5), {}, None, TypeError, "input_size should be of type int, got: str"),
    ((0, 5), {}, None, ValueError, "input_size must be greater than zero"),
    ((-1, 5), {}, None, ValueError, "input_size must be greater than zero"),
    ((3, 5.0), {}, None, TypeError, "hidden_size should be of type int, got: float"),
]
RNN_GRU_CELL_ERRORS = [
    ((10, 20), {}, ((3, 11), (3, 20)), RuntimeError, "input has inconsistent input_size: got 11 expected 10"),
    ((10, 20), {}, ((3, 10), (3, 21)), RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20"),
    ((10, 20), {}, ((3, 10), (5, 20)), RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 5"),
    ((10, 20), {}, ((3, 10), (3, 1, 1, 20)), ValueError, "Expected hidden to be 1D or 2D, got 4D instead"),
    ((10, 20, 'relu'), {}, ((3, 10), (3, 21)), RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20"),
    ((10, 20, 'tanh'), {}, ((3, 10), (3, 21)), RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20"),
]
LSTM_CELL_ERRORS = [
    ((10, 20), {}, ((3, 11), ((3, 20), (3, 20))), RuntimeError, "input has inconsistent input_size: got 11 expected 10"),
    ((10, 20), {}, ((3, 10), ((3, 21), (3, 21))), RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20"),
    ((10, 20), {}, ((3, 10), ((5, 20), (5, 20))), RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 5"),
    ((10, 20), {}, ((3, 10), ((3, 1, 1, 20), (3, 1, 1, 20))), ValueError, r"Expected hx\[0\] to be 1D or 2D, got 4D instead"),
]
ERRORS = ([(m, *e) for m in ('RNN', 'GRU', 'LSTM') for e in LAYER_ERRORS] + [(m, *e) for m in ('RNNCell', 'GRUCell') for e in RNN_GRU_CELL_ERRORS]
          + [('LSTMCell', *e) for e in LSTM_CELL_ERRORS])

def _make(spec):
    "Tensors from a nested spec of shapes (`F64` marks a float64 input)"
    if isinstance(spec, tuple) and spec and spec[0] is F64: return torch.randn(spec[1], dtype=torch.float64)
    if isinstance(spec, tuple) and spec and isinstance(spec[0], tuple): return tuple(_make(s) for s in spec)
    return torch.randn(spec)

@pytest.mark.parametrize('name,args,kwargs,fwd,exc,regex', ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors(impl, name, args, kwargs, fwd, exc, regex):
    "test_modules.py's `test_errors`: the exception type and message of torch.nn, at construction or in forward"
    cls = getattr(impl, name)
    if fwd is None:
        with pytest.raises(exc, match=regex): cls(*args, **kwargs)
        return
    m = cls(*args, **kwargs)
    inputs = _make(fwd)
    with pytest.raises(exc, match=regex): m(inputs) if isinstance(inputs, torch.Tensor) else m(*inputs)

# ---------------------------------------------------------------------------------------------------------------
# common_modules.py: the sample inputs (all about inputs without a batch dimension), with test_modules.py's checks

def _samples():
    "(name, ctor kwargs or args, forward spec) for every `module_inputs_*` sample, packed samples included"
    out = []
    for name, extra in (('RNNCell', [dict(nonlinearity='relu')]), ('GRUCell', [])):
        for kw in [{}, dict(bias=True)] + extra: out.append((name, (5, 10), kw, ((5,), (10,))))
    for kw in ({}, dict(bias=True)): out.append(('LSTMCell', (5, 10), kw, ((5,), ((10,), (10,)))))
    for name in ('RNN', 'GRU'):
        nls = ('relu', 'tanh') if name == 'RNN' else (None,)
        for nl, b, bf, bidir in product(nls, (False, True), (False, True), (False, True)):
            cfg = dict(num_layers=2, batch_first=bf, bias=b, bidirectional=bidir) | ({'nonlinearity': nl} if nl else {})
            out.append((name, (2, 2), cfg, ((3, 2),)))
            out.append((name, (2, 3), cfg, ((3, 2), (4 if bidir else 2, 3))))
            out.append((name, (2, 2), cfg, ('packed', (5, 2, 2), [5, 3])))
            out.append((name, (2, 2), cfg, ('packed', (5, 5, 2), [5, 3, 3, 2, 2])))
    for b, bf, bidir, proj in product((False, True), (False, True), (False, True), (0, 2)):
        cfg = dict(num_layers=2, proj_size=proj, batch_first=bf, bias=b, bidirectional=bidir)
        D = 4 if bidir else 2
        out.append(('LSTM', (2, 3), cfg, ((2, 2),)))
        out.append(('LSTM', (2, 3), cfg, ((3, 2), ((D, proj or 3), (D, 3)))))
    return out

SAMPLES = _samples()
SAMPLE_IDS = [f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)]

def _inputs(spec, dtype=torch.float64, requires_grad=False):
    if spec[0] == 'packed':
        x = rnn_utils.pack_padded_sequence(torch.randn(spec[1], dtype=dtype), torch.tensor(spec[2]))
        return (rnn_utils.PackedSequence(x.data.requires_grad_(requires_grad), x.batch_sizes),)
    mk = lambda s: tuple(mk(u) for u in s) if isinstance(s[0], tuple) else torch.randn(s, dtype=dtype, requires_grad=requires_grad)
    return tuple(mk(s) for s in spec)

def _batched_reference(m, args):
    "common_modules' `no_batch_dim_reference_*`: the same input as a batch of one, the batch dimension dropped again"
    is_cell, bf = isinstance(m, nn.RNNCellBase), getattr(m, 'batch_first', False)
    x, hx = args[0], (args[1] if len(args) > 1 else None)
    if is_cell:
        out = m(x[None], None if hx is None else tuple(h[None] for h in hx) if isinstance(hx, tuple) else hx[None])
        return tuple(t[0] for t in out) if isinstance(out, tuple) else out[0]
    out, h = m(x.unsqueeze(0 if bf else 1), None if hx is None else tuple(t.unsqueeze(1) for t in hx) if isinstance(hx, tuple) else hx.unsqueeze(1))
    return out.squeeze(0 if bf else 1), (tuple(t.squeeze(1) for t in h) if isinstance(h, tuple) else h.squeeze(1))

def _flat(o):
    if isinstance(o, rnn_utils.PackedSequence): return (o.data,)
    return tuple(t for u in o for t in _flat(u)) if isinstance(o, tuple) else (o,)

@pytest.mark.parametrize('name,args,kwargs,spec', SAMPLES, ids=SAMPLE_IDS)
def test_forward(impl, name, args, kwargs, spec):
    "test_modules.py's `test_forward` (against the batched reference) and the same weights in torch.nn"
    m = getattr(impl, name)(*args, **kwargs).double()
    inputs = _inputs(spec)
    out = m(*inputs)
    if spec[0] == 'packed': assert isinstance(out[0], rnn_utils.PackedSequence)
    else: close(_flat(out), _flat(_batched_reference(m, inputs)), 1e-10)
    close(_flat(out), _flat(twin_of(m)(*inputs)), 1e-10)

@pytest.mark.parametrize('name,args,kwargs,spec', SAMPLES[::3], ids=SAMPLE_IDS[::3])
def test_grad(impl, name, args, kwargs, spec):
    "test_modules.py's `test_grad`: `gradcheck` in float64 with respect to the inputs and every parameter (every third sample, for time)"
    m = getattr(impl, name)(*args, **kwargs).double()
    inputs = _inputs(spec, requires_grad=True)
    names, params = zip(*m.named_parameters())
    flat_in = [t for t in _flat(inputs)]
    def f(*ts):
        ins, ps = ts[:len(flat_in)], ts[len(flat_in):]
        it = iter(ins)
        rebuilt = tuple(rnn_utils.PackedSequence(next(it), a.batch_sizes) if isinstance(a, rnn_utils.PackedSequence)
                        else tuple(next(it) for _ in a) if isinstance(a, tuple) else next(it) for a in inputs)
        return _flat(functional_call(m, dict(zip(names, ps)), rebuilt))
    assert gradcheck(f, (*flat_in, *(p.detach().requires_grad_() for p in params)), check_batched_grad=False, fast_mode=True)

GRADGRAD = [s for s in SAMPLES if s[0].endswith('Cell') or (s[2].get('bidirectional') and s[2].get('bias') and not s[2].get('batch_first')
                                                              and s[3][0] != 'packed' and len(s[3]) == 2)]

@pytest.mark.parametrize('name,args,kwargs,spec', GRADGRAD, ids=[f"{s[0]}-{i}" for i, s in enumerate(GRADGRAD)])
def test_gradgrad(impl, name, args, kwargs, spec):
    "test_modules.py's `test_gradgrad` (with respect to the inputs), on the bidirectional samples with bias and a state"
    m = getattr(impl, name)(*args, **kwargs).double()
    inputs = _inputs(spec, requires_grad=True)
    flat_in = _flat(inputs)
    def f(*ts):
        it = iter(ts)
        return _flat(m(*(tuple(next(it) for _ in a) if isinstance(a, tuple) else next(it) for a in inputs)))
    assert gradgradcheck(f, flat_in, check_batched_grad=False, fast_mode=True)

DENSE = [(s, i) for s, i in zip(SAMPLES, SAMPLE_IDS) if s[3][0] != 'packed'][::3]  # test_modules passes no packed samples here

@pytest.mark.parametrize('name,args,kwargs,spec', [s for s, _ in DENSE], ids=[i for _, i in DENSE])
def test_non_contiguous_tensors(impl, name, args, kwargs, spec):
    "test_modules.py's `test_non_contiguous_tensors`: the same outputs and gradients from non-contiguous inputs"
    m = getattr(impl, name)(*args, **kwargs).double()
    inputs = _inputs(spec, requires_grad=True)
    noncontig = lambda t: torch.stack([torch.zeros_like(t), t.detach()], -1)[..., 1].requires_grad_()
    inputs_nc = tuple(tuple(map(noncontig, a)) if isinstance(a, tuple) else noncontig(a) for a in inputs)
    assert not any(t.is_contiguous() for t in _flat(inputs_nc) if t.numel() > 1)
    res = []
    for ins in (inputs, inputs_nc):
        m.zero_grad()
        out = _flat(m(*ins))
        sum((o*torch.linspace(-1, 1, o.numel(), dtype=o.dtype).reshape(o.shape)).sum() for o in out).backward()
        res.append((out, [t.grad for t in _flat(ins)], [p.grad.clone() for p in m.parameters()]))
    close(res[0], res[1], 1e-12)

@pytest.mark.parametrize('name,args,kwargs,spec', SAMPLES[::4], ids=SAMPLE_IDS[::4])
def test_save_load(impl, name, args, kwargs, spec):
    "test_modules.py's `test_save_load`: the whole module and its state_dict through `torch.save`, same outputs"
    m = getattr(impl, name)(*args, **kwargs).double()
    inputs = _inputs(spec)
    buf = io.BytesIO(); torch.save(m, buf); buf.seek(0)
    m2 = torch.load(buf, weights_only=False)
    buf = io.BytesIO(); torch.save(m.state_dict(), buf); buf.seek(0)
    m3 = getattr(impl, name)(*args, **kwargs).double()
    m3.load_state_dict(torch.load(buf, weights_only=True))
    close(_flat(m2(*inputs)), _flat(m(*inputs)), 0); close(_flat(m3(*inputs)), _flat(m(*inputs)), 0)

@pytest.mark.parametrize('name,args,kwargs,spec', SAMPLES[::4], ids=SAMPLE_IDS[::4])
def test_factory_kwargs_repr_to(impl, name, args, kwargs, spec):
    "test_modules.py's `test_factory_kwargs`, `test_repr`, `test_to` and `test_to_empty`"
    cls = getattr(impl, name)
    m = cls(*args, **kwargs, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert all(p.is_meta for p in cls(*args, **kwargs, device='meta').parameters())
    assert repr(m).startswith(name + '(')
    m32 = copy.deepcopy(m).to(torch.float32)
    assert all(p.dtype == torch.float32 for p in m32.parameters())
    inputs = _inputs(spec)
    to32 = lambda a: (rnn_utils.PackedSequence(a.data.float(), a.batch_sizes) if isinstance(a, rnn_utils.PackedSequence)
                      else tuple(map(to32, a)) if isinstance(a, tuple) else a.float())
    close(tuple(o.double() for o in _flat(m32(*to32(inputs)))), _flat(m(*inputs)), 1e-5)
    empty = copy.deepcopy(m).to_empty(device='meta')
    assert all(p.is_meta for p in empty.parameters())
    if hasattr(empty, '_flat_weights'): assert all(w.is_meta for w in empty._flat_weights)

# ---------------------------------------------------------------------------------------------------------------
# Cross-check against the installed torch: the tables above are common_modules' error inputs, all of them

def test_tables_match_common_modules():
    "Every error input of common_modules for the six modules is in `ERRORS` (same arguments, shapes, type, regex), and no other"
    cm = pytest.importorskip('torch.testing._internal.common_modules', reason='needs expecttest (a dev dependency)')
    theirs = []
    for info in cm.module_db:
        if info.module_cls not in (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell): continue
        for e in info.module_error_inputs_func(info, device='cpu', dtype=torch.float32, requires_grad=False, training=True):
            mi = e.module_error_input
            ckw = {k: v for k, v in mi.constructor_input.kwargs.items() if k not in ('device', 'dtype')}
            fwd = None
            if e.error_on == cm.ModuleErrorEnum.FORWARD_ERROR:
                shape = lambda a: tuple(shape(u) for u in a) if isinstance(a, tuple) else (F64, tuple(a.shape)) if a.dtype == torch.float64 else tuple(a.shape)
                fwd = tuple(shape(a) for a in mi.forward_input.args)
                if len(fwd) == 1: fwd = fwd[0]
            theirs.append((info.module_cls.__name__, tuple(mi.constructor_input.args), ckw, fwd, e.error_type, e.error_regex))
    key = lambda r: repr(r)
    assert sorted(map(key, theirs)) == sorted(map(key, ERRORS))
