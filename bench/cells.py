"""Time of the scratch `textkit.cells` layers against the fused `torch.nn` ones, as users run them.

Each row times the scratch layer and its fused twin on the same input in interleaved pairs (A,B then B,A, after
warm-up), so that drifts in machine load hit both sides alike, and reports the median time of each side and the
median of the per-pair ratios. Variants: `plain`; `lengths` (a padded batch: scratch with `lengths=`, fused on the
`PackedSequence`, which is how `torch.nn` takes one); `dropout` (2 layers, dropout 0.3, training mode). Modes: `fb`
(forward + backward) and `fwd` (forward alone under `torch.no_grad()`, what generation and prediction run).
`--floor` times, for the LSTM, only the matrix products that the scratch layer has to make (the input projection and
one product with W_hh per step, plus their backward products in mode `fb`), with no element-wise work at all and into
buffers allocated beforehand, against
the fused layer's whole pass: no scratch implementation built on PyTorch's per-step products can beat that ratio.
With `--device cuda` the table adds the scratch layer under `torch.compile` (its compile time, counted in the first
call, is printed apart) next to cuDNN.

    python bench/cells.py --quick                       # a few minutes: default size, LSTM, 1 thread, 6 pairs
    python bench/cells.py                               # everything below, 20 pairs per row
    python bench/cells.py --cells lstm --sizes default --threads 1 2 --pairs 20
    python bench/cells.py --floor --sizes default long --threads 1 2
    python bench/cells.py --device cuda --pairs 30
"""
import argparse, os, platform, statistics, subprocess, time, warnings
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from textkit.cells import RNN, LSTM, GRU, to_torch

SIZES = dict(default=dict(batch=64, seq=100, input=128, hidden=256),  # the two sizes
             long=dict(batch=32, seq=200, input=64, hidden=512))
CELLS = dict(rnn=RNN, lstm=LSTM, gru=GRU)

