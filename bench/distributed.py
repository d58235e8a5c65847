"""Throughput of data-parallel training on CPUs: 2 processes x 1 thread against 1 process x 2 threads, same run.

The same fit (a character LSTM on the Quijote, the same global batch and number of steps) is timed both ways, alternating,
`--repeats` times each; tokens per second of training and the held-out perplexity of each are printed side by side with
their ratio. On a machine shared with other work, only the ratio measured in the same run means something.

    python bench/distributed.py --max-chars 200000 --repeats 2
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

WORKER = r'''
import json, sys, time, torch
from fastai.callback.core import Callback
from fastai.torch_core import num_distrib, rank_distrib
from textkit.lm import train_lm
from textkit.distributed import fit_callbacks
args = json.loads(sys.argv[1])
torch.set_num_threads(args.pop('threads'))
out = args.pop('out')

class Clock(Callback):
    "Wall time of the training batches only (data loading included, validation excluded)"
    order = 100
    def before_fit(self): self.t, self.tokens = 0., 0
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.t += time.perf_counter() - self.t0
    def after_batch(self):
        if self.training: self.tokens += self.xb[0].numel()

clock = Clock()
learn = train_lm(**args, show_progress=False, cbs=fit_callbacks() + [clock])
if rank_distrib() == 0:
    tokens = clock.tokens*max(num_distrib(), 1)  # every rank reads as many tokens
    json.dump(dict(tokens=tokens, seconds=clock.t, perplexity=float(learn.recorder.values[-1][3])), open(out, 'w'))
'''

def run(n_procs, threads, args, tmp):
    out = Path(tmp)/f'res-{n_procs}x{threads}-{time.monotonic_ns()}.json'
    a = json.dumps({**args, 'threads': threads, 'out': str(out)})
    script = Path(tmp)/'worker.py'; script.write_text(WORKER)
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    if n_procs == 1: subprocess.run([sys.executable, script, a], check=True, env=env, stdout=subprocess.DEVNULL)
    else:
        from textkit.distributed import launch
        res = launch([sys.executable, script, a], n_procs, threads=threads, capture=True)
        if any(r for r, _ in res): raise RuntimeError(res[0][1][-3000:])
    return json.loads(out.read_text())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--max-chars', type=int, default=200_000)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--seq-len', type=int, default=64)
    ap.add_argument('--hidden-sz', type=int, default=256)
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=2)
    o = ap.parse_args()
    args = dict(max_chars=o.max_chars, bs=o.bs, seq_len=o.seq_len, hidden_sz=o.hidden_sz, emb_sz=32, n_layers=1, epochs=o.epochs, seed=0)
    print(f"load before: {os.getloadavg()}")
    rows = {'1 process x 2 threads': [], '2 processes x 1 thread': []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(o.repeats):
            rows['1 process x 2 threads'].append(run(1, 2, args, tmp))
            rows['2 processes x 1 thread'].append(run(2, 1, args, tmp))
    print(f"load after: {os.getloadavg()}")
    best = {}
    for k, rs in rows.items():
        tps = [r['tokens']/r['seconds'] for r in rs]
        best[k] = max(tps)
        print(f"{k:<24} tokens/s {', '.join(f'{t:,.0f}' for t in tps)}   held-out perplexity {rs[0]['perplexity']:.4f}")
    a, b = best['2 processes x 1 thread'], best['1 process x 2 threads']
    print(f"ratio (2 processes x 1 thread) / (1 process x 2 threads), best of {o.repeats}: {a/b:.2f}")

if __name__ == '__main__': main()
