"Data layer: Spanish round trips, leak-free LM splits, corpus cleaning, offline and corrupt files, IMDB splits."
import gzip, json, os, re, shutil
from pathlib import Path

import numpy as np, pytest, torch
from fastai.torch_core import set_seed
from hypothesis import given, settings, strategies as st
from fastai.text.data import Numericalize

import textkit.data as tkd
from textkit.data import *

DATA = Path(os.environ.get('TEXTKIT_DATA', Path(__file__).parents[2]/'shared'/'data'))

@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    "No corpus on disk and no network"
    monkeypatch.setenv('TEXTKIT_DATA', str(tmp_path/'data'))
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path/'cache'))
    def offline(url, dest=None, **kw): raise OSError(f"Network is unreachable: {url}")
    monkeypatch.setattr(tkd, '_download_url', offline)
    return tmp_path

# ---- Spanish round trips -------------------------------------------------------------------------

SPANISH = 'abcdefghijklmnñopqrstuvwxyzáéíóúüÁÉÍÓÚÜÑ ¿?¡!«»,.;:—-\n\'"()0123456789'

def roundtrip(tok, text, **num_kw):
    toks = tok(text)
    num = Numericalize(min_freq=1, **num_kw)
    num.setup([toks])
    ids = num(toks)
    return str(tok.decode(num.decode(ids)))

@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=SPANISH, min_size=1, max_size=200))
def test_char_roundtrip(text):
    assert roundtrip(char_tokenizer(), text) == text

# Words starting with 'xx' are fastai's special-token namespace: `Numericalize` never maps the literal word 'xxfake'
# (its vocabulary padding), so such words are left out of the round-trip property.
WORDS = st.text(alphabet='abcdefghijklmnñopqrstuvwxyzáéíóúü', min_size=1, max_size=10).filter(lambda w: not w.startswith('xx'))
@st.composite
def spanish_sentences(draw):
    "Normalised Spanish text: single spaces, standard punctuation spacing, ¿? ¡! « » pairs, newlines"
    out = []
    for _ in range(draw(st.integers(1, 6))):
        words = draw(st.lists(WORDS, min_size=1, max_size=8))
        words[0] = words[0].capitalize() if draw(st.booleans()) else words[0]
        s = ' '.join(words)
        if draw(st.booleans()): s = s.replace(' ', ', ', 1) if len(words) > 1 else s
        kind = draw(st.sampled_from(['.', '?', '!', '«', ';', ':']))
        s = {'?': f'¿{s}?', '!': f'¡{s}!', '«': f'«{s}».'}.get(kind, s + kind)
        out.append(s)
        out.append(draw(st.sampled_from([' ', '\n', '\n\n'])))
    return ''.join(out[:-1])

@settings(max_examples=80, deadline=None)
@given(spanish_sentences())
def test_word_roundtrip(text):
    assert roundtrip(word_tokenizer(), text) == text

@settings(max_examples=30, deadline=None)
@given(spanish_sentences())
def test_word_lower_roundtrip(text):
    assert roundtrip(word_tokenizer(lower=True), text) == text.lower()

def test_spanish_chars_survive():
    toks = word_tokenize('¡Ñandú! ¿Pingüino? «Acción» Él café', lower=True)
    assert toks == ['¡', 'ñandú', '!', '¿', 'pingüino', '?', '«', 'acción', '»', 'él', 'café']

# ---- LM DataLoaders --------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def quijote(): return get_corpus('quijote')

@pytest.mark.parametrize('valid_pct', [0.1, 0.25])
def test_char_lm_split(quijote, valid_pct):
    text = quijote[:60_000]
    dls = char_lm_dls(text, valid_pct=valid_pct, bs=8, seq_len=32)
    train, valid = dls.train.items[0], dls.valid.items[0]
    assert len(valid) == int(len(text)*valid_pct) and len(train) + len(valid) == len(text)
    # contiguous, disjoint halves of the stream: train is exactly the start, valid exactly the end
    assert dls.decode(train) == text[:dls.split] and torch.equal(valid, dls.encode(text[dls.split:]))
    # every batch row is a piece of its own stream: train batches read training text only, and vice versa
    for dl, stream in ((dls.train, train), (dls.valid, valid)):
        haystack = _ids_str(stream)
        for x, y in dl:
            for row in torch.cat([x, y[:, -1:]], 1): assert _ids_str(row) in haystack

