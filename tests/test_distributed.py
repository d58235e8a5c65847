"Multi-process training on gloo (CPU), checkpoints that resume exactly, and a kill during a save"
import json, os, re, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from fastai.callback.core import Callback, CancelFitException

from textkit.distributed import launch, Checkpoint, Resume, checkpoint_steps, latest_checkpoint, read_checkpoint
from textkit.lm import train_lm
from textkit.models import load_model, text_perplexity

torch.set_num_threads(1)
SMALL = dict(max_chars=20_000, bs=8, seq_len=32, hidden_sz=32, emb_sz=16, n_layers=1, seed=0, show_progress=False)

WORKER = '''
import json, sys, torch
from fastai.callback.core import Callback
from fastai.torch_core import num_distrib, rank_distrib
from textkit.distributed import fit_callbacks, is_main_process, end_process
from textkit.models import save_model
torch.set_num_threads(1)
task, out = sys.argv[1], sys.argv[2]

class Spy(Callback):
    "Every batch's inputs, training and validation, as this rank read them, one record per fit; the world size inside the fit"
    order = 100
    fits = []  # `Learner.validate` is a fit of its own (fastai calls `before_fit`): it gets its own record
    def before_fit(self): self.ws = torch.distributed.get_world_size(); self.fits.append({'train': [], 'valid': []})
    def after_pred(self): self.fits[-1]['train' if self.training else 'valid'].append(self.xb[0].tolist())

spy = Spy()
if task == 'lm':
    from textkit.lm import train_lm
    learn = train_lm(max_chars=20_000, bs=8, seq_len=32, hidden_sz=32, emb_sz=16, n_layers=1, seed=0, epochs=2,
                     show_progress=False, cbs=fit_callbacks() + [spy])
    final = [float(v) for v in learn.recorder.values[-1]]
else:
    from textkit.classifier import train_classifier
    learn = train_classifier('imdb_sample', 'gru', epochs=1, bs=32, emb_sz=16, hidden_sz=16, max_len=60, seed=42,
                             show_progress=False, cbs=fit_callbacks() + [spy])
    final = [float(learn.final_loss), float(learn.final_accuracy)]
if is_main_process(): save_model(learn, out + '/model')
json.dump(dict(ws=spy.ws, seen=spy.fits[0], fits=spy.fits, final=final), open(f"{out}/rank{rank_distrib()}.json", 'w'))
end_process(0)  # as the textkit commands end a launched rank
'''

def _run2(tmp_path, task):
    script = tmp_path/'worker.py'
    script.write_text(WORKER)
    res = launch([sys.executable, script, task, tmp_path], 2, threads=1, capture=True, timeout=900, env={'PYTHONFAULTHANDLER': '1'})
    if any(r for r, _ in res): pytest.fail('\n'.join(f"--- rank {i}: exit code {r}\n{o[-6000:]}" for i, (r, o) in enumerate(res)), pytrace=False)
    return [json.loads((tmp_path/f'rank{r}.json').read_text()) for r in range(2)]

@pytest.fixture(scope='module')
def lm_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('lm2')
    single = train_lm(**SMALL, epochs=2)
    return tmp, _run2(tmp, 'lm'), single

def test_lm_two_processes_world_size_and_rows(lm_runs):
    tmp, runs, single = lm_runs
    assert [r['ws'] for r in runs] == [2, 2]
    for split, dl in (('train', single.dls.train), ('valid', single.dls.valid)):
        whole = [x.tolist() for x, y in dl]
        a, b = runs[0]['seen'][split], runs[1]['seen'][split]
        n_epochs = len(a)//len(whole)  # one document: every epoch reads the same batches
        assert n_epochs == 2 and len(a) == len(b) == n_epochs*len(whole)
        # batch by batch, rank 0 reads the first half of the rows and rank 1 the second: disjoint, and together the whole split
        for i, w in enumerate(whole*n_epochs): assert a[i] + b[i] == w
        rows0 = {tuple(r) for batch in a for r in batch}; rows1 = {tuple(r) for batch in b for r in batch}
        assert not rows0 & rows1

