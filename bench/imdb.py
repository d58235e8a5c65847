"""IMDB sentiment: textkit classifiers vs fastai's AWD-LSTM classifier from scratch, same data, same CPU-time budget.

    python bench/imdb.py --size full --budget 1800 --epochs 4 --max-len 800 --configs best --no-awd  # the target run
    python bench/imdb.py --size full --budget 1800 --configs best       # beside fastai's AWD-LSTM, same budget
    python bench/imdb.py --size full --budget 90 --configs course --no-awd --test-n 0  # rnn, birnn, ..., bigru
    add --results NAME to also write the table to nbs/results/NAME.csv (as the notebooks' tables clf_course, clf_best, clf_awd)
    python bench/imdb.py --size full --configs best,pretrained,nblr --budget 1800 --lm-budget 3300 --clf-budget 1200 \
        --lm-vocab 10000 --lm-epochs 2 --max-len 800 --epochs 4 --no-awd --test-n 0 --plot bench/imdb_pretrained.png   # issue 17
    (add --lm-vocab 30000 --lm-adaptive 2000,10000 --lm-epochs 3 for the adaptive-softmax LM of the second full run)
    python bench/imdb.py --size full --configs pretrained,nblr --pre-arch bigru --lm-adaptive 2000 --lm-tied-adaptive \
        --lm-vocab 10000 --lm-budget 3600 --lm-epochs 2 --clf-budget 2100 --clf-epochs 1,1,3 --max-len 800 --epochs 4 \
        --no-awd --test-n 0    # the third: `best`'s bidirectional GRU from a forward and a backward LM, tied adaptive softmax

`pretrained` is the ULMFiT recipe from random weights (`textkit.ulmfit`): a language model on the training reviews
outside a 10% validation carve (`--transductive` adds the test reviews' text, without labels), its encoder moved into a
classifier (with `--pre-arch bigru`, a forward and a backward language model, trained side by side in two processes,
give the two directions of a bidirectional classifier), fine-tuned with gradual unfreezing; the carve is the only validation it sees, the test reviews are scored
once. `nblr` is the bag-of-n-grams peer (uni+bigrams of the same tokens, binarized, Naive-Bayes log-count-ratio
weighting, logistic regression: NBSVM-style, Wang & Manning 2012), its C chosen on the same carve. Every row states its
CPU seconds: user + system of the process and its children (`resource.getrusage`), training and scoring included.

Every model trains with `fit_one_cycle` driven by `TimeBudget` (process CPU seconds, validation excluded) on the
official training split and is scored on the official test split (25,000 reviews for `--size full`), with the same
DataLoaders: reviews cut to their first `--max-len` tokens, vocabulary of at most `--max-vocab` tokens.
fastai's peer is `text_classifier_learner(dls, AWD_LSTM, pretrained=False)`: the same architecture as ULMFiT's
classifier, with its embedding and encoder learnt from nothing, like textkit's."""
import argparse, json, multiprocessing, resource, sys, tempfile, time
from pathlib import Path
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
from textkit.lm import lm_learner
from textkit.ulmfit import imdb_splits, imdb_lm_dls, imdb_clas_dls, fine_tune_classifier

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
SPECIAL = ('pretrained', 'nblr')  # not a `classifier_learner` config: a pipeline each
# the pretrained pipeline's models (--pre-arch): the recurrent layers the language models pretrain and the classifier
# receives, and the classifier's other settings. 'lstm': a one-way LSTM 256 from one forward LM (the first two full
# runs). 'bigru': `best`'s bidirectional GRU, its forward direction from a forward LM, its backward one from a backward LM
# (ULMFiT's pair), the two LMs trained side by side in two processes.
PRE_ARCHS = {
    'lstm':  (dict(arch='lstm', emb_sz=256, hidden_sz=256, n_layers=1),
              dict(pool='concat', head=(64,), act='relu', input_p=0.1, hidden_p=0.2, output_p=0.3, head_p=0.1, head_bn=True)),
    'bigru': (dict(arch='gru', emb_sz=100, hidden_sz=128, n_layers=1),
              dict(bidirectional=True, pool='concat', head=(64,), act='relu', input_p=0.1, hidden_p=0.3, output_p=0.3, head_p=0.1, head_bn=True)),
}

def cpu_now() -> float:
    "CPU seconds (user + system) of this process and its finished children"
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