def processor() -> str:
    "The processor's model name, as `lscpu` gives it"
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return next(l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name'))
    except Exception: return platform.processor() or 'unknown processor'

def load() -> str: return ' '.join(f"{v:.2f}" for v in os.getloadavg())

def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

def make_case(cls, size:dict, variant:str, bidirectional:bool, device, compile_:bool=False):
    "Scratch model, fused twin, optional compiled scratch, and a function `(model, fused?) -> output` for each call"
    torch.manual_seed(0)
    layers, dropout = (2, 0.3) if variant == 'dropout' else (1, 0.)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        scratch = cls(size['input'], size['hidden'], num_layers=layers, dropout=dropout, bidirectional=bidirectional).to(device)
    fused = to_torch(scratch)
    for m in (scratch, fused): m.train(variant == 'dropout')
    x = torch.randn(size['seq'], size['batch'], size['input'], device=device, requires_grad=True)
    lens = torch.randint(size['seq']//2, size['seq']+1, (size['batch'],))
    lens[0] = size['seq']
    def call(m, is_fused:bool):
        if variant != 'lengths': return m(x)[0]
        if is_fused: return m(pack_padded_sequence(x, lens, enforce_sorted=False))[0].data
        return m(x, lengths=lens)[0]
    compiled = torch.compile(scratch) if compile_ else None
    return scratch, fused, compiled, x, call

def time_ms(m, x, call, is_fused:bool, mode:str, device) -> float:
    "Milliseconds for one forward (and backward, for mode 'fb') pass"
    _sync(device)
    start = time.perf_counter()
    if mode == 'fwd':
        with torch.no_grad(): call(m, is_fused)
    else:
        m.zero_grad(set_to_none=True); x.grad = None
        call(m, is_fused).sum().backward()
    _sync(device)
    return 1000*(time.perf_counter() - start)

def products_ms(size:dict, mode:str, device) -> float:
    "Milliseconds of the matrix products alone of a scratch LSTM pass, into buffers allocated beforehand (no page faults)"
    B, T, I, H = (size[k] for k in ('batch', 'seq', 'input', 'hidden'))
    x, w_ih, w_hh, b = (torch.randn(*s, device=device) for s in ((T*B, I), (4*H, I), (4*H, H), (4*H,)))
    h, hs, gi = torch.randn(B, H, device=device), torch.randn(T, B, H, device=device), torch.empty(T, B, 4*H, device=device)
    d_h, d_whh, d_wih, d_x = torch.empty(B, H, device=device), torch.empty_like(w_hh), torch.empty_like(w_ih), torch.empty_like(x)
    w_t, G = w_hh.t(), gi.view(-1, 4*H)
    _sync(device); start = time.perf_counter()
    torch.addmm(b, x, w_ih.t(), out=G)                      # W_ih x + b for every step at once
    for t in range(T): gi[t].addmm_(h, w_t)                 # + W_hh h, one step at a time
    if mode == 'fb':                                        # with gi standing for the gates' gradients ā
        for t in range(T): torch.addmm(hs[t], gi[t], w_hh, out=d_h)  # h̄₋₁ = ā W_hh + the output's gradient
        torch.mm(G.t(), hs.view(-1, H), out=d_whh); torch.mm(G.t(), x, out=d_wih); torch.mm(G, w_ih, out=d_x)  # W̄_hh, W̄_ih, x̄
    _sync(device)
    return 1000*(time.perf_counter() - start)

def floor(size, mode, args, device) -> dict:
    "Median ms of the products alone and of the fused layer, and the median ratio, over interleaved pairs"
    _, fused, _, x, call = make_case(LSTM, size, 'plain', False, device)
    res = dict(products=[], fused=[])
    for i in range(args.warmup + args.pairs):
        for k in (('products', 'fused') if i % 2 == 0 else ('fused', 'products')):
            res[k].append(products_ms(size, mode, device) if k == 'products' else time_ms(fused, x, call, True, mode, device))
    res = {k: v[args.warmup:] for k, v in res.items()}
    return dict(products=statistics.median(res['products']), fused=statistics.median(res['fused']),
                ratio=statistics.median(p/f for p, f in zip(res['products'], res['fused'])))

def bench(cls, size, variant, bidirectional, mode, args, device) -> dict:
    "Median ms of each side and the median scratch/fused (and compiled/fused) ratio over interleaved pairs"
    compile_ = device.type == 'cuda' and not args.no_compile
    scratch, fused, compiled, x, call = make_case(cls, size, variant, bidirectional, device, compile_)
    sides = dict(scratch=(scratch, False), fused=(fused, True)) | (dict(compiled=(compiled, False)) if compile_ else {})
    res = {k: [] for k in sides}
    if compile_: res['compile_s'] = time_ms(compiled, x, call, False, mode, device)/1000  # first call: compilation
    for _ in range(args.warmup):
        for k, (m, f) in sides.items(): time_ms(m, x, call, f, mode, device)
    names = list(sides)
    for i in range(args.pairs):
        for k in (names if i % 2 == 0 else names[::-1]):
            m, is_fused = sides[k]
            res[k].append(time_ms(m, x, call, is_fused, mode, device))
    out = {k: statistics.median(v) for k, v in res.items() if k in sides}
    out['ratio'] = statistics.median(s/f for s, f in zip(res['scratch'], res['fused']))
    if compile_:
        out['c_ratio'] = statistics.median(c/f for c, f in zip(res['compiled'], res['fused']))
        out['compile_s'] = res['compile_s']
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--cells', nargs='+', default=['rnn', 'gru', 'lstm'], choices=list(CELLS))
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    p.add_argument('--variants', nargs='+', default=['plain', 'lengths', 'dropout'], choices=['plain', 'lengths', 'dropout'])
    p.add_argument('--directions', nargs='+', type=int, default=[1, 2], choices=[1, 2])
    p.add_argument('--modes', nargs='+', default=['fb', 'fwd'], choices=['fb', 'fwd'])
    p.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    p.add_argument('--pairs', type=int, default=20, help='interleaved scratch/fused pairs per row')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--no-compile', action='store_true', help='with --device cuda: skip the torch.compile column')
    p.add_argument('--floor', action='store_true', help="LSTM: the scratch layer's matrix products alone against the fused layer")
    p.add_argument('--quick', action='store_true', help='LSTM, default size, 1 thread, 6 pairs (all variants, directions, modes)')
    args = p.parse_args()
    if args.quick: args.cells, args.sizes, args.threads, args.pairs, args.warmup = ['lstm'], ['default'], [1], 6, 1
    if args.device.startswith('cuda') and not torch.cuda.is_available(): p.error('--device cuda: no CUDA device available')
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    print(f"processor: {processor()}; torch {torch.__version__}; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if cuda else '') + f"; load average at start {load()}")
    print(f"{args.pairs} interleaved pairs per row; fb = forward + backward, fwd = forward alone (no_grad); "
          "lengths: scratch lengths= vs fused PackedSequence; dropout: 2 layers, p=0.3, training mode\n")
    if args.floor:
        print('| threads | size (B, T, I, H) | mode | products alone ms | fused LSTM ms | products/fused |\n|---|---|---|---|---|---|')
        for t in args.threads:
            torch.set_num_threads(t)
            for size_name in args.sizes:
                for mode in args.modes:
                    size, r = SIZES[size_name], floor(SIZES[size_name], mode, args, device)
                    print(f"| {t} | {', '.join(str(size[k]) for k in ('batch', 'seq', 'input', 'hidden'))} | {mode} | "
                          f"{r['products']:.1f} | {r['fused']:.1f} | {r['ratio']:.2f}x |", flush=True)
        print(f"\nload average at end {load()}")
        return
    cols = ['threads', 'cell', 'size (B, T, I, H)', 'dirs', 'variant', 'mode', 'scratch ms', 'fused ms', 'scratch/fused']
    if cuda and not args.no_compile: cols[7:7] = ['compiled ms']; cols += ['compiled/fused', 'compile s']
    print('| ' + ' | '.join(cols) + ' |'); print('|' + '---|'*len(cols))
    for t in args.threads:
        torch.set_num_threads(t)
        for size_name in args.sizes:
            size = SIZES[size_name]
            for name in args.cells:
                for d in args.directions:
                    for variant in args.variants:
                        for mode in args.modes:
                            r = bench(CELLS[name], size, variant, d == 2, mode, args, device)
                            row = [t, name, f"{size['batch']}, {size['seq']}, {size['input']}, {size['hidden']}", d, variant,
                                   mode, f"{r['scratch']:.1f}", f"{r['fused']:.1f}", f"{r['ratio']:.2f}x"]
                            if 'compiled' in r:
                                row[7:7] = [f"{r['compiled']:.1f}"]; row += [f"{r['c_ratio']:.2f}x", f"{r['compile_s']:.1f}"]
                            print('| ' + ' | '.join(map(str, row)) + ' |', flush=True)
    print(f"\nload average at end {load()}")

if __name__ == '__main__': main()