def _ids_str(ids): return ',' + ','.join(map(str, ids.tolist())) + ','

def test_word_lm_vocab_from_train_only(quijote):
    text = quijote[:50_000] + ' zzyzxq '*20
    dls = word_lm_dls(text, valid_pct=0.05, bs=4, seq_len=16, min_freq=1)
    assert 'zzyzxq' not in dls.vocab  # only in the held-out part
    assert dls.unknown('en un lugar zzyzxq') == ['zzyzxq']

def test_lm_bad_input():
    with pytest.raises(ValueError, match='empty'): char_lm_dls('   ')
    with pytest.raises(ValueError, match='too short'): char_lm_dls('abc'*20, seq_len=64)
    with pytest.raises(ValueError, match='valid_pct'): char_lm_dls('abc'*2000, valid_pct=0)

# ---- corpora: cleaning, offline error, corrupt files ------------------------------------------------

def test_quijote_clean(quijote):
    assert quijote.startswith('El ingenioso hidalgo don Quijote de la Mancha\n')
    assert quijote.rstrip().endswith('Vale.\n\nFin')
    assert 'Project Gutenberg' not in quijote and 'GUTENBERG' not in quijote
    assert '\r' not in quijote and '\ufeff' not in quijote
    assert 'En un lugar de la Mancha, de cuyo nombre no quiero acordarme' in quijote

def test_don_mendo_clean():
    text = get_corpus('don_mendo')
    assert '\f' not in text and not re.search(r'^\s*\d+\s*$', text, re.M)
    assert text.lstrip().startswith('Pedro MUÑOZ SECA') and 'FIN DE LA CARICATURA' in text
    assert 'JORNADA PRIMERA' in text and 'JORNADA CUARTA' in text

def test_strip_gutenberg_synthetic():
    raw = '\ufeffheader\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n\r\nBody ñ.\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nlicence'
    assert clean_gutenberg(raw) == 'Body ñ.\n'

def test_offline_error(empty_env):
    with pytest.raises(CorpusNotFoundError) as e: get_corpus('quijote')
    msg = str(e.value)
    assert "'quijote'" in msg and 'TEXTKIT_DATA' in msg and 'Network is unreachable' in msg
    assert str(empty_env/'data'/'quijote.txt') in msg and str(empty_env/'cache'/'quijote.txt') in msg
    with pytest.raises(CorpusNotFoundError, match='cannot be downloaded'): get_corpus('moliere')
    with pytest.raises(CorpusNotFoundError, match="'imdb'"): get_imdb('full')

def test_download_into_cache(empty_env, monkeypatch):
    "A download lands in the cache, is verified, and is found there next time"
    calls = []
    def fake_download(url, dest=None, **kw):
        calls.append(url); shutil.copy(DATA/'don_mendo.txt', dest)
    monkeypatch.setattr(tkd, '_download_url', fake_download)
    text = get_corpus('don_mendo')
    assert 'FIN DE LA CARICATURA' in text and (empty_env/'cache'/'don_mendo.txt').exists()
    get_corpus('don_mendo')
    assert calls == ['https://www.gutenberg.org/cache/epub/49013/pg49013.txt']

def test_truncated_download_rejected(empty_env, monkeypatch):
    def short_download(url, dest=None, **kw): Path(dest).write_bytes((DATA/'quijote.txt').read_bytes()[:2_100_000])
    monkeypatch.setattr(tkd, '_download_url', short_download)
    with pytest.raises(CorruptCorpusError, match='does not end as'): get_corpus('quijote')
    assert not (empty_env/'cache'/'quijote.txt').exists()

@pytest.mark.parametrize('nbytes, match', [(10_000, 'truncated'), (2_150_000, 'does not end as')])
def test_truncated_file_rejected(empty_env, nbytes, match):
    (empty_env/'data').mkdir()
    (empty_env/'data'/'quijote.txt').write_bytes((DATA/'quijote.txt').read_bytes()[:nbytes])
    with pytest.raises(CorruptCorpusError, match=match): get_corpus('quijote')

