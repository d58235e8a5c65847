"Language models: stateful training, generation, save/load, torch vs scratch (tiny models, a few seconds)"
import json, math, os
import pytest, torch
from fastai.torch_core import set_seed
from textkit.data import char_lm_dls, word_lm_dls, get_corpus
from textkit.io import ModelFormatError
from textkit.models import save_model, load_model
from textkit.lm import (LanguageModel, lm_learner, save_lm, load_lm, train_lm, rnn_class,
                        unigram_perplexity, lm_loss_weights, UnknownTokensError, TimeBudget)

torch.set_num_threads(1)
ARCHS = ['rnn', 'lstm', 'gru']
try:
    import textkit.cells  # noqa: F401
    IMPLS = ['torch', 'scratch']
except ImportError: IMPLS = ['torch']

@pytest.fixture(scope='module')
def quijote(): return get_corpus('quijote')

@pytest.fixture(scope='module')
def learn(quijote):
    dls = char_lm_dls(quijote[:40_000], bs=16, seq_len=32)
    set_seed(0)
    l = lm_learner(dls, 'lstm', emb_sz=16, hidden_sz=32, n_layers=2)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(1, 1e-2)
    return l

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('arch', ARCHS)
def test_stateful_equals_unrolled(arch, impl):
    "Two consecutive batches of length L with carried, detached state = one batch of 2L"
    torch.manual_seed(0)
    m = LanguageModel(30, arch, emb_sz=8, hidden_sz=12, n_layers=2, impl=impl).eval()
    x = torch.randint(0, 30, (4, 24))
    whole = m(x); m.reset()
    halves = torch.cat([m(x[:, :12]), m(x[:, 12:])], 1)
    torch.testing.assert_close(halves, whole, atol=1e-6, rtol=0)

def test_state_detached_and_gradients_truncated():
    m = LanguageModel(30, 'gru', emb_sz=8, hidden_sz=12, n_layers=1)
    x = torch.randint(0, 30, (2, 6))
    m(x)
    assert not m.hidden.requires_grad
    m(x).sum().backward()  # would fail ("backward through the graph a second time") if the state were not detached

def test_stateful_training_equals_unrolled_training():
    "The gradient of a batch after a carried state matches the gradient of the second half of the unrolled stream"
    torch.manual_seed(0)
    m = LanguageModel(30, 'lstm', emb_sz=8, hidden_sz=12, n_layers=1).eval()
    x = torch.randint(0, 30, (3, 20))
    m(x[:, :10]); out2 = m(x[:, 10:])
    m.reset()
    full = m(x)
    torch.testing.assert_close(out2, full[:, 10:], atol=1e-6, rtol=0)

def test_reset_clears_state():
    m = LanguageModel(30, 'lstm', emb_sz=8, hidden_sz=12).eval()
    x = torch.randint(0, 30, (2, 5))
    first = m(x); second = m(x)
    assert not torch.allclose(first, second)
    m.reset()
    assert m.hidden is None
    torch.testing.assert_close(m(x), first)

def test_batch_size_change_resets():
    m = LanguageModel(30, 'rnn', emb_sz=8, hidden_sz=12).eval()
    m(torch.randint(0, 30, (4, 5)))
    assert m(torch.randint(0, 30, (1, 5))).shape == (1, 5, 30)

def test_bad_args():
    with pytest.raises(ValueError, match='Unknown arch'): rnn_class('transformer')
    with pytest.raises(ValueError, match='Unknown impl'): rnn_class('lstm', 'cuda')
    with pytest.raises(ValueError, match='tie_weights'): LanguageModel(10, input='one_hot', tie_weights=True)

@pytest.mark.parametrize('emb_sz', [12, 8])
def test_tie_weights(emb_sz):
    m = LanguageModel(30, 'lstm', emb_sz=emb_sz, hidden_sz=12, tie_weights=True)
    assert m.decoder.weight is m.encoder.weight
    assert m(torch.randint(0, 30, (2, 5))).shape == (2, 5, 30)

def test_one_hot_input():
    m = LanguageModel(30, 'rnn', hidden_sz=12, input='one_hot')
    assert m.encoder is None and m.rnn.input_size == 30
    assert m(torch.randint(0, 30, (2, 5))).shape == (2, 5, 30)

