"""AutoTaskClassifier with text columns (``text_columns``): the word-level
tokenizer fitted at fit, the text tokens of facet 1, and that single-row
inference, pickling, checkpoints, warm start and export cover them."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mtlestimators.autotask import _text

pytest.importorskip("tokenizers")

TEXTS = [
    "Great coffee, GREAT price!",
    "the coffee was stale",
    "Café au lait: great",
    "stale and bitter coffee",
]


# ----------------------------------------------------------------- tokenizer
def test_tokenizer_reserves_pad_and_unk_and_lowercases():
    tokenizer = _text.fit_tokenizer(TEXTS, vocab_size=100, min_frequency=1)
    vocab = _text.load_tokenizer(tokenizer).get_vocab()
    assert vocab["[PAD]"] == _text.PAD_ID == 0
    assert vocab["[UNK]"] == _text.UNK_ID == 1
    assert "great" in vocab and "Great" not in vocab  # lower case
    assert "café" in vocab and "," in vocab  # unicode words, punctuation
    # The most frequent words come first: "coffee" (3) and "great" (3).
    assert {vocab["coffee"], vocab["great"]} == {2, 3}


def test_unknown_words_get_the_unk_id_and_texts_are_padded():
    tokenizer = _text.fit_tokenizer(TEXTS, vocab_size=100, min_frequency=1)
    vocab = _text.load_tokenizer(tokenizer).get_vocab()
    ids = _text.encode_texts(tokenizer, ["GREAT zebra coffee", ""], max_tokens=5)
    assert ids.dtype == np.int64 and ids.shape == (2, 5)
    unk, pad = _text.UNK_ID, _text.PAD_ID
    assert ids[0].tolist() == [vocab["great"], unk, vocab["coffee"], pad, pad]
    assert ids[1].tolist() == [pad] * 5


def test_long_texts_are_truncated_to_max_tokens():
    tokenizer = _text.fit_tokenizer(TEXTS, vocab_size=100, min_frequency=1)
    ids = _text.encode_texts(tokenizer, ["coffee " * 50], max_tokens=4)
    assert ids.shape == (1, 4) and (ids != _text.PAD_ID).all()


def test_vocab_size_and_min_frequency_bound_the_vocabulary():
    tokenizer = _text.fit_tokenizer(TEXTS, vocab_size=5, min_frequency=1)
    assert _text.vocabulary_size(tokenizer) == 5  # [PAD], [UNK] and 3 words
    frequent = _text.fit_tokenizer(TEXTS, vocab_size=100, min_frequency=2)
    vocab = _text.load_tokenizer(frequent).get_vocab()
    assert set(vocab) == {"[PAD]", "[UNK]", "coffee", "great", "stale"}


def test_missing_texts_are_empty_and_other_values_are_refused():
    values = np.array(["a b", None, np.nan, pd.NA, "c"], dtype=object)
    assert _text.column_texts(values, "review") == ["a b", "", "", "", "c"]
    with pytest.raises(ValueError, match=r"Text column 'review' .* not a string"):
        _text.column_texts(np.array(["a", 3.5], dtype=object), "review")


def test_the_same_text_gives_the_same_vocabulary_in_every_process():
    # Ties in frequency are ordered by the word, not by a hash order, so a
    # fresh interpreter (another hash seed) trains the same tokenizer.
    code = (
        "from mtlestimators.autotask import _text;"
        f"print(_text.fit_tokenizer({TEXTS!r} * 3, 100, 1))"
    )
    here = _text.fit_tokenizer(TEXTS * 3, 100, 1)
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == here


def test_text_columns_are_found_by_name_or_index():
    names = ["f0", "review", "title", "task"]
    assert _text.text_column_indices(["title", "review"], 4, names, 3) == [2, 1]
    assert _text.text_column_indices([-3], 4, None, 3) == [1]


@pytest.mark.parametrize(
    "text_columns, names, error, match",
    [
        (["nope"], ["f0", "review", "task"], ValueError, "'nope' is not a column"),
        (["task"], ["f0", "review", "task"], ValueError, "is the task column"),
        ([5], None, ValueError, "5 is out of range"),
        (["review"], None, ValueError, "X has no column names"),
        (["review", "review"], ["f0", "review", "task"], ValueError, "more than once"),
        ("review", ["f0", "review", "task"], TypeError, "for one column pass a list"),
        ([], ["f0", "review", "task"], ValueError, "names no column"),
        ([1.5], None, TypeError, "column names .* or indices"),
    ],
)
def test_bad_text_columns_are_named(text_columns, names, error, match):
    with pytest.raises(error, match=match):
        _text.text_column_indices(text_columns, 3, names, 2)


def test_missing_tokenizers_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "mtlestimators\[text\]"'):
        _text.fit_tokenizer(TEXTS, 100, 1)