def test_truncated_gzip_rejected(empty_env):
    d = empty_env/'data'/'imdb'; d.mkdir(parents=True)
    for f in ('train', 'test'): (d/f'{f}.csv.gz').write_bytes((DATA/'imdb'/f'{f}.csv.gz').read_bytes()[:11_000_000])
    with pytest.raises(CorruptCorpusError, match='gzip'): get_imdb('full')

def test_unknown_corpus():
    with pytest.raises(KeyError, match='quijote'): get_corpus('quixote')

# ---- IMDB --------------------------------------------------------------------------------------------

def test_imdb_sample():
    df = get_imdb('sample')
    assert list(df.columns) == ['text', 'label', 'is_valid'] and len(df) == 1000
    assert df.groupby(['is_valid', 'label']).size().to_dict() == {
        (False, 'negative'): 400, (False, 'positive'): 400, (True, 'negative'): 100, (True, 'positive'): 100}

def test_imdb_full():
    df = get_imdb('full')
    assert list(df.columns) == ['text', 'label', 'is_valid'] and len(df) == 50_000
    assert df.groupby(['is_valid', 'label']).size().to_dict() == {
        (False, 'negative'): 12_500, (False, 'positive'): 12_500, (True, 'negative'): 12_500, (True, 'positive'): 12_500}
    assert df.text.str.contains('<br />').any()
    assert df.text.iloc[12_500].startswith('Bromwell High is a cartoon comedy.')

def _entries(root): return sorted(p for p in Path(root).glob('*/*') if p.is_dir())

def test_imdb_dls_cached(tmp_path, monkeypatch):
    "The second call reads token ids back (numpy + JSON, never a pickle) and tokenizes nothing"
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::10]
    dls = imdb_dls(df=df, bs=8)
    assert len(dls.train_ds) == 80 and len(dls.valid_ds) == 20 and dls.vocab[1] == ['negative', 'positive']
    entries = _entries(tmp_path)
    assert [e.parent.name for e in entries] == ['imdb_ids', 'tokens']
    assert {f.suffix for e in entries for f in e.iterdir()} == {'.npy', '.json'}
    def no_tokenizing(*a, **k): raise AssertionError('tokenized again despite the cache')
    monkeypatch.setattr(tkd, 'fast_tokenize', no_tokenizing)
    monkeypatch.setattr(tkd, 'tokenize_df', no_tokenizing)
    dls2 = imdb_dls(df=df, bs=8)
    assert dls2.vocab == dls.vocab
    x, y = dls2.one_batch()
    assert x.shape[0] == 8 and 'xxbos' in dls2.vocab[0]
    # another vocabulary setting reuses the tokens and makes a new id entry
    imdb_dls(df=df, bs=8, min_freq=1)
    assert [e.parent.name for e in _entries(tmp_path)] == ['imdb_ids', 'imdb_ids', 'tokens']

def test_imdb_vocab_from_training_reviews_only(tmp_path, monkeypatch):
    "A word that occurs only in test reviews is not in the vocabulary: no leak from the test split"
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::10].copy()
    df.loc[df.is_valid, 'text'] += ' zorglubesque zorglubesque zorglubesque'
    dls = imdb_dls(df=df, bs=8, min_freq=1)
    assert 'zorglubesque' not in dls.vocab[0]
    tok = imdb_tokenizer()
    train_words = {w for t in df.text[~df.is_valid] for w in tok(t)}
    assert all(w in train_words or w.startswith('xx') for w in dls.vocab[0])

# ---- fast tokenization: exactly today's tokens -----------------------------------------------------

@pytest.fixture(scope='module')
def sample(): return get_imdb('sample')

@pytest.fixture(scope='module')
def reference_tokens(sample):
    "Tokens of the 1,000-review sample by fastai's `tokenize_df` with `imdb_tokenizer()`, one review at a time"
    tdf, _ = tokenize_imdb(sample, n_workers=1)
    return list(map(list, tdf.text))