def nblr(a):
    "The NB-LR peer: uni+bigram presence, NB log-count ratios, logistic regression with C chosen on the carve"
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    # every token kept (min_freq 1, no cap): n-grams need no vocabulary limit; the tokens are the classifiers' (cached)
    sp = imdb_splits(a.size, valid_pct=a.valid_pct, seed=a.seed, max_vocab=10**7, min_freq=1, max_reviews=a.max_reviews)
    c0 = cpu_now()
    docs = [' '.join(map(str, o.tolist())) for o in sp['ids']]
    y = np.array([l == 'positive' for l in sp['labels']], int)
    vec = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=r'\S+', lowercase=False)
    tr, va, te = sp['train'], sp['valid'], sp['test']
    X = sparse.csr_matrix(vec.fit_transform([docs[i] for i in tr]))
    p, q = 1 + X[y[tr] == 1].sum(0).A1, 1 + X[y[tr] == 0].sum(0).A1
    r = np.log(p/p.sum()) - np.log(q/q.sum())
    nb = lambda idx: vec.transform([docs[i] for i in idx]).multiply(r).tocsr()
    Xtr, Xva = X.multiply(r).tocsr(), nb(va)
    best = max(((LogisticRegression(C=C, max_iter=1000, solver='liblinear').fit(Xtr, y[tr]), C) for C in a.nblr_c),
               key=lambda mc: (mc[0].predict(Xva) == y[va]).mean())
    m, C = best
    acc_valid = (m.predict(Xva) == y[va]).mean()
    acc = (m.predict(nb(te)) == y[te]).mean()
    return dict(accuracy=round(float(acc), 4), acc_valid=round(float(acc_valid), 4), cpu_s=round(cpu_now() - c0, 1),
                params=int(len(r)) + 1, note=f"C={C} (chosen on the carve from {list(a.nblr_c)}), {len(tr):,} training reviews")

def lm_splits(a) -> dict:
    "The reviews, tokens and carve every pretrained step shares (`imdb_splits`, the LM's capped vocabulary)"
    return imdb_splits(a.size, valid_pct=a.valid_pct, seed=a.seed, max_vocab=a.lm_vocab, max_reviews=a.max_reviews)

def train_lm(a, backwards:bool, path:Path, budget:float) -> dict:
    "Pretrain one language model (reading the reviews forward, or from their end) for `budget` CPU s; save its encoder in `path`"
    torch.set_num_threads(a.threads)  # also in a spawned process
    sp = lm_splits(a)
    set_seed(a.seed + backwards)
    lm_dls = imdb_lm_dls(a.size, bs=a.lm_bs, seq_len=a.lm_seq_len, transductive=a.transductive, backwards=backwards, splits=sp)
    # the output layer: a full softmax tied to the embedding (the default), or an adaptive one, tied with --lm-tied-adaptive
    dec = dict(adaptive=list(a.lm_adaptive), tie_weights=a.lm_tied_adaptive) if a.lm_adaptive else dict(tie_weights=True)
    lm = lm_learner(lm_dls, **PRE_ARCHS[a.pre_arch][0], **dec, input_p=0.1, hidden_p=0.1, output_p=0.2, wd=0.01, path=path)
    l0 = cpu_now()
    with lm.no_bar(): lm.fit_one_cycle(a.lm_epochs, a.lm_lr, cbs=[TimeBudget(budget)])
    lm.save_encoder('lm_bwd' if backwards else 'lm')
    return dict(cpu=cpu_now() - l0, ppl=float(lm.recorder.values[-1][-1]) if lm.recorder.values else None,
                tokens=int(sum(len(sp['ids'][i]) for i in lm_dls.splits['train'] + (sp['test'] if a.transductive else []))))