def test_lm_metrics_over_all_ranks_and_saved_model(lm_runs):
    tmp, runs, single = lm_runs
    assert runs[0]['final'] == runs[1]['final']
    nll, ppl = runs[0]['final'][1], runs[0]['final'][3]
    # the same number of tokens as one process: held-out perplexity within 2%
    assert abs(ppl - single.recorder.values[-1][3]) <= 0.02*single.recorder.values[-1][3]
    # the model rank 0 saved loads in one process and evaluates as the distributed run reported
    learn = load_model(tmp/'model', dls=single.dls)
    with learn.no_bar(), learn.no_logging(): res = learn.validate()
    assert abs(res[0] - nll) < 1e-4 and abs(res[2] - ppl) < 1e-3*ppl

def test_classifier_two_processes(tmp_path):
    from textkit.data import imdb_dls
    runs = _run2(tmp_path, 'clf')
    assert [r['ws'] for r in runs] == [2, 2]
    assert runs[0]['final'] == runs[1]['final']
    # two fits on each rank: `fit_one_cycle`, then the final `learn.validate()` of `train_classifier`
    assert [len(r['fits']) for r in runs] == [2, 2] and not runs[0]['fits'][1]['train']
    torch.manual_seed(0)
    dls = imdb_dls('sample', bs=32, max_len=60)
    def rows(batches): return [tuple(t for t in r if t != 1) for batch in batches for r in batch]  # xxpad (1) removed
    whole = sorted(tuple(int(t) for t in x if t != 1) for x, y in dls.valid_ds)
    for fit in (0, 1):  # validation, in the epoch and in the final `validate`: every review exactly once, no padding repeats
        assert sorted(rows(runs[0]['fits'][fit]['valid']) + rows(runs[1]['fits'][fit]['valid'])) == whole
    # training: the same number of batches of 16 (= bs 32 / 2) on each rank, disjoint, together the whole split
    n_train = len(dls.train_ds)
    assert n_train % 32 == 0  # so that nothing is dropped or repeated
    b0, b1 = runs[0]['seen']['train'], runs[1]['seen']['train']
    assert len(b0) == len(b1) == n_train//32 and all(len(b) == 16 for b in b0 + b1)
    train0, train1 = rows(b0), rows(b1)
    assert sorted(train0 + train1) == sorted(tuple(int(t) for t in x if t != 1) for x, y in dls.train_ds)
    # each batch is one of SortedDL's: its reviews sorted longest first (fastai pads at the start, so count non-pad tokens)
    for b in b0 + b1:
        lens = [sum(t != 1 for t in r) for r in b]
        assert lens == sorted(lens, reverse=True)
    # shuffled: not the order of the unshuffled loader
    assert train0[:16] != rows([dls.valid.new(dls.train_ds, bs=16, shuffle=False).one_batch()[0].tolist()])
    learn = load_model(tmp_path/'model', dls=dls)
    with learn.no_bar(), learn.no_logging(): loss, acc = learn.validate()
    assert abs(acc - runs[0]['final'][1]) < 1e-6 and abs(loss - runs[0]['final'][0]) < 1e-4

@pytest.mark.parametrize('n,bs,ws,drop_last', [(11, 3, 2, False), (11, 3, 2, True), (50, 4, 3, True), (7, 4, 4, False), (3, 2, 4, False)])
def test_text_distributed_dl_deals_whole_batches(n, bs, ws, drop_last):
    "In one process (ranks stood in for): equal batch counts with padding, whole batches, every item once without padding"
    import torch.distributed as dist
    from fastai.data.load import DataLoader
    from textkit.distributed import TextDistributedDL, _free_port
    created = not dist.is_initialized()
    if created: dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{_free_port()}', rank=0, world_size=1)
    try: _check_deal(DataLoader(list(range(n)), bs=bs, drop_last=drop_last), n, bs, ws, drop_last)
    finally:
        if created: dist.destroy_process_group()

