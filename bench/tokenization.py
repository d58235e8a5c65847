"""IMDB tokenization throughput: textkit's pipeline against fastai's default, in the same run.

textkit: fastai's text rules + the regex word tokenizer (`textkit.data.imdb_tokenizer`).
fastai:  fastai's text rules + spaCy (`fastai.text.core.WordTokenizer`), what `TextDataLoaders` uses by default.
Both go through fastai's `tokenize_df` with the same number of workers, on the same reviews.
Then: `imdb_dls` built from scratch (tokenizing) against built from the on-disk cache.

    python bench/tokenization.py                 # 2,000 reviews, cache timing on imdb_sample
    python bench/tokenization.py --n 5000 --size full
"""
import argparse, os, tempfile, time
import pandas as pd
from fastai.text.core import WordTokenizer, tokenize_df, defaults
from textkit.data import get_imdb, imdb_tokenizer, imdb_dls, data_env

def throughput(df, tok, rules, n_workers, repeats):
    "Best of `repeats` runs: documents per second"
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokenize_df(df, 'text', n_workers=n_workers, rules=rules, tok=tok)
        best = min(best, time.perf_counter() - t0)
    return len(df)/best, best

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=2000, help='reviews to tokenize (from the full train split)')
    p.add_argument('--workers', type=int, default=defaults.cpus)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--size', default='sample', choices=['sample', 'full'], help='IMDB size for the cache timing')
    a = p.parse_args()

    df = get_imdb('full').sample(a.n, random_state=0).reset_index(drop=True)
    tk = imdb_tokenizer()
    rows = [('textkit (regex + fastai rules)',) + throughput(df, tk.tok, tk.rules, a.workers, a.repeats),
            ('fastai default (spaCy + fastai rules)',) + throughput(df, WordTokenizer(), defaults.text_proc_rules, a.workers, a.repeats)]
    print(f"IMDB tokenization, {a.n:,} reviews, {a.workers} workers, best of {a.repeats}")
    for name, dps, secs in rows: print(f"  {name:<40} {dps:>9,.0f} docs/s  ({secs:.2f} s)")
    print(f"  ratio textkit/fastai: {rows[0][1]/rows[1][1]:.2f}x faster")

    with tempfile.TemporaryDirectory() as cache, data_env(os.environ.get('TEXTKIT_DATA'), cache):
        t0 = time.perf_counter(); imdb_dls(a.size); fresh = time.perf_counter() - t0
        t0 = time.perf_counter(); imdb_dls(a.size); cached = time.perf_counter() - t0
    print(f"imdb_dls('{a.size}'): first call (tokenize + cache) {fresh:.2f} s, second call (cache) {cached:.2f} s, "
          f"ratio {fresh/cached:.1f}x")

if __name__ == '__main__': main()
