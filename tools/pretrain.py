"""Retrain textkit's pretrained models from the corpora and save them in the safe format.

    python tools/pretrain.py quijote             # character LSTM on Don Quijote, ~900 CPU s (10 epochs)
    python tools/pretrain.py moliere             # character LSTM on Molière, ~850 CPU s (12 epochs)
    python tools/pretrain.py don_mendo           # word LSTM on La venganza de Don Mendo
    python tools/pretrain.py imdb                # bi-GRU sentiment classifier on IMDB, ~850 CPU s
    python tools/pretrain.py quijote --out DIR   # somewhere else than textkit/pretrained/quijote

Each run trains with one torch thread, scores the model on its held-out data, and writes a model directory
(`config.json` + `model.safetensors` + `README.md`, the model card) with `textkit.models.save_model`.
Each recipe trains for a fixed number of epochs (`--budget` adds a stop after that many process CPU seconds, for
quick checks), so the weights do not depend on how busy the machine is; the card records the steps, the CPU seconds
and the command."""
from __future__ import annotations
import argparse, json, math, os, sys, time
from pathlib import Path

import numpy as np, torch, torch.nn.functional as F
from fastai.torch_core import set_seed

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
import textkit.models  # before any model is built: models record their constructor arguments (`.config`)

# The recipes. Everything a run does is here, so the card can state it.
RECIPES = {
    'quijote': dict(kind='lm', corpus='quijote', level='char', arch='lstm', emb_sz=64, hidden_sz=256, n_layers=2,
                    input_p=0., hidden_p=0., output_p=0., wd=0., bs=64, seq_len=128, lr=5e-3, epochs=10, budget=None, schedule='flat_cos',
                    opt='torch_adam', clip=1., seed=0),
    'moliere': dict(kind='lm', corpus='moliere', level='char', arch='lstm', emb_sz=64, hidden_sz=256, n_layers=2,
                    input_p=0., hidden_p=0., output_p=0., wd=0., bs=64, seq_len=128, lr=5e-3, epochs=12, budget=None, schedule='flat_cos',
                    opt='torch_adam', clip=1., seed=0),
    'don_mendo': dict(kind='lm', corpus='don_mendo', level='word', arch='lstm', emb_sz=200, hidden_sz=200, n_layers=1,
                      input_p=0.5, hidden_p=0.5, output_p=0.5, wd=0.1, bs=16, seq_len=32, lr=5e-3, epochs=30, budget=None, schedule='one_cycle',
                      opt='torch_adam', clip=0.5, seed=0, tie_weights=True, min_freq=2, lower=True, keep_best=True),
    'imdb': dict(kind='clf', data='imdb', size='full', arch='gru', bidirectional=True, emb_sz=100, hidden_sz=128,
                 pool='concat', head=(64,), act='relu', input_p=0.1, hidden_p=0.3, output_p=0.3, head_p=0.1, bs=64, max_len=800,
                 max_vocab=30000, min_freq=3, lr=1e-2, epochs=4, budget=None, wd=0.01, seed=0),
}

@torch.no_grad()
def heldout_nll(model, ids, bs=64, seq_len=128) -> float:
    """Mean cross-entropy (nats) of `model` on the 1-D id stream `ids`, cut into `bs` streams, state carried along each.

    Not `textkit.models.text_perplexity`, which reads the text as one stream (with `bs=1` this is the same computation), but the cards'
    held-out figures are read as `bs` streams, as validation reads them (each stream starts with no state and the last
    `(len(ids)-1) % bs` tokens are left out), and differ from the one-stream figure (shipped models: quijote 3.6026 vs
    3.5953, don_mendo 13.638 vs 13.454). The cards' fixed-slice figures are `text_perplexity`'s (`slice_metric`)."""
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
                       input_p=r['input_p'], hidden_p=r['hidden_p'], output_p=r['output_p'], tie_weights=r.get('tie_weights', False), wd=r['wd'],
                       opt_func=torch_adam if r['opt'] == 'torch_adam' else Adam)
    cbs = [TimeBudget(r['budget'])] if r['budget'] else []
    if r.get('keep_best'): cbs.append(SaveModelCallback(monitor='perplexity', comp=np.less, fname=f'_pretrain_{name}',
                                                         with_opt=False))
    c0, w0 = time.process_time(), time.perf_counter()
    with learn.no_bar(): getattr(learn, SCHEDULES[r['schedule']])(r['epochs'], r['lr'], cbs=cbs)
    cpu, wall = time.process_time()-c0, time.perf_counter()-w0
    torch.save(learn.model.state_dict(), Path(ROOT/'_train')/f'{name}_weights_only.pt') if (ROOT/'_train').is_dir() else None  # a first copy, whatever follows
    train_ids, valid_ids = (torch.as_tensor(dl.dataset[0][0]).long() for dl in (dls.train, dls.valid))  # the id streams
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
    model_kw = {k: r[k] for k in ('bidirectional', 'emb_sz', 'hidden_sz', 'pool', 'head', 'act', 'input_p', 'hidden_p', 'output_p', 'head_p')}
    learn = classifier_learner(dls, r['arch'], wd=r['wd'], **model_kw)
    c0, w0 = time.process_time(), time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(r['epochs'], r['lr'], cbs=[SkipValidation()] + ([TimeBudget(r['budget'])] if r['budget'] else []))
    cpu, wall, steps = time.process_time()-c0, time.perf_counter()-w0, learn.train_iter
    with learn.no_bar(): loss, acc = learn.validate()
    metrics = dict(accuracy=float(acc), loss=float(loss))
    info = dict(steps=steps, train_cpu_s=round(cpu, 1), train_wall_s=round(wall, 1),
                train_reviews=len(dls.train_ds), test_reviews=len(dls.valid_ds))
    return learn, metrics, info

