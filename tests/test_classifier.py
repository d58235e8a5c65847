"Sentiment classifiers: shapes, padding invariance, scratch = torch, Learner round trips, odd input (a few seconds)"
import warnings
import pytest, torch
from fastai.learner import load_learner
from fastai.interpret import ClassificationInterpretation
from fastai.text.data import pad_chunk
from fastai.torch_core import set_seed
from textkit.data import imdb_dls
from textkit.lm import ARCHS
from textkit.classifier import (TextClassifier, classifier_learner, right_pad, recurrent_layer,
                                train_classifier, POOLS)

torch.set_num_threads(1)

def pad_batch(seqs, pad_first=True, seq_len=4):
    "Pad token sequences into one batch as fastai's `pad_input_chunk` does"
    n = max(len(s) for s in seqs)
    return torch.stack([pad_chunk(s, pad_idx=1, pad_first=pad_first, seq_len=seq_len, pad_len=n) for s in seqs])

@pytest.mark.parametrize('pool', POOLS)
@pytest.mark.parametrize('bidirectional', [False, True])
@pytest.mark.parametrize('arch', ARCHS)
def test_shapes(arch, bidirectional, pool):
    m = TextClassifier(50, arch, emb_sz=6, hidden_sz=5, n_layers=2, bidirectional=bidirectional, pool=pool, head=(4, 3))
    x = torch.randint(2, 50, (3, 9))
    out, h = m.encode(m.emb(x), torch.tensor([9, 9, 9]))
    d = 2 if bidirectional else 1
    assert out.shape == (3, 9, d*5) and h.shape == (2*d, 3, 5)
    assert m.pooled(out, h, torch.tensor([9, 9, 9])).shape == (3, d*5*(3 if pool == 'concat' else 1))
    assert m(x).shape == (3, 2)

@pytest.mark.parametrize('impl', ['torch', 'scratch'])
@pytest.mark.parametrize('pool', POOLS)
@pytest.mark.parametrize('arch', ARCHS)
def test_padding_never_changes_a_prediction(arch, pool, impl):
    "A review alone = the same review padded in a batch of longer ones, pads first (fastai's default) or last"
    torch.manual_seed(0)
    m = TextClassifier(100, arch, emb_sz=8, hidden_sz=6, n_layers=2, bidirectional=True, pool=pool, impl=impl).eval()
    seqs = [torch.randint(2, 100, (n,)) for n in (3, 14, 9, 21)]
    alone = torch.cat([m(s[None]) for s in seqs])
    for pad_first in (True, False):
        torch.testing.assert_close(m(pad_batch(seqs, pad_first)), alone, atol=1e-5, rtol=0)

@pytest.mark.parametrize('arch', ARCHS)
def test_scratch_equals_torch(arch):
    "Same weights, same logits and gradients: `impl` only changes the implementation"
    torch.manual_seed(0)
    a = TextClassifier(60, arch, emb_sz=7, hidden_sz=5, bidirectional=True, pool='concat', impl='torch')
    b = TextClassifier(60, arch, emb_sz=7, hidden_sz=5, bidirectional=True, pool='concat', impl='scratch')
    b.load_state_dict(a.state_dict())
    x = pad_batch([torch.randint(2, 60, (n,)) for n in (4, 11, 7)])
    ya, yb = a(x), b(x)
    torch.testing.assert_close(yb, ya, atol=1e-5, rtol=0)
    ya.sum().backward(); yb.sum().backward()
    ga, gb = dict(a.named_parameters()), dict(b.named_parameters())
    for k in ga: torch.testing.assert_close(gb[k].grad, ga[k].grad, atol=1e-5, rtol=0, msg=k)

def test_course_default_model():
    "embedding -> RNN -> Linear(hidden, 10) -> Linear(10, 2), reading the last layer's final state"
    m = TextClassifier(1000, 'rnn')  # the default arch is 'lstm', as everywhere in textkit
    assert isinstance(m.rnn, torch.nn.RNN) and m.rnn.hidden_size == 100 and m.emb.embedding_dim == 100
    assert [p.shape for p in m.head.parameters()] == [(10, 100), (10,), (2, 10), (2,)]
    m = TextClassifier(30, 'gru', emb_sz=4, hidden_sz=3, n_layers=2, bidirectional=True).eval()
    x = torch.randint(2, 30, (2, 5))
    out, _ = m.rnn(m.emb(x))
    # forward state after the last token, backward state after the first: the two halves of the last layer's output
    want = torch.cat([out[:, -1, :3], out[:, 0, 3:]], -1)
    torch.testing.assert_close(m.pooled(*m.encode(m.emb(x), torch.tensor([5, 5])), torch.tensor([5, 5])), want)