@pytest.mark.skipif('scratch' not in IMPLS, reason='textkit.cells not available')
@pytest.mark.parametrize('arch', ARCHS)
def test_torch_vs_scratch_same_weights(arch):
    torch.manual_seed(0)
    a = LanguageModel(30, arch, emb_sz=8, hidden_sz=12, n_layers=2, impl='torch').eval()
    b = LanguageModel(30, arch, emb_sz=8, hidden_sz=12, n_layers=2, impl='scratch').eval()
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 30, (3, 16))
    torch.testing.assert_close(b(x), a(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b(x), a(x), atol=1e-5, rtol=1e-5)  # and with the carried state

def test_learner_metrics(learn):
    names = learn.recorder.metric_names[1:-1]
    assert names == ['train_loss', 'valid_loss', 'accuracy', 'perplexity', 'bits_per_char']
    valid_loss, _, ppl, bpc = learn.recorder.values[-1][1:]
    assert math.isclose(bpc, math.log2(ppl), rel_tol=1e-6)
    assert ppl < unigram_perplexity(learn.dls)

def test_weighted_loss_keeps_unweighted_perplexity(quijote):
    dls = word_lm_dls(get_corpus('don_mendo'), bs=8, seq_len=16)
    w = lm_loss_weights(dls, 'inverse_freq')
    assert w.shape == (len(dls.vocab),) and w[dls.vocab.index(',')] < w[dls.vocab.index('acero')]
    l = lm_learner(dls, 'gru', loss_weights='inverse_freq', emb_sz=8, hidden_sz=16, n_layers=1)
    loss, acc, ppl = l.validate()
    assert not math.isclose(math.exp(loss), ppl, rel_tol=1e-3)  # the metric is unweighted, the loss is not
    with pytest.raises(ValueError, match='loss weights'): lm_learner(dls, loss_weights='tfidf')

def test_generation_length_and_seed(learn):
    a = learn.generate('En un lugar', n=50, seed=7)
    assert a.startswith('En un lugar') and len(a) == len('En un lugar') + 50
    assert a == learn.predict('En un lugar', n_words=50, seed=7)
    assert a != learn.generate('En un lugar', n=50, seed=8)
    assert learn.generate('En', n=30, top_k=1, seed=1) == learn.generate('En', n=30, greedy=True)

def _count_feeds(learn, **kw):
    "Calls that reach the model and positions fed: the prompt's in one `model(...)` call, then one `FusedSteps` call per step"
    from textkit.lm import FusedSteps
    fed, step = [], FusedSteps.__call__
    def counted(self, ids): fed.append(ids.numel()); return step(self, ids)
    h = learn.model.register_forward_hook(lambda m, i, o: fed.append(i[0].numel()))
    FusedSteps.__call__ = counted
    try: learn.generate(**kw)
    finally: h.remove(); FusedSteps.__call__ = step
    return len(fed), sum(fed)

def test_generation_cost_linear(learn):
    p = 'En un lugar de la Mancha'
    calls, toks = zip(*[_count_feeds(learn, prompt=p, n=n, seed=0) for n in (10, 20, 40, 80)])
    assert calls == (10, 20, 40, 80)
    assert toks == tuple(len(p) + n - 1 for n in (10, 20, 40, 80))

def test_unknown_prompt(learn):
    with pytest.raises(UnknownTokensError, match=r"\['☃', 'ж'\]") as e: learn.generate('hola ☃ y ж', n=5)
    assert e.value.tokens == ['☃', 'ж']
    assert learn.generate('hola ☃', n=5, unknown='skip', seed=0).startswith('hola ')
    assert len(learn.generate('hola ☃', n=5, unknown='unk', seed=0)) == len('hola xxunk') + 5
    with pytest.raises(ValueError, match="Unknown unknown-token policy 'ignore'"): learn.generate('hola', unknown='ignore')

def test_empty_prompt_and_zero_n(learn):
    assert learn.generate('', n=0) == ''
    assert learn.generate('Sancho', n=0) == 'Sancho'
    assert len(learn.generate('', n=25, seed=0)) == 25
    with pytest.raises(ValueError, match='n must be'): learn.generate('a', n=-1)
    with pytest.raises(ValueError, match='temperature'): learn.generate('a', n=3, temperature=0)

def test_generation_restores_model(learn):
    learn.model.train()
    learn.generate('En', n=3, seed=0)
    assert learn.model.training and learn.model.hidden is None

def test_save_load_round_trip(learn, tmp_path):
    save_model(learn, tmp_path/'m', card={'note': 'test'})
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    cfg = json.loads((tmp_path/'m'/'config.json').read_text())
    assert cfg['vocab'] == list(learn.dls.vocab) and cfg['tokenizer'] == {'level': 'char'} and cfg['card'] == {'note': 'test'}
    l2 = load_model(tmp_path/'m')
    assert l2.generate('En un lugar', n=60, seed=3) == learn.generate('En un lugar', n=60, seed=3)

def test_deprecated_aliases(learn, tmp_path):
    "`save_lm` / `load_lm` warn, name their replacement, and write and read `save_model`'s format"
    with pytest.warns(DeprecationWarning, match='save_model'): d = save_lm(learn, tmp_path/'m', corpus='quijote', note='test')
    assert not (d/'weights.pth').exists() and (d/'model.safetensors').exists()
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['data']['name'] == 'quijote' and cfg['card'] == {'note': 'test'}
    with pytest.warns(DeprecationWarning, match='load_model'): l2 = load_lm(d)
    assert l2.generate('En un lugar', n=60, seed=3) == learn.generate('En un lugar', n=60, seed=3)
    if 'scratch' in IMPLS:
        with pytest.warns(DeprecationWarning): l3 = load_lm(d, impl='scratch')
        assert type(l3.model.rnn).__module__ == 'textkit.cells'
        assert l3.generate('En', n=30, greedy=True) == learn.generate('En', n=30, greedy=True)
    l4 = load_model(d)  # the same directory, read by the new name
    assert l4.generate('En', n=30, greedy=True) == learn.generate('En', n=30, greedy=True)

def test_load_mismatched_vocab(learn, tmp_path, quijote):
    save_model(learn, tmp_path/'m')
    other = char_lm_dls(quijote[500_000:520_000], bs=8, seq_len=16)
    with pytest.raises(ModelFormatError, match='vocabulary .* differs'): load_model(tmp_path/'m', dls=other)
    cfg = json.loads((tmp_path/'m'/'config.json').read_text())
    cfg['vocab'] = cfg['vocab'][:-1]; cfg['model']['config']['vocab_sz'] -= 1
    (tmp_path/'m'/'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError): load_model(tmp_path/'m')
    with pytest.raises(ModelFormatError, match='no such model directory'): load_model(tmp_path/'nothing')

def test_train_lm_word_level_and_budget(tmp_path):
    l = train_lm('don_mendo', level='word', arch='gru', epochs=20, bs=8, seq_len=16, emb_sz=8, hidden_sz=16, n_layers=1,
                 budget=1.5, show_progress=False, out=tmp_path/'w', seed=0)
    assert len(l.recorder.values) < 20 and len(l.recorder.values[-1]) == 4  # stopped by the budget, last epoch fully logged
    assert not (tmp_path/'w'/'weights.pth').exists()
    cfg = json.loads((tmp_path/'w'/'config.json').read_text())
    assert cfg['tokenizer'] == {'level': 'word', 'lower': True} and 'perplexity' in cfg['metrics']
    assert cfg['data']['name'] == 'don_mendo' and cfg['command'].startswith("train_lm(corpus='don_mendo', level='word', arch='gru'")
    out = load_model(tmp_path/'w').generate('si desenvaino el acero vais', n=8, seed=0, unknown='unk')
    assert out.startswith('si xxunk el acero vais')
    with pytest.raises(UnknownTokensError, match='desenvaino'): load_model(tmp_path/'w').generate('si desenvaino', n=3)

@torch.no_grad()
def _plain_loop(learn, prompt, n):
    "Greedy decoding with one `model(...)` call per token at batch 1 (what `generate` did before its fast path)"
    from textkit.lm import prompt_ids, NEVER_SAMPLED
    model, dls = learn.model.eval(), learn.dls
    ids, ban = prompt_ids(dls, prompt), [i for i, t in enumerate(dls.vocab) if t in NEVER_SAMPLED]
    model.reset()
    logits, out = model(torch.tensor([ids]))[0, -1], []
    for _ in range(n):
        logits[ban] = -math.inf
        nxt = int(logits.argmax()); out.append(nxt)
        logits = model(torch.tensor([[nxt]]))[0, -1]
    model.reset()
    return dls.decode(ids + out)

@pytest.mark.parametrize('arch', ARCHS)
def test_fast_greedy_equals_plain_loop(arch, quijote):
    "The fused steps give the tokens that feeding the module one token at a time gives, over 500 characters"
    dls = char_lm_dls(quijote[:30_000], bs=16, seq_len=32)
    set_seed(1)
    l = lm_learner(dls, arch, emb_sz=16, hidden_sz=48, n_layers=2)
    with l.no_bar(), l.no_logging(): l.fit(1, 1e-2)
    assert l.generate('En un lugar', n=500, greedy=True) == _plain_loop(l, 'En un lugar', 500)

@pytest.mark.parametrize('name, prompt', [('quijote', 'En un lugar de la Mancha'), ('moliere', 'Le malade imaginaire'),
                                          ('don_mendo', 'don mendo')])
def test_fast_greedy_equals_plain_loop_shipped(name, prompt):
    "On every shipped language model, 500 greedy tokens of `generate` are those of the plain batch-1 loop"
    from textkit.models import load_pretrained
    learn = load_pretrained(name)
    assert learn.generate(prompt, n=500, greedy=True) == _plain_loop(learn, prompt, 500)

def test_n_samples(learn):
    a = learn.generate('Sancho', n=30, temperature=0.9, seed=4, n_samples=5)
    assert a == learn.generate('Sancho', n=30, temperature=0.9, seed=4, n_samples=5)
    assert len(a) == 5 and len(set(a)) == 5 and all(s.startswith('Sancho') and len(s) == 36 for s in a)
    assert learn.generate('Sancho', n=0, n_samples=3) == ['Sancho']*3
    with pytest.raises(ValueError, match='n_samples'): learn.generate('a', n=3, n_samples=0)

@pytest.mark.parametrize('tied', [False, True])
def test_adaptive_softmax_loss_and_log_probs(tied):
    "Training scores the outputs through the adaptive softmax; evaluation returns log-probabilities whose NLL is that same loss"
    from textkit.lm import AdaptiveLoss
    torch.manual_seed(0)
    m = LanguageModel(50, 'lstm', emb_sz=8, hidden_sz=32, n_layers=1, adaptive=[10, 30], tie_weights=tied)
    x, y = torch.randint(0, 50, (3, 7)), torch.randint(0, 50, (3, 7))
    loss = AdaptiveLoss(m)
    out = m(x)
    assert out.shape == (3, 7, 32)  # training: the last layer's outputs, not logits
    train_loss = loss(out, y)
    m.eval(); m.reset()
    logp = m(x)
    assert logp.shape == (3, 7, 50)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(loss(logp, y), train_loss, atol=1e-6, rtol=0)
    train_loss.backward()
    assert all(p.grad is not None for p in m.decoder.parameters())
    if not tied:
        with pytest.raises(ValueError, match='hidden_sz=12 .* 3 clusters'): LanguageModel(50, hidden_sz=12, adaptive=[10, 20, 30])
        return
    # tied: the embedding is the output layer, and a loss on rare targets alone trains those targets' embedding rows
    assert m.decoder.weight is m.encoder.weight
    m.train(); m.zero_grad(); m.reset()
    loss(m(x).detach(), torch.full_like(y, 40)).backward()  # outputs detached: only the output side reaches the embedding
    g = m.encoder.weight.grad.abs().sum(1)
    assert g[30:].gt(0).all() and g[10:30].eq(0).all()  # the target's cluster (and the head) learn, the other cluster not
    with pytest.raises(ValueError, match='cutoffs must increase'): LanguageModel(50, tie_weights=True, adaptive=[30, 10])
    with pytest.raises(ValueError, match='cutoffs must increase'): LanguageModel(50, tie_weights=True, adaptive=[10, 50])

@pytest.mark.parametrize('tied', [False, True])
def test_adaptive_learner_trains_generates_and_round_trips(quijote, tmp_path, tied):
    dls = word_lm_dls(quijote[:60_000], bs=8, seq_len=16)
    set_seed(0)
    l = lm_learner(dls, 'lstm', emb_sz=16, hidden_sz=32, n_layers=1, adaptive=[20, 200], tie_weights=tied)
    with l.no_bar(), l.no_logging(): l.fit(1, 1e-2)
    with l.no_bar(): valid_loss, ppl = l.validate()  # no accuracy: validation never builds the full logits
    assert l.model.decode_eval and ppl < unigram_perplexity(dls)
    with l.no_bar(): probs, targs = l.get_preds()  # gathering predictions builds them: probabilities over the vocabulary
    assert probs.shape[-1] == len(dls.vocab) and torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-4)
    # the cheap validation (outputs scored by the adaptive loss) and the full log-probabilities give the same perplexity
    nll = -probs.reshape(-1, probs.shape[-1]).gather(1, targs.reshape(-1, 1)).log().mean().item()
    assert math.isclose(ppl, math.exp(nll), rel_tol=1e-4)
    text = l.generate('en un lugar', n=12, seed=1)
    save_model(l, tmp_path/'a')
    l2 = load_model(tmp_path/'a')
    assert l2.model.decoder.cutoffs == l.model.decoder.cutoffs and l2.generate('en un lugar', n=12, seed=1) == text
    if tied: assert l2.model.decoder.weight is l2.model.encoder.weight
    with pytest.raises(ValueError, match='loss_weights and adaptive'): lm_learner(dls, adaptive=[20], loss_weights='inverse_freq')