def _with_baseline(metrics):
    "Word-level metrics with the bigram baseline as a metric and as a sentence for the card"
    b = metrics.pop('bigram_baseline')
    metrics['bigram_baseline_perplexity'] = b['perplexity']
    metrics['baseline'] = (f"interpolated bigram model on the same split and vocabulary, l*P(w|v) + (1-l)*P_add1(w) with "
                           f"l={b['lam']:g} chosen on the held-out text itself (which favours the baseline): held-out perplexity "
                           f"{b['perplexity']:.2f} (add-one unigram: {b['unigram_perplexity']:.2f})")
    return metrics

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
                    **{k: r[k] for k in ('bidirectional', 'emb_sz', 'hidden_sz', 'pool', 'head', 'act', 'input_p', 'hidden_p', 'output_p', 'head_p')})
    (raw_dir/'meta.json').write_text(json.dumps(dict(name=name, recipe=r, model=mcfg, vocab=vocab, extra=extra,
                                                     metrics=metrics, info=info, command=command), ensure_ascii=False, indent=1, default=str),
                                     encoding='utf-8')

SLICES = {'quijote': dict(kind='corpus_tail', corpus='quijote', chars=20_000),
          'moliere': dict(kind='corpus_tail', corpus='moliere', chars=20_000),
          'don_mendo': dict(kind='corpus_tail', corpus='don_mendo', chars=10_000),
          'imdb': dict(kind='imdb_test_every', every=125)}
TITLES = {'quijote': 'Quijote character LSTM', 'moliere': 'Molière character LSTM', 'don_mendo': 'Don Mendo word LSTM',
          'imdb': 'IMDB sentiment classifier (bidirectional GRU)'}

def _slice_text(name, sl):
    if sl['kind'] == 'corpus_tail':
        return (f"perplexity on the last {sl['chars']:,} characters of the corpus (inside the held-out 10%), read as one "
                f"stream with the state carried (`textkit.models.slice_metric`)")
    return (f"accuracy on every {sl['every']}th review of the official test split ({25_000//sl['every']} reviews, whole "
            f"reviews, `textkit.models.slice_metric`)")

def processor() -> str:
    "The processor's model name (what `lscpu` prints), for the card"
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): import platform; return platform.processor() or 'unknown processor'

def save_pretrained(learn, name, r, metrics, info, command, out=None):
    "Save `learn` as pretrained model `name`: half precision if the slice metric moves by less than 0.5%, with its card"
    import tempfile
    from textkit.models import save_model, load_model, slice_metric, PRETRAINED
    out = Path(out or ROOT/'textkit'/'pretrained'/name)
    sl = dict(SLICES[name])
    data = r['corpus'] if r['kind'] == 'lm' else 'imdb'
    m32 = slice_metric(learn, sl)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(learn, Path(tmp)/'m', data=data, dtype='float16')
        m16 = slice_metric(load_model(Path(tmp)/'m'), sl)
    rel = abs(m16 - m32)/abs(m32)
    dtype = 'float16' if rel < 0.005 else 'float32'
    sl.update(metric='perplexity' if r['kind'] == 'lm' else 'accuracy', value=m16 if dtype == 'float16' else m32,
              description=_slice_text(name, sl))
    if r['kind'] == 'lm':
        split = (f"the last 10% of the {r['level']} tokens held out ({info['heldout_tokens']:,} tokens; "
                 f"{info['train_tokens']:,} for training)")
        held = (f"held-out metrics over all the held-out tokens, cut into {min(64, r['bs'])} streams with the state carried "
                f"along each")
    else:
        split = f"official IMDB split: {info['train_reviews']:,} training reviews, {info['test_reviews']:,} test reviews"
        held = f"accuracy on all {info['test_reviews']:,} test reviews (first {r['max_len']} tokens of each)"
    card = dict(title=TITLES[name], summary=PRETRAINED[name][0].upper() + PRETRAINED[name][1:] + '; ' + held + '.', split=split,
                training=', '.join(f"{k}={v}" for k, v in r.items() if k != 'kind'),
                cpu=f"{info['train_cpu_s']:.0f} CPU s of training ({info['steps']:,} steps, one torch thread, {processor()})",
                storage=f"{dtype} (slice metric {m32:.4f} in float32, {m16:.4f} from float16 storage)",
                slice=sl, **({'baseline': metrics['baseline']} if 'baseline' in metrics else {}))
    save_model(learn, out, data=data, metrics={k: v for k, v in metrics.items() if k != 'baseline'}, command=command,
               dtype=dtype, card=card)
    return out