def _check_deal(dl, n, bs, ws, drop_last):
    from textkit.distributed import TextDistributedDL
    for pad in (True, False):
        ranks = [[b.tolist() for b in TextDistributedDL(dl, pad=pad, rank=r, world_size=ws)] for r in range(ws)]
        assert [len(o) for o in ranks] == [len(TextDistributedDL(dl, pad=pad, rank=r, world_size=ws)) for r in range(ws)]
        items = sorted(i for o in ranks for b in o for i in b)
        full = n//(bs*ws)*bs*ws  # whole rounds of batches: rank r reads batches r, r+ws, ...
        for r in range(ws): assert ranks[r][:full//(bs*ws)] == [list(range(k*bs, (k+1)*bs)) for k in range(r, full//bs, ws)]
        if pad: assert len({len(o) for o in ranks}) == 1  # the same number of steps on every rank
        if pad and not drop_last: assert set(items) == set(range(n)) and len(items) == -(-n//ws)*ws  # fastai's repeats only
        if not pad and not drop_last: assert items == list(range(n))  # evaluation: each item exactly once
        if drop_last: assert set(items) >= set(range(full)) and all(len(b) == bs for o in ranks for b in o)

def _cli(args, launcher=(), timeout=900):
    "Run `textkit *args` (through `launcher`, e.g. accelerate's) with one thread per process; its output"
    # PYTHONFAULTHANDLER: a rank that aborts (SIGABRT, SIGSEGV) prints the Python stack of each of its threads
    res = subprocess.run([sys.executable, *map(str, launcher), '-m', 'textkit.cli', *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONFAULTHANDLER': '1'}, timeout=timeout)
    if res.returncode: pytest.fail(f"exit code {res.returncode}\n--- stdout (end)\n{res.stdout[-2000:]}\n--- stderr (end)\n{res.stderr[-20000:]}", pytrace=False)
    return res.stdout

def test_clf_train_cli_two_processes(tmp_path):
    from textkit.data import imdb_dls
    from textkit.io import read_json
    out = tmp_path/'clf'
    stdout = _cli(['clf', 'train', '--epochs', 1, '--emb-sz', 16, '--hidden-sz', 16, '--max-len', 60, '--bs', 32, '--out', out,
                   '--processes', 2, '--checkpoint-every', 10])
    assert read_checkpoint(tmp_path/'clf.checkpoint')['world_size'] == 2  # written by a group of two
    printed = float(re.search(r'Test accuracy ([0-9.]+)', stdout).group(1))
    saved = read_json(out/'config.json')['metrics']['accuracy']
    # the saved model loads in one process and evaluates as the two processes reported
    learn = load_model(out, dls=imdb_dls('sample', bs=32, max_len=60))
    with learn.no_bar(), learn.no_logging(): loss, acc = learn.validate()
    assert abs(acc - saved) < 1e-6 and abs(acc - printed) < 1e-4

ACCELERATE = ['-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', 2, '--num_machines', 1,
              '--mixed_precision', 'no', '--dynamo_backend', 'no']

def test_accelerate_launch_lm_two_processes(tmp_path):
    "`accelerate launch --multi_gpu --num_processes 2 -m textkit.cli lm train ...` on CPUs: torchrun's two ranks join a gloo group"
    from textkit.io import read_json
    from textkit.data import char_lm_dls, get_corpus
    _cli(['lm', 'train', '--max-chars', 20_000, '--bs', 8, '--seq-len', 32, '--hidden-sz', 32, '--emb-sz', 16, '--n-layers', 1,
          '--epochs', 1, '--seed', 0, '--out', tmp_path/'lm', '--checkpoint-every', 71], launcher=ACCELERATE)
    st = read_checkpoint(tmp_path/'lm.checkpoint')
    assert st['world_size'] == 2 and st['step'] == 71  # two ranks, each its 4 rows of the 8: the 71 steps of one process
    reported = read_json(tmp_path/'lm'/'config.json')['metrics']['perplexity']
    learn = load_model(tmp_path/'lm', dls=char_lm_dls(get_corpus('quijote')[:20_000], bs=8, seq_len=32))
    with learn.no_bar(), learn.no_logging(): res = learn.validate()
    assert abs(res[2] - reported) < 1e-3*reported  # loads in one process and evaluates as the launched run reported

class StopAt(Callback):
    order = 70
    def __init__(self, k): self.k = k
    def after_batch(self):
        if self.training and self.train_iter >= self.k: raise CancelFitException

@pytest.mark.parametrize('k', [50, 71])  # mid-epoch, and an epoch's last batch
def test_resume_equals_uninterrupted(tmp_path, k):
    kw = dict(SMALL, epochs=2, input_p=0.2, output_p=0.1)
    never = train_lm(**kw)
    train_lm(**kw, cbs=[Checkpoint(tmp_path/'ck', every=k), StopAt(k)])
    st = read_checkpoint(tmp_path/'ck')
    assert st['step'] == k
    resumed = train_lm(**kw, cbs=[Resume(tmp_path/'ck')])
    a, b = never.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)

def test_kill_during_save_leaves_loadable_checkpoint(tmp_path):
    out, ck = tmp_path/'lm', tmp_path/'lm.checkpoint'
    cmd = [sys.executable, '-c', 'from textkit.cli import main; main()', 'lm', 'train', '--max-chars', '20000', '--bs', '8', '--seq-len', '32',
           '--hidden-sz', '32', '--emb-sz', '16', '--n-layers', '1', '--epochs', '50', '--seed', '0', '--out', str(out), '--checkpoint-every', '1']
    for sig in (signal.SIGTERM, signal.SIGKILL):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, 'OMP_NUM_THREADS': '1'})
        t0, during = time.monotonic(), False
        while time.monotonic() - t0 < 300 and p.poll() is None:
            if len(checkpoint_steps(ck)) and any(q.name.startswith('.step-') for q in ck.iterdir()):  # a save in progress
                during = True; break
            time.sleep(0.001)
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        p.send_signal(sig); p.wait(60)
        last = latest_checkpoint(ck)
        learn = load_model(last/'model')
        assert learn.generate('En un', 5, greedy=True).startswith('En un')
        assert read_checkpoint(ck)['step'] >= 1
        if sig == signal.SIGTERM:  # unwound cleanly: the abandoned temporary directory is gone
            assert p.returncode != 0 and not any(q.name.startswith('.step-') for q in ck.iterdir())
        assert during

class Evil:
    "Unpickling this creates the file `path`"
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (open, (self.path, 'w'))

@pytest.mark.parametrize('victim', ['model/model.safetensors', 'model/config.json', 'optimizer.safetensors',
                                    'state.safetensors', 'state.json'])
def test_resume_refuses_a_crafted_pickle(tmp_path, victim):
    "Every file of a checkpoint replaced by a crafted pickle: `Resume` and `lm train --resume` refuse it, and it never runs"
    import pickle
    from textkit.io import ModelFormatError
    train_lm(**SMALL, epochs=1, cbs=[Checkpoint(tmp_path/'ck', every=5), StopAt(5)])
    ck, marker = latest_checkpoint(tmp_path/'ck'), tmp_path/'marker'
    (ck/victim).write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(ModelFormatError, match=re.escape(Path(victim).name)):
        train_lm(**SMALL, epochs=1, cbs=[Resume(tmp_path/'ck')])
    r = subprocess.run([sys.executable, '-c', 'from textkit.cli import main; main()', 'lm', 'train', '--max-chars', '20000',
                        '--bs', '8', '--seq-len', '32', '--hidden-sz', '32', '--emb-sz', '16', '--n-layers', '1', '--epochs', '1',
                        '--out', str(tmp_path/'lm'), '--resume', str(tmp_path/'ck')],
                       capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 2 and Path(victim).name in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not marker.exists(), 'the crafted pickle ran'

def test_clf_train_bs_must_split_over_processes(capsys):
    "Reviews per step that do not split evenly over the processes: a clear error before anything starts"
    from textkit import cli
    with pytest.raises(SystemExit) as e: cli.main(['clf', 'train', '--processes', '2', '--bs', '33', '--out', 'unused'])
    assert e.value.code == 2 and 'do not split evenly over 2 processes' in capsys.readouterr().err
