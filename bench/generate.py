"""Generation speed: textkit's `generate` against a plain batch-1 loop over the same model, in the same run.

The reference is what `generate` did before its fast path: one `model(...)` call per token at batch 1 (`plain_loop`).
On x86 CPU builds `torch.nn.LSTM` runs through oneDNN (`torch.backends.mkldnn.enabled`), whose per-call cost at batch
1 and length 1 is several times that of PyTorch's own kernel, so the reference is timed both ways and the ratios are
given against each: against oneDNN (the default a user's loop gets) and against the faster native kernel.
textkit's path warms the state on the prompt once, then steps the fused layer's weights with plain tensor operations
(`FusedSteps`); `n_samples=k` draws k continuations in one batched pass. Characters per second, best of `--repeats`,
at each thread count; greedy decoding is also checked to give the same text as the reference.

    python bench/generate.py                    # default char LSTM (2 x 256, emb 64) on the Quijote's characters
    python bench/generate.py --n 500 --threads 1 2
"""
import argparse, time, warnings
import torch
from fastai.torch_core import set_seed
from textkit.data import char_lm_dls, get_corpus
from textkit.lm import lm_learner

@torch.no_grad()
def plain_loop(learn, prompt:str, n:int) -> str:
    "Greedy decoding with one `model(...)` call per token at batch 1: the reference"
    model, dls = learn.model.eval(), learn.dls
    ids = [dls.vocab.index(c) for c in prompt]
    model.reset()
    logits, out = model(torch.tensor([ids]))[0, -1], []
    for _ in range(n):
        nxt = int(logits.argmax()); out.append(nxt)
        logits = model(torch.tensor([[nxt]]))[0, -1]
    model.reset()
    return dls.decode(ids + out)

def rate(f, n_chars, repeats):
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
    return n_chars/best

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=500, help='characters to generate')
    p.add_argument('--k', type=int, default=16, help='samples in the batched pass')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--train-chars', type=int, default=60_000, help='one epoch on this many characters, so that greedy text is not a constant')
    a = p.parse_args()
    warnings.filterwarnings('ignore', message='TF32 acceleration')  # printed when oneDNN is switched off and on again
    set_seed(0)
    dls = char_lm_dls(get_corpus('quijote')[:a.train_chars], bs=32, seq_len=64)
    learn = lm_learner(dls, 'lstm', emb_sz=64, hidden_sz=256, n_layers=2)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 3e-3)
    prompt = 'En un lugar de la Mancha'
    same = learn.generate(prompt, a.n, greedy=True) == plain_loop(learn, prompt, a.n)
    print(f"char LSTM 2 x 256, emb 64, vocab {len(dls.vocab)}; {a.n} characters; greedy text identical to the reference: {same}")
    for t in a.threads:
        torch.set_num_threads(t)
        ref = rate(lambda: plain_loop(learn, prompt, a.n), a.n, a.repeats)
        with torch.backends.mkldnn.flags(enabled=False):
            native = rate(lambda: plain_loop(learn, prompt, a.n), a.n, a.repeats)
        greedy = rate(lambda: learn.generate(prompt, a.n, greedy=True), a.n, a.repeats)
        sampled = rate(lambda: learn.generate(prompt, a.n, temperature=0.8, seed=0), a.n, a.repeats)
        batched = rate(lambda: learn.generate(prompt, a.n, temperature=0.8, seed=0, n_samples=a.k), a.n*a.k, a.repeats)
        print(f"{t} thread(s): reference {ref:,.0f} chars/s (oneDNN), {native:,.0f} (native kernel) | "
              f"greedy {greedy:,.0f} ({greedy/ref:.2f}x, {greedy/native:.2f}x native) | "
              f"sampled {sampled:,.0f} ({sampled/ref:.2f}x, {sampled/native:.2f}x native) | "
              f"k={a.k} batched {batched:,.0f} summed ({batched/sampled:.2f}x sampled)")

if __name__ == '__main__': main()
