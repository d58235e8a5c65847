"""Profile of one IMDB language-model training step (forward, backward, Adam) by output layer, measured side by side.

    python bench/ulmfit_lm_step.py                       # emb = hidden = 256, bs 32 x 72 tokens, 1 thread
    python bench/ulmfit_lm_step.py --hidden 400 --rounds 5
    python bench/ulmfit_lm_step.py --max-vocab 30000 --cutoffs 2000,10000   # the second full run's choices (12_ulmfit)

With a vocabulary of tens of thousands of words, the output layer (2 x hidden x vocab multiply-adds per token, forward
alone) is most of a CPU step. The remedies compared, on the same batches of real IMDB training reviews (the classifier's
vocabulary, capped by frequency: ids past the cap become xxunk):
full softmax (untied), tied embedding and output weights, capped vocabularies (tied), and an adaptive softmax
(`torch.nn.AdaptiveLogSoftmaxWithLoss`, tied embedding impossible, full vocabulary). Variants run in turn, round after
round, so a busy machine slows them alike: read the ratios, not the milliseconds."""
import argparse, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F
from fastai.optimizer import Adam
import numpy as np
from textkit.ulmfit import imdb_splits

class StepLM(nn.Module):
    "Embedding, one-way LSTM, then a full decoder (tied or not) or an adaptive softmax"
    def __init__(self, vocab, emb, hidden, layers, tied=False, adaptive=None):
        super().__init__()
        self.enc, self.rnn = nn.Embedding(vocab, emb), nn.LSTM(emb, hidden, layers, batch_first=True)
        self.proj = nn.Linear(hidden, emb, bias=False) if tied and emb != hidden else None
        if adaptive: self.asm = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, adaptive, div_value=4.)
        else:
            self.asm, self.dec = None, nn.Linear(emb if tied else hidden, vocab)
            if tied: self.dec.weight = self.enc.weight
    def loss(self, x, y):
        out, _ = self.rnn(self.enc(x))
        if self.asm is not None: return self.asm(out.reshape(-1, out.shape[-1]), y.reshape(-1)).loss
        if self.proj is not None: out = self.proj(out)
        return F.cross_entropy(self.dec(out).reshape(-1, self.dec.out_features), y.reshape(-1))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--emb', type=int, default=256); p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--layers', type=int, default=1); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--seq-len', type=int, default=72); p.add_argument('--steps', type=int, default=8)
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--threads', type=int, default=1)
    p.add_argument('--max-vocab', type=int, default=60000)
    p.add_argument('--cutoffs', type=lambda s: [int(x) for x in s.split(',')], default=[2000, 10000, 30000],
                   help="the adaptive softmax's cutoffs (those below the vocabulary's size are kept)")
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    sp = imdb_splits('full', max_vocab=a.max_vocab)
    V = len(sp['vocab'])
    n = a.bs*a.seq_len
    stream = torch.from_numpy(np.concatenate([sp['ids'][i] for i in sp['train'][:2000]]).astype(np.int64))  # the first training reviews
    batches = [(stream[k*n:(k+1)*n].view(a.bs, a.seq_len), stream[k*n+1:(k+1)*n+1].view(a.bs, a.seq_len)) for k in range(a.steps)]
    cut = [c for c in a.cutoffs if c < V - 1]
    variants = {f'full softmax, vocab {V:,}': dict(vocab=V), f'tied, vocab {V:,}': dict(vocab=V, tied=True)}
    for cap in (30000, 15000, 10000, 8000):
        if cap < V: variants[f'tied, vocab capped at {cap:,}'] = dict(vocab=cap, tied=True)
    variants[f'adaptive softmax {cut}, vocab {V:,}'] = dict(vocab=V, adaptive=cut)
    models = {k: StepLM(v['vocab'], a.emb, a.hidden, a.layers, v.get('tied', False), v.get('adaptive')) for k, v in variants.items()}
    opts = {k: Adam(list(m.parameters()), lr=1e-3) for k, m in models.items()}
    times = {k: [] for k in models}
    for r in range(a.rounds + 1):           # round 0 warms up
        for k, m in models.items():
            cap = variants[k]['vocab']
            t0 = time.process_time()
            for x, y in batches:
                x, y = x.clone(), y.clone(); x[x >= cap] = 0; y[y >= cap] = 0
                loss = m.loss(x, y); loss.backward(); opts[k].step(); opts[k].zero_grad()
            if r: times[k].append((time.process_time() - t0)/len(batches))
    base = statistics.median(times[next(iter(times))])
    print(f"LM step, emb {a.emb}, hidden {a.hidden}, {a.layers} LSTM layer(s), batch {a.bs} x {a.seq_len} tokens, {a.threads} thread(s); "
          f"median over {a.rounds} rounds of {a.steps} steps (CPU ms per step; tokens/CPU s)")
    for k, t in times.items():
        ms = statistics.median(t)*1000
        n_par = sum(p.numel() for p in models[k].parameters())
        print(f"{k:45s} {ms:8.0f} ms  {a.bs*a.seq_len/ms*1000:8.0f} tok/s  x{base*1000/ms:5.2f} vs full  params {n_par/1e6:5.1f}M")

if __name__ == '__main__': main()
