"Callbacks, experiment grids and embedding plots."
from functools import partial
import matplotlib; matplotlib.use('Agg')
import numpy as np, pytest, torch
from torch import nn
from fastcore.basics import noop
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import SGD, Adam
from fastai.torch_core import set_seed

from fastai.callback.schedule import SchedCos
from textkit.callbacks import *
from textkit.experiments import run_grid, final_table, plot_grid
from textkit.viz import plot_embeddings, project, select_words

def toy_learner(cbs=None, wd=0., opt_func=SGD, lr=0.1, bs=48, drop=0.5, hidden=8, seed=0):
    set_seed(seed)
    x = torch.randint(0, 20, (64, 5)); y = (x[:, 0] >= 10).long() ^ (torch.rand(64) < 0.2).long()
    ds = list(zip(x, y))
    dls = DataLoaders.from_dsets(ds[:48], ds[48:], bs=bs, shuffle=False, device='cpu')
    model = nn.Sequential(nn.Embedding(20, hidden), nn.Flatten(), nn.LayerNorm(5*hidden), nn.Dropout(drop), nn.Linear(5*hidden, 2))
    learn = Learner(dls, model, CrossEntropyLossFlat(), opt_func=opt_func, lr=lr, wd=wd, cbs=cbs)
    learn.logger = noop
    return learn.remove_cb(ProgressCallback)

def weights_after(steps=1, **kw):
    learn = toy_learner(**kw)
    learn.fit(steps)
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()])

@pytest.mark.parametrize('opt', [SGD, partial(SGD, mom=0.9), Adam])
def test_l2_penalty_equals_fastai_l2(opt):
    wd = 0.05
    explicit = weights_after(2, cbs=L2Penalty(wd), wd=0., opt_func=opt)
    fastai_l2 = weights_after(2, wd=wd, opt_func=partial(opt, decouple_wd=False))
    torch.testing.assert_close(explicit, fastai_l2, atol=1e-6, rtol=1e-5)

def test_l2_differs_from_decoupled_with_adam():
    wd = 0.05
    explicit = weights_after(2, cbs=L2Penalty(wd), wd=0., opt_func=Adam)
    decoupled = weights_after(2, wd=wd, opt_func=partial(Adam, decouple_wd=True))
    assert (explicit - decoupled).abs().max() > 1e-4

def test_l2_penalty_in_loss():
    cb = L2Penalty(0.1)
    learn = toy_learner(cbs=cb)
    learn.fit(1)
    expected = 0.05 * sum((p**2).sum() for p in l2_params(learn.model)).item()
    assert len(cb.penalties) == 1 and cb.penalties[0] > 0
    # the penalty is computed on the weights before the step
    assert abs(cb.penalties[0] - expected) / expected < 0.05

def test_l2_exclusions():
    m = nn.ModuleDict(dict(emb=nn.Embedding(10, 4), rnn=nn.LSTM(4, 3, 2), norm=nn.LayerNorm(3), out=nn.Linear(3, 2)))
    names = {id(p): n for n, p in m.named_parameters()}
    got = [names[id(p)] for p in l2_params(m)]
    assert got == ['emb.weight', 'rnn.weight_ih_l0', 'rnn.weight_hh_l0', 'rnn.weight_ih_l1', 'rnn.weight_hh_l1', 'out.weight']
    assert 'norm.weight' in [names[id(p)] for p in l2_params(m, norms=True)]

def test_dropout_schedule_reaches_end():
    sched = DropoutSchedule(0.0, 0.6, sched=SchedCos)
    learn = toy_learner(cbs=sched, bs=4)
    learn.fit(2)
    assert sched.history[0] == pytest.approx(0.0)
    assert sched.history[-1] == pytest.approx(0.6, abs=0.01)
    assert np.all(np.diff(sched.history) >= -1e-9)
    assert learn.model[3].p == pytest.approx(0.6)

def test_dropout_schedule_on_stacked_rnn():
    m = nn.Sequential(nn.LSTM(4, 4, num_layers=2, dropout=0.1))
    assert dropout_modules(m) == [m[0]]

@pytest.mark.parametrize('curve, patience, expected', [
    ([1.0, 0.8, 0.6, 0.65, 0.7, 0.9], 1, 2),
    ([1.0, 0.8, 0.6, 0.65, 0.55, 0.9, 1.0], 2, 4),
    ([1.0, 0.8, 0.6, 0.5], 1, None),
    ([0.5, 0.6], 1, 0)])
def test_turning_epoch(curve, patience, expected):
    assert turning_epoch(curve, patience) == expected