def pretrained(a):
    "The ULMFiT pipeline from random weights: LM pretraining, encoder moved, gradual unfreezing; scored once on the test reviews"
    c0 = cpu_now()
    sp = lm_splits(a)
    rnn, clf_kw = PRE_ARCHS[a.pre_arch]
    bidir = clf_kw.get('bidirectional', False)
    if a.lm_dir:  # an earlier run's language models: their encoders, and their figures from its lms.json
        path = Path(a.lm_dir)
        lms = json.loads((path/'lms.json').read_text())
    else:
        path = Path(tempfile.mkdtemp(prefix='textkit-ulmfit-'))
        if bidir:  # the forward and the backward LM in two processes, each with half the budget; their CPU counts once they end
            pool = multiprocessing.get_context('spawn').Pool(2)
            lms = pool.starmap(train_lm, [(a, False, path, a.lm_budget/2), (a, True, path, a.lm_budget/2)])
            pool.close(); pool.join()
        else: lms = [train_lm(a, False, path, a.lm_budget)]
        (path/'lms.json').write_text(json.dumps(lms))
        print(f"language models: {path} (reuse with --lm-dir)", flush=True)
    set_seed(a.seed)
    cdls = imdb_clas_dls(a.size, 'split', bs=a.bs, max_len=a.max_len, splits=sp)
    clf = classifier_learner(cdls, **rnn, **clf_kw, wd=0.01, path=path).load_encoder('lm')
    if bidir: clf.load_encoder('lm_bwd', direction='backward')
    with clf.no_bar(): fine_tune_classifier(clf, lr=a.clf_lr, epochs=a.clf_epochs, stages=a.clf_stages, lr_div=a.clf_lr_div,
                                            ratio=a.clf_ratio, cbs=[TimeBudget(a.clf_budget/len(a.clf_epochs))])
    acc_valid = clf.validate()[1]
    with clf.no_bar(): acc = clf.validate(dl=imdb_clas_dls(a.size, 'test', bs=a.bs, max_len=a.max_len, splits=sp).valid)[1]
    ppl = [None if o['ppl'] is None else round(o['ppl'], 1) for o in lms]
    lm_cpu = sum(o['cpu'] for o in lms)
    return dict(accuracy=round(float(acc), 4), acc_valid=round(float(acc_valid), 4),
                cpu_s=round(cpu_now() - c0 + (lm_cpu if a.lm_dir else 0), 1),  # reused LMs: their training's CPU seconds added
                lm_cpu_s=round(lm_cpu), lm_valid_perplexity=ppl[0] if len(ppl) == 1 else '/'.join(map(str, ppl)),
                lm_tokens=lms[0]['tokens'], params=sum(p.numel() for p in clf.model.parameters()),
                note=f"LM {'train+test text (transductive)' if a.transductive else 'training reviews only'}, vocab {len(sp['vocab']):,}, "
                     f"{('tied ' if a.lm_tied_adaptive else '') + 'adaptive softmax ' + str(list(a.lm_adaptive)) if a.lm_adaptive else 'tied softmax'}, "
                     f"{len(sp['train']):,} training reviews, " + (f"LMs reused from an earlier run (their training's CPU s added, not their start-up), " if a.lm_dir else '') +
                     ('bidirectional GRU from a forward and a backward LM (perplexities forward/backward)' if bidir else 'one-way forward LSTM'))

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
    p.add_argument('--valid-pct', type=float, default=0.1, help='pretrained, nblr: share of training reviews carved for selection')
    p.add_argument('--max-reviews', type=int, default=None, help='pretrained, nblr: a reduced run on this many training reviews')
    p.add_argument('--lm-vocab', type=int, default=10000, help='pretrained: the capped vocabulary of the LM and its classifier '
                   '(a full output layer, 2 x 256 x vocab multiply-adds per token, is most of an LM step: see bench/ulmfit_lm_step.py)')
    p.add_argument('--lm-adaptive', type=lambda s: () if s == 'none' else tuple(int(x) for x in s.split(',')), default=(),
                   help="pretrained: the LM's adaptive-softmax cutoffs (e.g. 2000,10000); by default 'none', a full softmax tied "
                        "to the embedding, whose encoder transferred better (nbs/12_ulmfit.ipynb, 'At full size')")
    p.add_argument('--pre-arch', default='lstm', choices=list(PRE_ARCHS), help='pretrained: the recurrent layers pretrained and fine-tuned (PRE_ARCHS)')
    p.add_argument('--lm-dir', default=None, help="pretrained: reuse the language models an earlier run saved in this directory (printed by that run), "
                                                  "with the same --pre-arch, --lm-vocab, --valid-pct, --seed and --max-reviews; their training's CPU seconds are added")
    p.add_argument('--lm-budget', type=float, default=3300, help='pretrained: LM training CPU seconds (split evenly between the forward and backward LMs of --pre-arch bigru)')
    p.add_argument('--lm-tied-adaptive', action='store_true', help='pretrained: with --lm-adaptive, tie the adaptive softmax to the embedding (`TiedAdaptiveLogSoftmax`)')
    p.add_argument('--lm-epochs', type=int, default=1, help='pretrained: LM one-cycle epochs (an upper bound with --lm-budget)')
    p.add_argument('--lm-lr', type=float, default=3e-3)
    p.add_argument('--lm-bs', type=int, default=32)
    p.add_argument('--lm-seq-len', type=int, default=72)
    p.add_argument('--transductive', action='store_true', help="pretrained: the LM also reads the test reviews' text (no labels)")
    p.add_argument('--clf-budget', type=float, default=1200, help='pretrained: fine-tuning CPU seconds, split over the stages')
    p.add_argument('--clf-lr', type=float, default=2e-2)
    p.add_argument('--clf-epochs', type=lambda s: tuple(int(x) for x in s.split(',')), default=(1, 1, 2), help='pretrained: epochs per stage')
    p.add_argument('--clf-stages', type=lambda s: tuple(int(x) for x in s.split(',')), default=(-1, -2, 0), help="pretrained: each stage's `freeze_to` (`fine_tune_classifier`)")
    p.add_argument('--clf-lr-div', type=lambda s: tuple(int(x) for x in s.split(',')), default=(1, 2, 20), help="pretrained: each stage's top learning rate is --clf-lr divided by this")
    p.add_argument('--clf-ratio', type=float, default=2.6, help='pretrained: discriminative learning rates, slice(top/ratio**4, top); 1 for one rate')
    p.add_argument('--nblr-c', type=lambda s: tuple(float(x) for x in s.split(',')), default=(0.1, 1.0, 10.0))
    p.add_argument('--plot', default=None, help='write test accuracy against CPU minutes, one point per row, to this file')
    p.add_argument('--test-n', type=int, default=2000,
                   help="also score every model on this many test reviews (a fixed random subset), the only test "
                        "fastai's AWD-LSTM gets: scoring it on all 25,000 would take hours of CPU")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names = [n for c in a.configs.split(',') for n in GROUPS.get(c, [c])]
    unknown = [n for n in names if n not in CONFIGS and n not in SPECIAL]
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
        c0 = cpu_now()
        if name == 'nblr': rows.append(dict(model='NB-LR (uni+bigrams, scikit-learn)', **nblr(a)))
        elif name == 'pretrained': rows.append(dict(model='textkit pretrained (ULMFiT recipe)', **pretrained(a)))
        else:
            set_seed(a.seed)
            learn = classifier_learner(dls, wd=0.01, **CONFIGS[name])
            rows.append(dict(model=f'textkit {name}', **run(learn, a.budget, a.lr, sub, max_epochs=a.epochs)))
            rows[-1]['cpu_s'] = round(cpu_now() - c0, 1)
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
        extra = ('acc_valid', 'lm_cpu_s', 'lm_valid_perplexity', 'note')  # the pretrained and nblr rows' own figures
        out = pd.DataFrame([dict(model=r['model'], max_len=a.max_len, epochs=r.get('epochs'), train_cpu_s=r.get('train_cpu_s', r.get('cpu_s')), cpu_s=r.get('cpu_s'), accuracy=r.get('accuracy'),
                                 acc_subset=r.get('acc_subset'), params_M=round(r['params']/1e6, 1) if r.get('params') else None,
                                 **{k: r.get(k) for k in extra}) for r in rows])
        print('written:', save_results(out, a.results, ' '.join(['python bench/imdb.py', *sys.argv[1:]])))
    if a.plot:
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, r in df.iterrows():
            if 'accuracy' in r and r.accuracy == r.accuracy and 'cpu_s' in r: ax.scatter(r.cpu_s/60, r.accuracy*100); ax.annotate(m, (r.cpu_s/60, r.accuracy*100), fontsize=8)
        ax.set_xlabel('CPU minutes (user + system, process and children)'); ax.set_ylabel(f'test accuracy (%), {len(dls.valid_ds):,} reviews')
        ax.set_title(f'IMDB {a.size}: accuracy against CPU time'); fig.tight_layout(); fig.savefig(a.plot, dpi=120)
        print(f"plot: {a.plot}")

if __name__ == '__main__': main()
