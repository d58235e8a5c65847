"""Retrain textkit's pretrained models from the corpora and save them in the safe format.

    python tools/pretrain.py quijote             # character LSTM on Don Quijote, ~1100 CPU s
    python tools/pretrain.py moliere             # character LSTM on Molière, ~1100 CPU s
    python tools/pretrain.py don_mendo           # word LSTM on La venganza de Don Mendo
    python tools/pretrain.py imdb                # bi-GRU sentiment classifier on IMDB, ~850 CPU s
    python tools/pretrain.py quijote --out DIR   # somewhere else than textkit/pretrained/quijote

Each run trains with one torch thread, scores the model on its held-out data, and writes a model directory
(`config.json` + `model.safetensors` + `README.md`, the model card) with `textkit.models.save_model`.
Training stops after a budget of process CPU seconds, so the exact weights depend on the machine's speed;
the card records the steps done, the CPU seconds and the command."""
from __future__ import annotations
import argparse, json, math, os, sys, time
from pathlib import Path

import numpy as np, torch, torch.nn.functional as F
from fastai.torch_core import set_seed

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

# The recipes. Everything a run does is here, so the card can state it.
RECIPES = {
    'quijote': dict(kind='lm', corpus='quijote', level='char', arch='lstm', emb_sz=64, hidden_sz=256, n_layers=2,
                    dropout=0., wd=0., bs=64, seq_len=128, lr=5e-3, epochs=100, budget=1100, schedule='flat_cos',
                    opt='torch_adam', clip=1., seed=0),
    'moliere': dict(kind='lm', corpus='moliere', level='char', arch='lstm', emb_sz=64, hidden_sz=256, n_layers=2,
                    dropout=0., wd=0., bs=64, seq_len=128, lr=5e-3, epochs=100, budget=1100, schedule='flat_cos',
                    opt='torch_adam', clip=1., seed=0),
    'don_mendo': dict(kind='lm', corpus='don_mendo', level='word', arch='lstm', emb_sz=200, hidden_sz=200, n_layers=1,
                      dropout=0.5, wd=0.1, bs=16, seq_len=32, lr=5e-3, epochs=30, budget=None, schedule='one_cycle',
                      opt='torch_adam', clip=0.5, seed=0, tie_weights=True, min_freq=2, lower=True, keep_best=True),
    'imdb': dict(kind='clf', data='imdb', size='full', arch='gru', bidirectional=True, emb_sz=100, hidden_sz=128,
                 pool='concat', head=(64,), act='relu', emb_drop=0.1, rnn_drop=0.3, head_drop=0.1, bs=64, max_len=800,
                 max_vocab=30000, min_freq=3, lr=1e-2, epochs=4, budget=1800, wd=0.01, seed=0),
}

@torch.no_grad()
def heldout_nll(model, ids, bs=64, seq_len=128) -> float:
    "Mean cross-entropy (nats) of `model` on the 1-D id stream `ids`, cut into `bs` streams, state carried along each"
    model.eval(); model.reset()
    n = (len(ids)-1)//bs
    x, y = ids[:n*bs].view(bs, n), ids[1:n*bs+1].view(bs, n)
    tot = 0.
    for i in range(0, n, seq_len):
        out = model(x[:, i:i+seq_len])
        tot += F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y[:, i:i+seq_len].reshape(-1), reduction='sum').item()
    model.reset()
    return tot/y.numel()

def bigram_baseline(train, valid, vocab_sz:int) -> dict:
    "Held-out perplexity of the interpolated bigram model `l*P(w|v) + (1-l)*P_add1(w)`, `l` chosen on the held-out text (favours the baseline)"
    uni = (torch.bincount(train, minlength=vocab_sz).double() + 1)
    uni = uni/uni.sum()
    pair = train[:-1]*vocab_sz + train[1:]
    big = torch.bincount(pair, minlength=vocab_sz*vocab_sz).double().view(vocab_sz, vocab_sz)
    ctx = big.sum(1, keepdim=True)
    p_big = torch.where(ctx > 0, big/ctx.clamp(min=1), torch.zeros_like(big))
    v, w = valid[:-1], valid[1:]
    pb, pu = p_big[v, w], uni[w]
    best = min((math.exp(-torch.log(l*pb + (1-l)*pu).mean().item()), l) for l in [i/20 for i in range(20)])
    return dict(perplexity=best[0], lam=best[1], unigram_perplexity=math.exp(-torch.log(pu).mean().item()))