@pytest.mark.parametrize('n_workers', [1, 2])
def test_fast_tokenize_identical_on_sample(sample, reference_tokens, n_workers):
    tt = fast_tokenize(sample.text, n_workers=n_workers)
    assert len(tt) == 1000 and [tt[i] for i in range(1000)] == reference_tokens
    assert tt.codes.dtype == np.int32 and tt.lengths.tolist() == [len(t) for t in reference_tokens]

TRICKY = ['', ' ', '\n\n', 'a', 'I', 'A B C', 'OK. OK!', 'HELLO world', 'Hello WORLD', 'McDonald iPhone eBay',
          'ÉCOLE Ñandú ÀB', 'sooooo goood!!!!!', 'no no no no way', 'the the theory', 'the the the, then',
          'really really really', 'a\u00a0b  c\t\td', '<br /><br />Line<br />', '&amp; &lt;3 &#39;q&#39; &quot;x&quot; &#146;',
          'a/b#c\\d', 'snake_case __init__ _x_', "rock'n'roll -x- x- -x a--b it's ’tis o’neil",
          '...', 'wait... what?', 'A.B.C. U.S.A', 'x\u0307 İstanbul ΣΑΣ', '😀😀😀 emoji 😀', '1000000 $5 3.14',
          'xxbos xxmaj XXUP', '   leading and trailing   \n', 'mixed\r\nlines\rcr', 'tab\tseparated\ttokens',
          "Don't STOP!!! Don't stop", 'WORD word WORD word WORD', 'ab ab ab ab ab ab', 'ñ ñ ñ', '- - -', '! ! !',
          'a\u2003b\x1cc\x85d\u3000e', '𠀀𠀀 x𠀀y 𠀀', "x'\u2028'y -\x85-", 'Ab\x0bAb\x0cAb ab']

def test_fast_tokenize_tricky():
    tok = imdb_tokenizer()
    tt = fast_tokenize(TRICKY, n_workers=1)
    for i, t in enumerate(TRICKY): assert tt[i] == tok(t), t
    # texts holding the batch separators fall back to the one-by-one pipeline, same tokens
    odd = ['a\x01b', 'c\x02d WORD']
    tt = fast_tokenize(odd, n_workers=1)
    assert [tt[0], tt[1]] == [tok(t) for t in odd]

def test_fast_tokenize_hash_collisions(monkeypatch):
    "Tokens (and repeated chunks) are compared by hash first: with every hash equal, the same tokens still"
    monkeypatch.setattr(tkd, '_prefix_hashes', lambda a: (np.zeros(len(a) + 1, np.uint64), np.zeros(len(a) + 1, np.uint64)))
    tok = imdb_tokenizer()
    tt = fast_tokenize(TRICKY, n_workers=1)
    for i, t in enumerate(TRICKY): assert tt[i] == tok(t), t

@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet='aAbBzZñÑ \n.,!?\'’-_/#<>&;É0123\u00a0\u2003\x1c\x02\t', max_size=40), min_size=1, max_size=6))
def test_fast_tokenize_property(texts):
    tok = imdb_tokenizer()
    tt = fast_tokenize(texts, n_workers=1)
    assert [tt[i] for i in range(len(texts))] == [tok(t) for t in texts]

def test_fast_tokenize_other_tokenizer():
    "Any other tokenizer takes fastai's path, with the same result"
    tok = word_tokenizer(lower=True)
    tt = fast_tokenize(['Él VINO', 'y se fue'], n_workers=1, tok=tok)
    assert tt[0] == ['él', 'vino'] and tt[1] == ['y', 'se', 'fue']

# ---- imdb_dls against fastai's own pipeline, batch for batch --------------------------------------

def _batches(dl):
    return [(x.clone(), y.clone()) for x, y in dl]

def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))