def learner_from_raw(raw_dir):
    "Rebuild the Learner of a raw copy (written by `save_raw`), and its recipe, metrics, info and command"
    from safetensors.torch import load_file
    from textkit.lm import LanguageModel, lm_learner, codec_dls
    from textkit.classifier import TextClassifier, classifier_learner
    from textkit.models import classifier_dls
    from textkit.data import imdb_tokenizer
    meta = json.loads((Path(raw_dir)/'meta.json').read_text(encoding='utf-8'))
    sd, r = load_file(str(Path(raw_dir)/'model.safetensors')), meta['recipe']
    if r['kind'] == 'lm':
        dls = codec_dls(meta['vocab'], meta['extra']['level'], meta['extra']['lower'])
        learn = lm_learner(dls); learn.model = LanguageModel(**meta['model'])
        if meta['model'].get('tie_weights'): sd['decoder.weight'] = sd['encoder.weight']
    else:
        tok = imdb_tokenizer()
        dls = classifier_dls(meta['vocab'], meta['extra']['labels'], dict(level='word', lower=False, rules=[f.__name__ for f in tok.rules]))
        learn = classifier_learner(dls); learn.model = TextClassifier(**meta['model'])
    learn.model.load_state_dict(sd)
    return learn, r, meta['metrics'], meta['info'], meta['command']

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('names', nargs='+', choices=list(RECIPES), help='models to retrain, one after the other')
    p.add_argument('--out', default=None, help='model directory (one name only); default textkit/pretrained/NAME')
    p.add_argument('--raw', default=str(ROOT/'_train'), help='folder for a first raw copy of each run (weights + JSON)')
    p.add_argument('--budget', type=float, default=None, help='override the recipe budget in CPU seconds (quick checks)')
    p.add_argument('--epochs', type=int, default=None, help='override the recipe epochs (quick checks)')
    p.add_argument('--from-raw', action='store_true', help='do not train: package the raw copies already in --raw')
    p.add_argument('--resave', action='store_true', help='do not train: load the shipped model and save it again with this '
                   "textkit (e.g. after constructor arguments were renamed), keeping its card, metrics and command")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in a.names:
        if a.resave:
            from textkit.models import load_pretrained, save_model
            learn = load_pretrained(name)
            c = learn.model_config
            out = save_model(learn, a.out or ROOT/'textkit'/'pretrained'/name, data=c['data'], metrics=c['metrics'],
                             command=c['command'], dtype=c['weights']['dtype'], card=c['card'])
            print(f"== {name}: saved again to {out}", flush=True)
            continue
        if a.from_raw:
            learn, r, metrics, info, command = learner_from_raw(Path(a.raw)/name)
            if 'bigram_baseline' in metrics: metrics = _with_baseline(metrics)
            print(f"== {name}: saved to {save_pretrained(learn, name, r, metrics, info, command, a.out)}", flush=True)
            continue
        r = dict(RECIPES[name])
        if a.budget is not None: r['budget'] = a.budget
        if a.epochs is not None: r['epochs'] = a.epochs
        command = 'python tools/pretrain.py ' + name + (f' --budget {a.budget:g}' if a.budget is not None else '') + \
                  (f' --epochs {a.epochs}' if a.epochs is not None else '')
        print(f"== {name}: {r}", flush=True)
        learn, metrics, info = (train_lm_recipe if r['kind'] == 'lm' else train_clf_recipe)(name, r)
        print(f"== {name}: {metrics} {info}", flush=True)
        save_raw(learn, name, r, metrics, info, command, Path(a.raw)/name)
        if 'bigram_baseline' in metrics: metrics = _with_baseline(metrics)
        print(f"== {name}: saved to {save_pretrained(learn, name, r, metrics, info, command, a.out)}", flush=True)

if __name__ == '__main__': main()
