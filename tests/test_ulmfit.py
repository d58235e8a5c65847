"ULMFiT bridge: encoder round trip, parameter groups, clear errors on mismatch, a tiny end-to-end run on the sample"
import json
import pytest, torch

from textkit.lm import lm_learner
from textkit.classifier import classifier_learner
from textkit.io import ModelFormatError, load_tensors
from textkit.ulmfit import imdb_splits, imdb_lm_dls, imdb_clas_dls, fine_tune_classifier

torch.set_num_threads(1)
SMALL = dict(emb_sz=8, hidden_sz=16)

@pytest.fixture(scope='module')
def sp(): return imdb_splits('sample', max_reviews=200)

@pytest.fixture(scope='module')
def lm(sp, tmp_path_factory):
    torch.manual_seed(0)
    l = lm_learner(imdb_lm_dls('sample', bs=8, seq_len=24, splits=sp), 'lstm', n_layers=1, path=tmp_path_factory.mktemp('u'), **SMALL)
    with l.no_bar(), l.no_logging(): l.fit(1, 1e-2)
    l.save_encoder('enc')
    return l

@pytest.fixture(scope='module')
def cdls(sp): return imdb_clas_dls('sample', splits=sp, max_len=100, bs=16)

def test_splits_are_disjoint(sp):
    assert not set(sp['train']) & set(sp['valid']) and not set(sp['train'] + sp['valid']) & set(sp['test'])
    dls = imdb_lm_dls('sample', bs=8, seq_len=24, splits=sp, transductive=True)
    assert len(dls.train.items) == len(sp['train']) + len(sp['test'])  # the test reviews' text, said by the option

def test_encoder_round_trip(lm, cdls):
    clf = classifier_learner(cdls, 'lstm', path=lm.path, **SMALL).load_encoder('enc')
    for n, p in lm.model.rnn.named_parameters(): assert torch.equal(getattr(clf.model.rnn, n), p), n
    assert torch.equal(clf.model.emb.weight[2:], lm.model.encoder.weight[2:])
    assert not clf.model.emb.weight[clf.model.pad_idx].any()
    t, meta = load_tensors(lm.path/'models'/'enc.safetensors')   # safetensors, vocabulary in its header
    assert json.loads(meta['vocab']) == list(lm.dls.vocab)

def test_backward_encoder_fills_the_reverse_direction(lm, sp, cdls):
    bw = lm_learner(imdb_lm_dls('sample', bs=8, seq_len=24, splits=sp, backwards=True), 'lstm', n_layers=1, path=lm.path, **SMALL)
    bw.save_encoder('bw')
    clf = classifier_learner(cdls, 'lstm', bidirectional=True, path=lm.path, **SMALL).load_encoder('enc').load_encoder('bw')
    assert torch.equal(clf.model.rnn.weight_ih_l0_reverse, bw.model.rnn.weight_ih_l0)
    assert torch.equal(clf.model.rnn.weight_ih_l0, lm.model.rnn.weight_ih_l0)
    with pytest.raises(ValueError, match='bidirectional'):
        classifier_learner(cdls, 'lstm', path=lm.path, **SMALL).load_encoder('bw')

def test_freeze_to_leaves_expected_params(cdls):
    clf = classifier_learner(cdls, 'gru', n_layers=3, bidirectional=True, **SMALL)
    groups = clf.splitter(clf.model)
    assert sum(len(g) for g in groups) == len(list(clf.model.parameters())) and len(groups) == 5
    trainable = lambda: {n for n, p in clf.model.named_parameters() if p.requires_grad}
    head = {n for n, _ in clf.model.named_parameters() if n.startswith('head.')}
    clf.freeze(); assert trainable() == head
    clf.freeze_to(-2); assert trainable() == head | {n for n, _ in clf.model.named_parameters() if '_l2' in n}
    clf.freeze_to(-4); assert trainable() == {n for n, _ in clf.model.named_parameters() if not n.startswith('emb.')}
    clf.unfreeze(); assert trainable() == {n for n, _ in clf.model.named_parameters()}

def test_mismatch_errors_name_it(lm, sp, cdls):
    before = classifier_learner(cdls, 'lstm', path=lm.path, emb_sz=8, hidden_sz=32)
    w = before.model.rnn.weight_ih_l0.clone()
    with pytest.raises(ModelFormatError, match='hidden_sz'): before.load_encoder('enc')
    assert torch.equal(before.model.rnn.weight_ih_l0, w)  # nothing copied
    with pytest.raises(ModelFormatError, match='arch'): classifier_learner(cdls, 'gru', path=lm.path, **SMALL).load_encoder('enc')
    other = imdb_clas_dls('sample', splits=imdb_splits('sample', max_reviews=200, min_freq=2), max_len=100, bs=16)
    with pytest.raises(ModelFormatError, match='vocabularies differ'):
        classifier_learner(other, 'lstm', path=lm.path, **SMALL).load_encoder('enc')
    (lm.path/'models'/'bad.safetensors').write_bytes(b'\x80\x04 not a safetensors file')
    with pytest.raises(ModelFormatError, match='pickle'): classifier_learner(cdls, 'lstm', path=lm.path, **SMALL).load_encoder('bad')

def test_tiny_end_to_end(lm, cdls):
    assert isinstance(lm.predict('This movie was', 4, temperature=0.75, seed=0), str)
    clf = classifier_learner(cdls, 'lstm', path=lm.path, **SMALL).load_encoder('enc')
    with clf.no_bar(), clf.no_logging(): fine_tune_classifier(clf, lr=1e-2, epochs=(1, 1, 1))
    assert all(p.requires_grad for p in clf.model.parameters())
    loss, acc = clf.validate(dl=imdb_clas_dls('sample', valid='test', splits=lm.dls.splits, max_len=100, bs=16).valid)
    assert 0 <= acc <= 1
    clf.save('c'); clf.load('c')