@pytest.mark.parametrize('kw', [dict(bs=16), dict(bs=32, max_len=60, min_freq=1), dict(bs=8, max_vocab=1000, seq_len=20)])
def test_imdb_dls_same_as_fastai(sample, tmp_path, monkeypatch, kw):
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    ref = fastai_imdb_dls(sample, n_workers=1, **kw)
    for _ in range(2):                                  # built, then from the cache
        dls = imdb_dls('sample', **kw)
        assert list(dls.vocab[0]) == list(ref.vocab[0]) and list(dls.vocab[1]) == list(ref.vocab[1])
        assert list(dls.train.res) == list(ref.train.res) and list(dls.valid.res) == list(ref.valid.res)
        for seed in (0, 42):
            set_seed(seed); a = _batches(dls.train)
            set_seed(seed); b = _batches(ref.train)
            assert _same(a, b)
        assert _same(_batches(dls.valid), _batches(ref.valid))
        x = dls.one_batch()[0]
        assert x.dtype == torch.int64 and ((x == 1).any() or 'max_len' in kw)   # padded with xxpad (1), where fastai pads
    texts = ['A GREAT film!!! I loved it.', 'xxfake zzqqx, <br />meh']
    assert torch.equal(dls.test_dl(texts).one_batch()[0], ref.test_dl(texts).one_batch()[0])

def test_classifier_learner_on_imdb_dls(tmp_path, monkeypatch):
    from textkit.classifier import classifier_learner
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    set_seed(0)
    dls = imdb_dls('sample', bs=32, max_len=40)
    learn = classifier_learner(dls, 'gru', emb_sz=8, hidden_sz=8)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    label, idx, probs = learn.predict('What a wonderful movie, I LOVED it!')
    assert label in ('negative', 'positive') and probs.shape == (2,) and dls.vocab[1][int(idx)] == label
    dl = dls.test_dl(['Awful.', 'Superb acting and a great story.', ''])
    with learn.no_bar(): preds, _ = learn.get_preds(dl=dl)
    assert preds.shape == (3, 2)
    with learn.no_bar(): preds, targs = learn.get_preds()
    assert preds.shape == (200, 2) and targs.shape == (200,)
    dls.show_batch(max_n=2, trunc_at=10, show=False)
    decoded = dls.decode_batch(dls.one_batch(), max_n=1)[0]
    assert str(decoded[0]).startswith('xxbos') and decoded[1] in ('negative', 'positive')

# ---- the cache: corrupt or stale entries are reported and rebuilt ----------------------------------

@pytest.mark.parametrize('damage', ['npy', 'meta', 'stale', 'missing'])
def test_imdb_cache_damage_rebuilt(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::20]
    dls = imdb_dls(df=df, bs=8)
    capsys.readouterr()
    entry = next((tmp_path/'imdb_ids').iterdir())
    if damage == 'npy': (entry/'ids.npy').write_bytes((entry/'ids.npy').read_bytes()[:-8] + b'\x07'*8)
    elif damage == 'meta': (entry/'meta.json').write_text('{"version": 1, "vocab": [')
    elif damage == 'missing': (entry/'ids.npy').unlink()
    else:
        m = json.loads((entry/'meta.json').read_text()); m['min_freq'] = 1
        (entry/'meta.json').write_text(json.dumps(m))
    dls2 = imdb_dls(df=df, bs=8)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'rebuilding' in err[0] and str(entry) in err[0]
    assert dls2.vocab == dls.vocab
    set_seed(0); a = _batches(dls.train)
    set_seed(0); assert _same(a, _batches(dls2.train))
    imdb_dls(df=df, bs=8)                                # rebuilt entry is good again: nothing reported
    assert capsys.readouterr().err == ''

def test_cache_key_follows_the_data(tmp_path, monkeypatch):
    "Changing one review changes the entry: a cache made from other data is never used"
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::20].copy()
    imdb_dls(df=df, bs=8)
    df.iloc[0, 0] = 'Zyxwv zyxwv zyxwv zyxwv.'
    dls = imdb_dls(df=df, bs=8, min_freq=1)
    assert 'zyxwv' in dls.vocab[0]
    assert len(list((tmp_path/'tokens').iterdir())) == 2

# ---- word-level corpora through the same cache --------------------------------------------------------

