"""Does the pretrained initialisation help, under `best`'s schedule? Carve only, the test reviews untouched.

    python bench/ulmfit_init.py --lm-dir DIR --init pretrained   # the encoders a `bench/imdb.py --pre-arch bigru` run saved in DIR
    python bench/ulmfit_init.py --lm-dir DIR --init scratch      # the same classifier from random weights

`bench/imdb.py --configs pretrained --pre-arch bigru`'s classifier (`best`'s bidirectional GRU with `head_bn`, on the
LM's vocabulary), on the training reviews outside the 10% carve, trained like `best`: one cycle of 4 epochs at 1e-2,
every layer unfrozen from the start, within 1,800 CPU seconds of training. Prints the carve accuracy after each epoch.
Run the two side by side, one per core."""
import argparse, sys, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from imdb import PRE_ARCHS, cpu_now
from fastai.torch_core import set_seed
from textkit.callbacks import TimeBudget
from textkit.classifier import classifier_learner
from textkit.ulmfit import imdb_splits, imdb_clas_dls

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--lm-dir', required=True, help='the directory `bench/imdb.py` printed ("language models: ...")')
    p.add_argument('--init', default='pretrained', choices=['pretrained', 'scratch'])
    p.add_argument('--lm-vocab', type=int, default=10000); p.add_argument('--max-len', type=int, default=800)
    p.add_argument('--epochs', type=int, default=4); p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--budget', type=float, default=1800); p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    sp = imdb_splits('full', valid_pct=0.1, seed=a.seed, max_vocab=a.lm_vocab)
    set_seed(a.seed)
    dls = imdb_clas_dls('full', 'split', bs=64, max_len=a.max_len, splits=sp)
    rnn, kw = PRE_ARCHS['bigru']
    clf = classifier_learner(dls, **rnn, **kw, wd=0.01, path=Path(a.lm_dir))
    if a.init == 'pretrained': clf.load_encoder('lm').load_encoder('lm_bwd', direction='backward')
    clf.unfreeze()
    c0 = cpu_now()
    with clf.no_bar(): clf.fit_one_cycle(a.epochs, a.lr, cbs=[TimeBudget(a.budget)])
    print(a.init, 'carve accuracy per epoch', [round(float(v[2]), 4) for v in clf.recorder.values], 'CPU s', round(cpu_now() - c0), flush=True)

if __name__ == '__main__': main()
