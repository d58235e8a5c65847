"""IMDB tokenization and DataLoaders: textkit against fastai's default pipeline, side by side in one run.

Tokenization, on the same reviews with the same number of worker processes, best of `--repeats` runs, interleaved:
  textkit        `fast_tokenize` (fastai's text rules + the regex word tokenizer, batched): what `imdb_dls` uses
  fastai default fastai's `tokenize_df` with spaCy and fastai's text rules: what `TextDataLoaders` uses by default
  textkit 1-by-1 fastai's `tokenize_df` with textkit's tokenizer: textkit before issue 13, the exact-token reference
Then the cached reload of the same reviews' tokens, and `imdb_dls` in fresh processes on an empty cache (first call),
on the filled cache (cached call), with each process's peak resident memory (ru_maxrss).

    python bench/tokenization.py                        # 5,000 reviews, imdb_dls('sample')
    python bench/tokenization.py --size full            # the issue's figures
    python bench/tokenization.py --size full --only-dls --profile   # imdb_dls alone, with a profile of both calls
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from fastai.text.core import WordTokenizer, tokenize_df, defaults
from textkit.data import get_imdb, imdb_tokenizer, fast_tokenize, data_env, _imdb_tokens

CHILD = r'''
import json, resource, sys, time
def cpu(who): r = resource.getrusage(who); return r.ru_utime + r.ru_stime
t0 = time.perf_counter()
from textkit.data import imdb_dls
t1 = time.perf_counter(); c1 = cpu(resource.RUSAGE_SELF)
if sys.argv[2] == 'profile':
    import cProfile, pstats
    with cProfile.Profile() as pr: dls = imdb_dls(sys.argv[1])
    pstats.Stats(pr, stream=sys.stderr).sort_stats('cumtime').print_stats(30)
else: dls = imdb_dls(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({'import': t1 - t0, 'dls': t2 - t1, 'n': len(dls.train_ds) + len(dls.valid_ds),
                  'cpu': cpu(resource.RUSAGE_SELF) - c1, 'workers_cpu': cpu(resource.RUSAGE_CHILDREN),
                  'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,
                  'workers_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))
'''

def cpu_s():
    "CPU seconds of this process and of its finished worker processes"
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ('ru_utime', 'ru_stime'))

def timed(f, cpu=None):
    "Wall seconds of `f()`; its CPU seconds (workers included) go to the list `cpu`"
    c0, t0 = cpu_s(), time.perf_counter(); f(); t = time.perf_counter() - t0
    if cpu is not None: cpu.append(cpu_s() - c0)
    return t

def child(size, env, profile=False):
    "`imdb_dls(size)` in a fresh process: seconds for the call (imports apart), CPU seconds and peak memory"
    out = subprocess.run([sys.executable, '-c', CHILD, size, 'profile' if profile else ''], env=env, capture_output=True,
                         text=True, check=True)
    if profile: print(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=5000, help='reviews to tokenize (from the full train+test set, seed 0)')
    p.add_argument('--workers', type=int, default=defaults.cpus, help="worker processes for both pipelines")
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--size', default='sample', choices=['sample', 'full'], help='IMDB size for the imdb_dls timings')
    p.add_argument('--no-reference', action='store_true', help="skip the slow textkit 1-by-1 row")
    p.add_argument('--only-dls', action='store_true', help="only the imdb_dls rows (first call, from the cache)")
    p.add_argument('--profile', action='store_true', help="print cProfile's top 30 (cumulative) of each imdb_dls call")
    a = p.parse_args()

    if a.only_dls: return dls_rows(a)
    df = get_imdb('full').sample(a.n, random_state=0).reset_index(drop=True)
    tk = imdb_tokenizer()
    runs = {'textkit': lambda: fast_tokenize(df.text, n_workers=a.workers),
            'fastai default': lambda: tokenize_df(df, 'text', n_workers=a.workers, rules=defaults.text_proc_rules,
                                                  tok=WordTokenizer())}
    if not a.no_reference:
        runs['textkit 1-by-1'] = lambda: tokenize_df(df, 'text', n_workers=a.workers, rules=tk.rules, tok=tk.tok)
    best, cpu = {k: float('inf') for k in runs}, {k: [] for k in runs}
    for _ in range(a.repeats):                     # interleaved, so that a busy machine slows all alike
        for k, f in runs.items(): best[k] = min(best[k], timed(f, cpu[k]))
    print(f"IMDB tokenization, {a.n:,} reviews ({df.text.str.len().sum()/1e6:.1f}M characters), "
          f"{a.workers} workers, best of {a.repeats}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for k, s in best.items():
        print(f"  {k:<16} {a.n/s:>9,.0f} reviews/s  ({s:6.2f} s)  {best['fastai default']/s:5.2f}x fastai default   "
              f"CPU {min(cpu[k]):6.2f} s (workers included)  {min(cpu['fastai default'])/min(cpu[k]):5.2f}x")
    ratio = best['fastai default']/best['textkit']
    print(f"  textkit/fastai default: {ratio:.2f}x wall, {min(cpu['fastai default'])/min(cpu['textkit']):.2f}x CPU seconds  "
          f"(target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")

    with tempfile.TemporaryDirectory() as cache, data_env(os.environ.get('TEXTKIT_DATA'), cache):
        sub = df.assign(is_valid=df.index % 5 == 0)
        _imdb_tokens(None, sub, tk, a.workers, True)
        cached = min(timed(lambda: _imdb_tokens(None, sub, tk, a.workers, True)) for _ in range(a.repeats))
        print(f"  textkit cached reload of the same tokens: {cached:.3f} s  ({best['textkit']/cached:.1f}x faster than "
              f"tokenizing cold, {best['fastai default']/cached:.0f}x fastai default)")

    dls_rows(a)

def dls_rows(a):
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, 'TEXTKIT_CACHE': cache}
        first, again = child(a.size, env, a.profile), child(a.size, env, a.profile)
    target = {'full': (10, 3), 'sample': (None, 0.5)}[a.size]
    print(f"imdb_dls('{a.size}') in a fresh process ({first['n']:,} reviews; importing textkit {first['import']:.1f} s apart):")
    print(f"  first call (tokenize, cache) {first['dls']:6.2f} s  peak RSS {first['rss_mb']:,.0f} MB "
          f"(tokenizing workers {first['workers_rss_mb']:,.0f} MB)" +
          (f"  target < {target[0]} s: {'met' if first['dls'] < target[0] else 'NOT met'}" if target[0] else ''))
    print(f"  from the cache               {again['dls']:6.2f} s  peak RSS {again['rss_mb']:,.0f} MB  "
          f"target < {target[1]} s: {'met' if again['dls'] < target[1] else 'NOT met'}")
    print(f"  CPU seconds, first call: {first['cpu']:.1f} in the process + {first['workers_cpu']:.1f} in its workers; "
          f"from the cache: {again['cpu']:.1f}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")

if __name__ == '__main__': main()