@pytest.mark.parametrize('name', ['don_mendo', 'quijote'])
def test_word_lm_cache(tmp_path, monkeypatch, name):
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    text = get_corpus(name)
    ref = word_lm_dls(text, cache=False)
    dls = word_lm_dls(text)
    assert (tmp_path/'lm_ids').exists()
    def no_tokenizing(self, items): raise AssertionError('tokenized again despite the cache')
    monkeypatch.setattr(tkd.WordTok, '__call__', no_tokenizing)
    again = word_lm_dls(text)
    monkeypatch.undo(); monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    for d in (dls, again):
        assert d.vocab == ref.vocab and d.split == ref.split and d.level == 'word'
        assert torch.equal(d.train.items[0], ref.train.items[0]) and torch.equal(d.valid.items[0], ref.valid.items[0])
    assert again.unknown('en un lugar zzyzxq') == ['zzyzxq'] and again.decode(again.encode('¿qué dices?')) == '¿qué dices?'

def test_offline_imdb_sample_message(empty_env, capsys):
    "Offline with nothing on disk: the clear message alone, the download's failure in one line, no progress bar"
    with pytest.raises(CorpusNotFoundError) as e: get_imdb('sample')
    err = e.value
    assert err.__cause__ is None and err.__suppress_context__
    msg = str(err)
    assert msg.startswith("Corpus 'imdb_sample' was not found") and 'TEXTKIT_DATA' in msg and 'point it at' in msg
    assert len([l for l in msg.splitlines() if 'Network is unreachable' in l]) == 1
    out = capsys.readouterr()
    assert out.out == '' and out.err == ''

@pytest.mark.parametrize('name', ['imdb_sample', 'imdb', 'quijote'])
def test_offline_no_stray_progress_bar(tmp_path, monkeypatch, capfd, name):
    "The real download code with the network down: no progress-bar glyph, the failure in one line of the message"
    monkeypatch.setenv('TEXTKIT_DATA', str(tmp_path/'data'))
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path/'cache'))
    def unreachable(url, dest=None, **kw): raise OSError('[Errno -2] Name or service not known')
    monkeypatch.setattr(tkd, 'urlsave', unreachable)
    with pytest.raises(CorpusNotFoundError) as e:
        get_imdb('sample') if name == 'imdb_sample' else get_imdb('full') if name == 'imdb' else get_corpus(name)
    assert e.value.__cause__ is None and 'Name or service not known' in str(e.value)
    out, err = capfd.readouterr()
    assert out == '' and err == ''

def test_fetch_imdb_from_archive(tmp_path, monkeypatch):
    "Full IMDB from fastai's archive layout: reviews in id order, negatives first, CRLF read as LF"
    import io, tarfile
    src = tmp_path/'imdb.tgz'
    files = {'imdb/train/pos/10_9.txt': 'Great.', 'imdb/train/neg/2_1.txt': 'Bad\r\nworse.', 'imdb/train/neg/10_2.txt': 'Meh.',
             'imdb/test/pos/0_8.txt': 'Fine film.', 'imdb/test/neg/1_3.txt': 'Dull.', 'imdb/unsup/0_0.txt': 'x', 'imdb/README': 'r'}
    with tarfile.open(src, 'w:gz') as tf:
        for name, text in files.items():
            data = text.encode(); info = tarfile.TarInfo(name); info.size = len(data); tf.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(tkd, '_download_url', lambda url, dest, **kw: shutil.copy(src, dest))
    tkd._fetch_imdb(tmp_path/'out')
    import pandas as pd
    train, test = pd.read_csv(tmp_path/'out'/'train.csv.gz'), pd.read_csv(tmp_path/'out'/'test.csv.gz')
    assert train.values.tolist() == [['Bad\nworse.', 'neg'], ['Meh.', 'neg'], ['Great.', 'pos']]
    assert test.values.tolist() == [['Dull.', 'neg'], ['Fine film.', 'pos']]
    assert not (tmp_path/'out'/'imdb.tgz.part').exists()

def test_download_show_progress(empty_env, monkeypatch):
    "`download_corpus(show_progress=False)` downloads without a progress bar (examples and scripts stay quiet)"
    seen = []
    def fake_download(url, dest=None, show_progress=True):
        seen.append(show_progress); shutil.copy(DATA/'don_mendo.txt', dest)
    monkeypatch.setattr(tkd, '_download_url', fake_download)
    download_corpus('don_mendo', empty_env/'dl', show_progress=False)
    download_corpus('don_mendo', empty_env/'dl2')
    assert seen == [False, True] and (empty_env/'dl'/'don_mendo.txt').exists()