def test_turning_epoch_higher_is_better():
    assert turning_epoch([0.45, 0.48, 0.54], comp=np.greater) is None
    assert turning_epoch([0.45, 0.48, 0.54, 0.50, 0.49], patience=2, comp=np.greater) == 2

def test_overfitting_monitor_rising_accuracy():
    "A metric where higher is better: accuracy rising 0.45 -> 0.48 -> 0.54 never stops training"
    from fastai.metrics import accuracy
    from fastai.callback.core import Callback
    class Rising(Callback):
        order = 55  # after the Recorder, before the monitor
        def after_epoch(self): self.recorder.values[-1][2] = [0.45, 0.48, 0.54, 0.55][self.epoch]
    mon = OverfittingMonitor(monitor='accuracy', patience=2, stop=True, verbose=False)
    learn = toy_learner(cbs=[Rising(), mon], opt_func=Adam, lr=0.05, bs=8)
    learn.metrics = accuracy
    learn.fit(4)
    assert list(mon.history.accuracy) == [0.45, 0.48, 0.54, 0.55] and mon.turning is None

def test_overfitting_monitor_falling_accuracy_stops():
    from fastai.metrics import accuracy
    from fastai.callback.core import Callback
    class Falling(Callback):
        order = 55
        def after_epoch(self): self.recorder.values[-1][2] = [0.6, 0.5, 0.4, 0.3, 0.2][self.epoch]
    mon = OverfittingMonitor(monitor='accuracy', patience=2, stop=True, verbose=False)
    learn = toy_learner(cbs=[Falling(), mon], opt_func=Adam, lr=0.05, bs=8)
    learn.metrics = accuracy
    learn.fit(5)
    assert mon.turning == 0 and len(mon.history) == 3

def test_overfitting_monitor_stops():
    mon = OverfittingMonitor(patience=3, stop=True, verbose=False)
    learn = toy_learner(cbs=mon, opt_func=Adam, lr=0.05, bs=8)
    learn.fit(12)
    h = mon.history
    assert mon.turning == h.valid_loss.idxmin() and len(h) == mon.turning + 4
    assert list(h.columns) == ['epoch', 'train_loss', 'valid_loss', 'gap']

def test_grid_rows():
    res = run_grid(lambda drop, hidden: toy_learner(drop=drop, hidden=hidden, bs=16), {'drop': [0., 0.5], 'hidden': [4, 8]},
                   epochs=3, lr=0.05)
    assert len(res) == 4*3
    assert list(res.columns) == ['drop', 'hidden', 'seed', 'epoch', 'train_loss', 'valid_loss', 'seconds']
    assert len(final_table(res)) == 4
    plot_grid(res)

def test_grid_seeds_reproducible():
    make = lambda drop: toy_learner(drop=drop, bs=16)
    a = run_grid(make, {'drop': [0.5]}, epochs=2, lr=0.05, seeds=(0, 1))
    b = run_grid(make, {'drop': [0.5]}, epochs=2, lr=0.05, seeds=(0, 1))
    assert len(a) == 4
    np.testing.assert_allclose(a.valid_loss, b.valid_loss)

def planted(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (4, 32))
    return np.concatenate([c + rng.normal(0, 1, (15, 32)) for c in centres]), np.repeat(np.arange(4), 15)

def _separated(xy, labels):
    cs = np.stack([xy[labels == k].mean(0) for k in np.unique(labels)])
    return (np.linalg.norm(xy[:, None] - cs[None], axis=-1).argmin(1) == labels).mean()

def test_pca_separates_planted_clusters():
    mat, labels = planted()
    fig = plot_embeddings(mat, [f'w{i}' for i in range(len(mat))], method='pca')
    assert _separated(fig.coords, labels) == 1.0

def test_tsne_reproducible():
    mat, labels = planted(1)
    a, b = project(mat, 'tsne', seed=3), project(mat, 'tsne', seed=3)
    np.testing.assert_array_equal(a, b)
    assert _separated(a, labels) == 1.0

def test_select_words_and_errors():
    vocab = ['xxunk', 'xxpad', 'xxbos', '.', ',', 'the', 'movie', '!', 'great']
    assert select_words(vocab, n=2) == [5, 6]
    assert select_words(vocab, words=['great', 'the']) == [8, 5]
    with pytest.raises(KeyError, match='awful'): select_words(vocab, words=['awful'])
    with pytest.raises(ValueError, match='method'): project(np.zeros((5, 3)), 'umap')
    model = nn.Sequential(nn.Embedding(len(vocab), 3))
    fig = plot_embeddings(model, vocab, method='pca', annotate=False)
    assert fig.words == ['the', 'movie', 'great']
