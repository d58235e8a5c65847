"""Generation speed: textkit's `generate` against a plain batch-1 loop over the same model, in the same run.

The reference is what `generate` did before its fast path: one `model(...)` call per token at batch 1 (`plain_loop`).
On x86 CPU builds `torch.nn.LSTM` runs through oneDNN (`torch.backends.mkldnn.enabled`), whose per-call cost at batch
1 and length 1 is several times that of PyTorch's own kernel, so the reference is timed both ways and the ratios are
given against each: against oneDNN (the default a user's loop gets) and against the faster native kernel.
textkit's path warms the state on the prompt once, then steps the fused layer's weights with plain tensor operations
(`FusedSteps`); `n_samples=k` draws k continuations in one batched pass. Each round times every path once, in an
order that alternates from round to round, so that drifts in machine load hit all paths alike; the table gives the
median characters per second of each path over `--rounds` rounds and the median of the per-round ratios, at each
thread count. Greedy decoding is also checked to give the same text as the reference.

    python bench/generate.py                    # default char LSTM (2 x 256, emb 64) on the Quijote's characters
    python bench/generate.py --n 500 --threads 1 2 --rounds 15
"""
import argparse, statistics, time, warnings
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

def chars_per_s(f, n_chars) -> float:
    t0 = time.perf_counter(); f()
    return n_chars/(time.perf_counter() - t0)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=500, help='characters to generate')
    p.add_argument('--k', type=int, default=16, help='samples in the batched pass')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--rounds', type=int, default=15, help='rounds of one timing per path')
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
    def native():
        with torch.backends.mkldnn.flags(enabled=False): plain_loop(learn, prompt, a.n)
    paths = dict(reference=(lambda: plain_loop(learn, prompt, a.n), a.n), native=(native, a.n),
                 greedy=(lambda: learn.generate(prompt, a.n, greedy=True), a.n),
                 sampled=(lambda: learn.generate(prompt, a.n, temperature=0.8, seed=0), a.n),
                 batched=(lambda: learn.generate(prompt, a.n, temperature=0.8, seed=0, n_samples=a.k), a.n*a.k))
    print(f"{a.rounds} rounds; median characters/s of each path, and the median of the per-round ratios\n")
    print(f"| threads | reference (oneDNN) | native kernel | greedy | sampled | k={a.k} batched, summed | greedy/ref | "
          f"sampled/ref | sampled/native | batched/sampled |\n|" + "---|"*10)
    for t in a.threads:
        torch.set_num_threads(t)
        for f, n in paths.values(): f()  # warm-up
        rates = {k: [] for k in paths}
        for r in range(a.rounds):
            for k in (list(paths) if r % 2 == 0 else list(paths)[::-1]): rates[k].append(chars_per_s(*paths[k]))
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratio = lambda x, y: statistics.median(p/q for p, q in zip(rates[x], rates[y]))
        print(f"| {t} | {med['reference']:,.0f} | {med['native']:,.0f} | {med['greedy']:,.0f} | {med['sampled']:,.0f} | "
              f"{med['batched']:,.0f} | {ratio('greedy', 'reference'):.2f}x | {ratio('sampled', 'reference'):.2f}x | "
              f"{ratio('sampled', 'native'):.2f}x | {ratio('batched', 'sampled'):.2f}x |", flush=True)

if __name__ == '__main__': main()
