"""Quijote character LSTM: textkit (`train_lm`) vs a plain PyTorch loop under the same CPU-time budget.

    python bench/lm.py --budget 900 --lr 5e-3   # seconds of training (process CPU time) for each side
    python bench/lm.py --budget 900 --lr 5e-3 --schedule one_cycle --opt fastai   # fastai's defaults
    python bench/lm.py --budget 900 --lr 5e-3 --results lm_target   # also write the table to nbs/results/lm_target.csv

Both sides train the same model (2-layer LSTM, hidden 256, embedding 64, no dropout) on the same split (the last 10%
of the characters held out, same vocabulary), with batches of 64 x 128 and gradient clipping at 1.0, then are scored
by the same function: exp of the mean cross-entropy over every held-out character, state carried along each stream.
The plain loop is the reference: Adam at a constant 3e-3, stateful truncated BPTT (measured at held-out
perplexity 3.70 after 335 s on an unshared machine)."""
import argparse, math, sys, time
import pandas as pd
import torch, torch.nn.functional as F
from torch import nn
from fastai.torch_core import set_seed
from fastai.optimizer import Adam
from textkit.lm import train_lm, torch_adam, SCHEDULES
from textkit.experiments import save_results

@torch.no_grad()
def heldout_ppl(model, ids, bs=64, seq_len=128):
    "Perplexity of `model` (tokens -> logits, `reset()`, stateful) on the 1-D stream `ids`, cut into `bs` streams"
    model.eval(); model.reset()
    n = (len(ids)-1)//bs
    x, y = ids[:n*bs].view(bs, n), ids[1:n*bs+1].view(bs, n)
    tot = 0.
    for i in range(0, n, seq_len):
        out = model(x[:, i:i+seq_len])
        tot += F.cross_entropy(out.reshape(-1, out.shape[-1]), y[:, i:i+seq_len].reshape(-1), reduction='sum').item()
    model.reset()
    return math.exp(tot/y.numel())

class PlainLSTM(nn.Module):
    "The reference model, in plain PyTorch"
    def __init__(self, vocab_sz, emb_sz=64, hidden_sz=256, n_layers=2):
        super().__init__()
        self.emb, self.rnn = nn.Embedding(vocab_sz, emb_sz), nn.LSTM(emb_sz, hidden_sz, n_layers, batch_first=True)
        self.out, self.h = nn.Linear(hidden_sz, vocab_sz), None
    def reset(self): self.h = None
    def forward(self, x):
        o, h = self.rnn(self.emb(x), self.h)
        self.h = tuple(t.detach() for t in h)
        return self.out(o)

def plain_loop(train_ids, vocab_sz, budget, lr=3e-3, bs=64, seq_len=128, clip=1.):
    "Train `PlainLSTM` with Adam on contiguous streams for `budget` CPU seconds; returns (model, steps, wall seconds)"
    model = PlainLSTM(vocab_sz); opt = torch.optim.Adam(model.parameters(), lr)
    n = (len(train_ids)-1)//bs
    x, y = train_ids[:n*bs].view(bs, n), train_ids[1:n*bs+1].view(bs, n)
    c0, w0, steps = time.process_time(), time.perf_counter(), 0
    while time.process_time() - c0 < budget:
        model.train(); model.reset()
        for i in range(0, n - seq_len, seq_len):
            loss = F.cross_entropy(model(x[:, i:i+seq_len]).reshape(-1, vocab_sz), y[:, i:i+seq_len].reshape(-1))
            opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(model.parameters(), clip); opt.step(); steps += 1
            if time.process_time() - c0 >= budget: break
    return model, steps, time.perf_counter() - w0

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--budget', type=float, default=60, help='training seconds (process CPU time) for each side')
    p.add_argument('--lr', type=float, default=5e-3, help='peak learning rate of textkit')
    p.add_argument('--schedule', default='flat_cos', choices=list(SCHEDULES), help="textkit's learning-rate schedule")
    p.add_argument('--opt', default='torch', choices=['torch', 'fastai'],
                   help="textkit's Adam: `torch_adam` (eps 1e-8, sqr_mom 0.999) or fastai's defaults (eps 1e-5, 0.99)")
    p.add_argument('--threads', type=int, default=1, help='torch threads (1 keeps CPU time close to wall time)')
    p.add_argument('--max-chars', type=int, default=None, help='use only the first characters of the Quijote')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--results', default=None, help='also write the table to nbs/results/<RESULTS>.csv (`textkit.experiments.save_results`)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    set_seed(a.seed)
    learn = train_lm('quijote', 'char', 'lstm', epochs=100, lr=a.lr, bs=64, seq_len=128, hidden_sz=256, emb_sz=64,
                     n_layers=2, dropout=0., wd=0., max_chars=a.max_chars, budget=a.budget, seed=a.seed,
                     schedule=a.schedule, opt_func=torch_adam if a.opt == 'torch' else Adam, show_progress=False)
    dls = learn.dls
    train_ids, valid_ids = (torch.as_tensor(dl.dataset[0]).long() for dl in (dls.train, dls.valid))
    tk = heldout_ppl(learn.model, valid_ids)
    tk_steps = learn.train_iter
    set_seed(a.seed)
    model, steps, wall = plain_loop(train_ids, len(dls.vocab), a.budget)
    pl = heldout_ppl(model, valid_ids)
    print(f"\nQuijote chars: {len(train_ids):,} train / {len(valid_ids):,} held out, vocab {len(dls.vocab)}, "
          f"budget {a.budget:g} CPU s each, {a.threads} thread(s)")
    tk_name = f"textkit {a.schedule} {a.lr:g}, {a.opt} Adam"
    print(f"{'':36}{'held-out ppl':>13}{'bits/char':>10}{'steps':>7}{'wall s':>8}")
    rows = [dict(run=name, perplexity=round(ppl, 3), bits_per_char=round(math.log2(ppl), 3), steps=n, wall_s=round(w))
            for name, ppl, n, w in ((tk_name, tk, tk_steps, learn.train_time['wall']), ('plain PyTorch loop, Adam 3e-3', pl, steps, wall))]
    for r in rows: print(f"{r['run']:36}{r['perplexity']:13.3f}{r['bits_per_char']:10.3f}{r['steps']:7d}{r['wall_s']:8.0f}")
    if a.results: print('written:', save_results(pd.DataFrame(rows), a.results, ' '.join(['python bench/lm.py', *sys.argv[1:]])))
    print(f"ratio textkit/plain perplexity: {tk/pl:.3f}")

if __name__ == '__main__': main()
