"Data layer: Spanish round trips, leak-free LM splits, corpus cleaning, offline and corrupt files, IMDB splits."
import gzip, os, re, shutil
from pathlib import Path

import pytest, torch
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
    monkeypatch.setattr(tkd, 'download_url', offline)
    monkeypatch.setattr(tkd, 'untar_data', offline)
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
    monkeypatch.setattr(tkd, 'download_url', fake_download)
    text = get_corpus('don_mendo')
    assert 'FIN DE LA CARICATURA' in text and (empty_env/'cache'/'don_mendo.txt').exists()
    get_corpus('don_mendo')
    assert calls == ['https://www.gutenberg.org/cache/epub/49013/pg49013.txt']

def test_truncated_download_rejected(empty_env, monkeypatch):
    def short_download(url, dest=None, **kw): Path(dest).write_bytes((DATA/'quijote.txt').read_bytes()[:2_100_000])
    monkeypatch.setattr(tkd, 'download_url', short_download)
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

def test_imdb_dls_cached(tmp_path, monkeypatch):
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::10]
    dls = imdb_dls(df=df, bs=8)
    assert len(dls.train_ds) == 80 and len(dls.valid_ds) == 20 and dls.vocab[1] == ['negative', 'positive']
    assert len(list((tmp_path/'tokenized').glob('*.pkl'))) == 1
    def no_tokenizing(*a, **k): raise AssertionError('tokenized again despite the cache')
    monkeypatch.setattr(tkd, 'tokenize_df', no_tokenizing)
    dls2 = imdb_dls(df=df, bs=8)
    assert dls2.vocab == dls.vocab
    x, y = dls2.one_batch()
    assert x.shape[0] == 8 and 'xxbos' in dls2.vocab[0]

def test_imdb_vocab_from_training_reviews_only(tmp_path, monkeypatch):
    "A word that occurs only in test reviews is not in the vocabulary: no leak from the test split"
    monkeypatch.setenv('TEXTKIT_CACHE', str(tmp_path))
    df = get_imdb('sample').iloc[::10].copy()
    df.loc[df.is_valid, 'text'] += ' zorglubesque zorglubesque zorglubesque'
    dls = imdb_dls(df=df, bs=8, min_freq=1)
    assert 'zorglubesque' not in dls.vocab[0]
    train_words = {w for ws in dls.train_ds.items.text for w in ws}
    assert all(w in train_words or w.startswith('xx') for w in dls.vocab[0])