def train_lm_recipe(name, r):
    from fastai.callback.tracker import SaveModelCallback
    from textkit.lm import lm_corpus_dls, lm_learner, torch_adam, SCHEDULES
    from textkit.callbacks import TimeBudget
    from fastai.optimizer import Adam
    set_seed(r['seed'])
    dls = lm_corpus_dls(r['corpus'], r['level'], r['bs'], r['seq_len'], None, 0.1, r.get('min_freq'), r.get('lower', True))
    learn = lm_learner(dls, r['arch'], clip=r['clip'], emb_sz=r['emb_sz'], hidden_sz=r['hidden_sz'], n_layers=r['n_layers'],
                       dropouts=r['dropout'], tie_weights=r.get('tie_weights', False), wd=r['wd'],
                       opt_func=torch_adam if r['opt'] == 'torch_adam' else Adam)
    cbs = [TimeBudget(r['budget'])] if r['budget'] else []
    if r.get('keep_best'): cbs.append(SaveModelCallback(monitor='perplexity', comp=np.less, fname=f'_pretrain_{name}',
                                                         with_opt=False))
    c0, w0 = time.process_time(), time.perf_counter()
    with learn.no_bar(): getattr(learn, SCHEDULES[r['schedule']])(r['epochs'], r['lr'], cbs=cbs)
    cpu, wall = time.process_time()-c0, time.perf_counter()-w0
    train_ids, valid_ids = (torch.as_tensor(dl.dataset[0]).long() for dl in (dls.train, dls.valid))
    nll = heldout_nll(learn.model, valid_ids, min(64, r['bs']), r['seq_len'])
    metrics = dict(perplexity=math.exp(nll))
    if r['level'] == 'char': metrics['bits_per_char'] = nll/math.log(2)
    else: metrics['bigram_baseline'] = bigram_baseline(train_ids, valid_ids, len(dls.vocab))
    info = dict(steps=learn.train_iter, train_cpu_s=round(cpu, 1), train_wall_s=round(wall, 1),
                train_tokens=len(train_ids), heldout_tokens=len(valid_ids))
    return learn, metrics, info

def train_clf_recipe(name, r):
    from fastai.callback.core import Callback, CancelValidException
    from textkit.data import imdb_dls
    from textkit.callbacks import TimeBudget
    from textkit.classifier import classifier_learner
    class SkipValidation(Callback):
        def before_validate(self): raise CancelValidException()
    dls = imdb_dls(r['size'], bs=r['bs'], max_len=r['max_len'], max_vocab=r['max_vocab'], min_freq=r['min_freq'])
    set_seed(r['seed'])
    model_kw = {k: r[k] for k in ('bidirectional', 'emb_sz', 'hidden_sz', 'pool', 'head', 'act', 'emb_drop', 'rnn_drop', 'head_drop')}
    learn = classifier_learner(dls, r['arch'], wd=r['wd'], **model_kw)
    c0, w0 = time.process_time(), time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(r['epochs'], r['lr'], cbs=[TimeBudget(r['budget']), SkipValidation()])
    cpu, wall = time.process_time()-c0, time.perf_counter()-w0
    with learn.no_bar(): loss, acc = learn.validate()
    metrics = dict(accuracy=float(acc), loss=float(loss))
    info = dict(steps=learn.train_iter, train_cpu_s=round(cpu, 1), train_wall_s=round(wall, 1),
                train_reviews=len(dls.train_ds), test_reviews=len(dls.valid_ds))
    return learn, metrics, info

def save_raw(learn, name, r, metrics, info, command, raw_dir):
    "A first copy, independent of `textkit.models`: state_dict in safetensors, everything else in JSON"
    from safetensors.torch import save_file
    raw_dir = Path(raw_dir); raw_dir.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    if r['kind'] == 'lm' and r.get('tie_weights'): sd.pop('decoder.weight', None)
    save_file(sd, str(raw_dir/'model.safetensors'))
    dls = learn.dls
    if r['kind'] == 'lm':
        vocab, extra = list(dls.vocab), dict(level=dls.level, lower=getattr(dls.tok.tok, 'lower', False))
        mcfg = learn.model.config
    else:
        vocab, extra = list(dls.vocab[0]), dict(labels=list(map(str, dls.vocab[1])))
        m = learn.model
        mcfg = dict(vocab_sz=len(vocab), arch=r['arch'], n_out=len(dls.vocab[1]), pad_idx=vocab.index('xxpad'),
                    **{k: r[k] for k in ('bidirectional', 'emb_sz', 'hidden_sz', 'pool', 'head', 'act', 'emb_drop', 'rnn_drop', 'head_drop')})
    (raw_dir/'meta.json').write_text(json.dumps(dict(name=name, recipe=r, model=mcfg, vocab=vocab, extra=extra,
                                                     metrics=metrics, info=info, command=command), ensure_ascii=False, indent=1, default=str),
                                     encoding='utf-8')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('names', nargs='+', choices=list(RECIPES), help='models to retrain, one after the other')
    p.add_argument('--out', default=None, help='model directory (one name only); default textkit/pretrained/NAME')
    p.add_argument('--raw', default=str(ROOT/'_train'), help='folder for a first raw copy of each run (weights + JSON)')
    p.add_argument('--budget', type=float, default=None, help='override the recipe budget in CPU seconds (quick checks)')
    p.add_argument('--epochs', type=int, default=None, help='override the recipe epochs (quick checks)')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in a.names:
        r = dict(RECIPES[name])
        if a.budget is not None: r['budget'] = a.budget
        if a.epochs is not None: r['epochs'] = a.epochs
        command = 'python tools/pretrain.py ' + name + (f' --budget {a.budget:g}' if a.budget is not None else '') + \
                  (f' --epochs {a.epochs}' if a.epochs is not None else '')
        print(f"== {name}: {r}", flush=True)
        learn, metrics, info = (train_lm_recipe if r['kind'] == 'lm' else train_clf_recipe)(name, r)
        print(f"== {name}: {metrics} {info}", flush=True)
        save_raw(learn, name, r, metrics, info, command, Path(a.raw)/name)
        try:
            from textkit.models import save_pretrained
            out = save_pretrained(learn, name, r, metrics, info, command, a.out)
            print(f"== {name}: saved to {out}", flush=True)
        except Exception as e: print(f"== {name}: raw copy only in {Path(a.raw)/name} ({type(e).__name__}: {e})", flush=True)

if __name__ == '__main__': main()