def test_right_pad():
    x, lengths = right_pad(torch.tensor([[1, 1, 7, 8, 1], [4, 5, 6, 7, 8], [1, 1, 1, 1, 1]]))
    assert x.tolist() == [[7, 8, 1, 1, 1], [4, 5, 6, 7, 8], [1, 1, 1, 1, 1]] and lengths.tolist() == [2, 5, 0]

def test_empty_review_in_model():
    "A row of pads only (no token at all) still gets finite logits"
    m = TextClassifier(20, 'lstm', pool='concat').eval()
    assert torch.isfinite(m(torch.tensor([[1, 1, 1], [4, 5, 6]]))).all()

@pytest.mark.parametrize('bad', [dict(arch='transformer'), dict(pool='attention'), dict(act='gelu'), dict(impl='cuda')])
def test_unknown_choices_list_valid_ones(bad):
    kw = dict(dict(vocab_sz=10), **bad)
    with pytest.raises(ValueError) as e: TextClassifier(**kw)
    what, value = next(iter(bad.items()))
    assert repr(value) in str(e.value) and 'choose one of' in str(e.value)
    if what == 'arch': assert all(repr(a) in str(e.value) for a in ARCHS)

def test_recurrent_layer_is_interchangeable():
    t, s = recurrent_layer('lstm', 4, 3, 2, True), recurrent_layer('lstm', 4, 3, 2, True, impl='scratch')
    assert isinstance(t, torch.nn.LSTM) and not isinstance(s, torch.nn.LSTM)
    s.load_state_dict(t.state_dict()); t.load_state_dict(s.state_dict())

@pytest.fixture(scope='module')
def learn():
    set_seed(0)
    dls = imdb_dls('sample', bs=32, max_len=60)
    l = classifier_learner(dls, 'gru', emb_sz=16, hidden_sz=16, bidirectional=True, pool='concat')
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(1, 1e-2)
    return l

def test_learner_basics(learn):
    assert learn.dls.vocab[1] == ['negative', 'positive']
    label, idx, probs = learn.predict('A great film, I loved it.')
    assert label in ('negative', 'positive') and abs(probs.sum().item() - 1) < 1e-6
    with learn.no_bar():
        interp = ClassificationInterpretation.from_learner(learn)
        assert interp.confusion_matrix().sum() == 200
        with learn.no_logging(): learn.lr_find(show_plot=False, num_it=5)

@pytest.mark.parametrize('text', ['', 'qwzxv brrrmph zzyzzx'])
def test_predict_without_known_words(learn, text):
    "No text, or only unknown words: an answer (the model's bias), no crash"
    with learn.no_bar(): label, _, probs = learn.predict(text)
    assert label in ('negative', 'positive') and abs(probs.sum().item() - 1) < 1e-6

def test_export_round_trip(learn, tmp_path):
    "An exported, reloaded Learner gives exactly the same predictions"
    texts = ['Wonderful acting and a moving story.', 'Dull, slow and badly written.', '', 'qwzxv']
    learn.export(tmp_path/'clf.pkl')
    back = load_learner(tmp_path/'clf.pkl', cpu=True)
    with learn.no_bar(), back.no_bar():
        p1, _ = learn.get_preds(dl=learn.dls.test_dl(texts))
        p2, _ = back.get_preds(dl=back.dls.test_dl(texts))
    assert torch.equal(p1, p2)

def test_train_classifier_budget(tmp_path):
    learn = train_classifier('imdb_sample', 'rnn', epochs=50, budget=1, max_len=40, emb_sz=8, hidden_sz=8, show_progress=False)
    assert learn.epoch < 49 and 0 <= learn.final_accuracy <= 1
    with pytest.raises(ValueError, match="'imdb_sample', 'imdb'"): train_classifier('imdb_small')

@pytest.mark.parametrize('bidirectional', [False, True])
@pytest.mark.parametrize('arch', ['rnn', 'lstm', 'gru'])
def test_fused_unpacked_equals_packed(arch, bidirectional):
    "The fused layer on a padded batch, without packing, = torch.nn on a PackedSequence, outputs and final states"
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    from textkit.classifier import fused_unpacked
    torch.manual_seed(0)
    rnn = getattr(torch.nn, arch.upper())(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=True)
    x, lengths = torch.randn(4, 9, 3), torch.tensor([9, 1, 5, 3])
    out, h = fused_unpacked(rnn, x, lengths)
    p_out, p_h = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    p_out, _ = pad_packed_sequence(p_out, batch_first=True, total_length=9)
    torch.testing.assert_close(out, p_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, p_h[0] if arch == 'lstm' else p_h, atol=1e-6, rtol=0)
