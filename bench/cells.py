"""Forward+backward time of the scratch `textkit.cells` layers against the fused `torch.nn` ones.

Runs are paired and interleaved (A,B then B,A, after warm-up) so that drifts in machine load hit
both sides alike; the table reports the median time of each and the median of the per-pair ratios.

    python bench/cells.py                      # CPU, batch 64, length 100, input 128, hidden 256
    python bench/cells.py --device cuda --pairs 30
"""
import argparse, statistics, time
import torch
from textkit.cells import RNN, LSTM, GRU, to_torch

def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

def fwd_bwd_ms(model, x, device) -> float:
    "Milliseconds for one forward and backward pass of `model` on `x`"
    model.zero_grad(set_to_none=True)
    x.grad = None
    _sync(device)
    start = time.perf_counter()
    out, _ = model(x)
    out.sum().backward()
    _sync(device)
    return 1000*(time.perf_counter() - start)

def bench(cls, args, device) -> dict:
    "Median ms of scratch and fused `cls`, and the median scratch/fused ratio over interleaved pairs"
    torch.manual_seed(0)
    scratch = cls(args.input, args.hidden, num_layers=args.layers, bidirectional=args.bidirectional).to(device)
    fused = to_torch(scratch)
    x = torch.randn(args.seq, args.batch, args.input, device=device, requires_grad=True)
    for _ in range(args.warmup):
        fwd_bwd_ms(scratch, x, device); fwd_bwd_ms(fused, x, device)
    ts, tf, ratios = [], [], []
    for i in range(args.pairs):
        if i % 2 == 0: s, f = fwd_bwd_ms(scratch, x, device), fwd_bwd_ms(fused, x, device)
        else:          f, s = fwd_bwd_ms(fused, x, device), fwd_bwd_ms(scratch, x, device)
        ts.append(s); tf.append(f); ratios.append(s/f)
    return dict(scratch=statistics.median(ts), fused=statistics.median(tf), ratio=statistics.median(ratios))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--seq', type=int, default=100)
    p.add_argument('--input', type=int, default=128)
    p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--layers', type=int, default=1)
    p.add_argument('--bidirectional', action='store_true')
    p.add_argument('--pairs', type=int, default=20, help='interleaved scratch/fused pairs per cell')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--cells', default='rnn,lstm,gru')
    args = p.parse_args()
    if args.device.startswith('cuda') and not torch.cuda.is_available(): p.error('--device cuda: no CUDA device available')
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; batch {args.batch}, "
          f"length {args.seq}, input {args.input}, hidden {args.hidden}, layers {args.layers}, "
          f"bidirectional {args.bidirectional}; forward+backward, {args.pairs} interleaved pairs")
    print(f"{'cell':6} {'scratch ms':>11} {'fused ms':>9} {'scratch/fused':>14}")
    for name in args.cells.split(','):
        r = bench(dict(rnn=RNN, lstm=LSTM, gru=GRU)[name], args, device)
        print(f"{name:6} {r['scratch']:11.1f} {r['fused']:9.1f} {r['ratio']:13.2f}x")

if __name__ == '__main__': main()
