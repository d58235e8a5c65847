"""IMDB sentiment: textkit classifiers vs fastai's AWD-LSTM classifier from scratch, same data, same CPU-time budget.

    python bench/imdb.py --size full --budget 1800 --epochs 4 --max-len 800 --configs best --no-awd  # the target run
    python bench/imdb.py --size full --budget 1800 --configs best       # beside fastai's AWD-LSTM, same budget
    python bench/imdb.py --size full --budget 90 --configs course --no-awd --test-n 0  # rnn, birnn, ..., bigru
    add --results NAME to also write the table to nbs/results/NAME.csv (as the notebooks' tables clf_course, clf_best, clf_awd)

Every model trains with `fit_one_cycle` driven by `TimeBudget` (process CPU seconds, validation excluded) on the
official training split and is scored on the official test split (25,000 reviews for `--size full`), with the same
DataLoaders: reviews cut to their first `--max-len` tokens, vocabulary of at most `--max-vocab` tokens.
fastai's peer is `text_classifier_learner(dls, AWD_LSTM, pretrained=False)`: the same architecture as ULMFiT's
classifier, with its embedding and encoder learnt from nothing, like textkit's."""
import argparse, sys, time
import numpy as np, pandas as pd, torch
from fastcore.foundation import L
from fastai.metrics import accuracy
from fastai.text.learner import text_classifier_learner
from fastai.text.models.awdlstm import AWD_LSTM
from fastai.torch_core import set_seed
from textkit.data import imdb_dls
from fastai.callback.core import Callback, CancelValidException
from textkit.callbacks import TimeBudget
from textkit.classifier import classifier_learner
from textkit.experiments import save_results

COURSE = dict(emb_sz=100, hidden_sz=100, pool='last', head=(10,))  # the course notebook's sizes
CONFIGS = {
    'rnn':    dict(arch='rnn', **COURSE),
    'birnn':  dict(arch='rnn', bidirectional=True, **COURSE),
    'lstm':   dict(arch='lstm', **COURSE),
    'bilstm': dict(arch='lstm', bidirectional=True, **COURSE),
    'gru':    dict(arch='gru', **COURSE),
    'bigru':  dict(arch='gru', bidirectional=True, **COURSE),
    # the best configuration found (with --epochs 4 --max-len 800): concat pooling (last state, max and mean over
    # time) and dropout
    'best':   dict(arch='gru', bidirectional=True, emb_sz=100, hidden_sz=128, pool='concat', head=(64,), act='relu',
                   input_p=0.1, hidden_p=0.3, output_p=0.3, head_p=0.1),
}
GROUPS = {'course': ['rnn', 'birnn', 'lstm', 'bilstm', 'gru', 'bigru']}

class SkipValidation(Callback):
    "No validation at the end of each epoch: the models are scored once, after training"
    def before_validate(self): raise CancelValidException()

def run(learn, budget, lr, sub=None, full=True, max_epochs=50):
    "Train `learn` with one cycle for `budget` CPU seconds or `max_epochs`, whichever ends first; return its accuracy on the test split and on `sub`, and costs"
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(max_epochs, lr, cbs=[TimeBudget(budget), SkipValidation()])
    train_cpu, train_wall = learn.train_time['cpu'], learn.train_time['wall']  # measured by TimeBudget, validation excluded
    epochs = learn.train_iter / len(learn.dls.train)  # epochs done, the cut one counted in part
    t0, res = time.perf_counter(), {}
    with learn.no_bar():
        if full: res['accuracy'] = learn.validate()[1]
        if sub is not None: res['acc_subset'] = learn.validate(dl=sub)[1]
    return dict(**res, epochs=round(epochs, 2), train_cpu_s=round(train_cpu), train_wall_s=round(train_wall),
                eval_wall_s=round(time.perf_counter() - t0),
                params=sum(p.numel() for p in learn.model.parameters()))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', default='full', choices=['sample', 'full'])
    p.add_argument('--budget', type=float, default=1800, help='training CPU seconds per model')
    p.add_argument('--configs', default='best', help=f"comma-separated names from {list(CONFIGS)} or 'course'")
    p.add_argument('--epochs', type=int, default=50, help='one-cycle epochs: the schedule spans the budget or '
                   'these epochs, whichever ends first')
    p.add_argument('--lr', type=float, default=1e-2, help='peak learning rate of the textkit models')
    p.add_argument('--awd-lr', type=float, default=5e-3, help="peak learning rate of fastai's AWD-LSTM")
    p.add_argument('--no-awd', action='store_true', help="skip fastai's AWD-LSTM")
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--max-len', type=int, default=400)
    p.add_argument('--max-vocab', type=int, default=30000)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--results', default=None, help='also write the table to nbs/results/<RESULTS>.csv (`textkit.experiments.save_results`)')
    p.add_argument('--test-n', type=int, default=2000,
                   help="also score every model on this many test reviews (a fixed random subset), the only test "
                        "fastai's AWD-LSTM gets: scoring it on all 25,000 would take hours of CPU")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names = [n for c in a.configs.split(',') for n in GROUPS.get(c, [c])]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown: p.error(f"unknown configs {unknown}; valid: {list(CONFIGS)} or 'course'")
    t0 = time.perf_counter()
    dls = imdb_dls(a.size, bs=a.bs, max_len=a.max_len, max_vocab=a.max_vocab)
    print(f"IMDB {a.size}: {len(dls.train_ds):,} train / {len(dls.valid_ds):,} test reviews, vocab {len(dls.vocab[0]):,}, "
          f"first {a.max_len} tokens, data ready in {time.perf_counter()-t0:.0f} s; "
          f"budget {a.budget:g} CPU s per model, {a.threads} thread(s)", flush=True)
    idx = np.random.RandomState(0).permutation(len(dls.valid_ds))[:a.test_n]
    sub = dls.valid.new(dataset=L(dls.valid_ds[int(i)] for i in idx), shuffle=False) if a.test_n else None
    rows = []
    for name in names:
        set_seed(a.seed)
        learn = classifier_learner(dls, wd=0.01, **CONFIGS[name])
        rows.append(dict(model=f'textkit {name}', **run(learn, a.budget, a.lr, sub, max_epochs=a.epochs)))
        print(rows[-1], flush=True)
    if not a.no_awd:
        set_seed(a.seed)
        learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, metrics=accuracy, drop_mult=0.5)
        rows.append(dict(model='fastai AWD-LSTM (from scratch)', **run(learn, a.budget, a.awd_lr, sub, full=False, max_epochs=a.epochs)))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows).set_index('model').round(4)
    if not a.no_awd and sub is not None: df['subset acc vs AWD-LSTM'] = (df.acc_subset / df.acc_subset.iloc[-1]).round(3)
    print(f"accuracy: all {len(dls.valid_ds):,} test reviews" +
          (f"; acc_subset: the same {len(idx):,} test reviews for every model" if a.test_n else ''))
    print(df.to_string())
    if a.results:
        out = pd.DataFrame([dict(model=r['model'], max_len=a.max_len, epochs=r['epochs'], train_cpu_s=r['train_cpu_s'], accuracy=r.get('accuracy'),
                                 acc_subset=r.get('acc_subset'), params_M=round(r['params']/1e6, 1)) for r in rows])
        print('written:', save_results(out, a.results, ' '.join(['python bench/imdb.py', *sys.argv[1:]])))

if __name__ == '__main__': main()
