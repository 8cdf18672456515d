"""Text columns of a scenario model: a word-level tokenizer fitted on the
training text, and the fixed-width token ids the module reads.

The tokenizer is a Hugging Face ``tokenizers`` word-level model trained at
``fit`` (nothing is downloaded): NFKC normalization and lower case, then
words and runs of punctuation (the ``Whitespace`` pre-tokenizer) as tokens.
Its vocabulary holds ``[PAD]`` (id 0), ``[UNK]`` (id 1), then the most
frequent training words (ties in alphabetical order, so the same text always
gives the same vocabulary). A word outside it is ``[UNK]``; a missing text
(None, NaN, ``pandas.NA``) is an empty sequence.

The fitted tokenizer is kept as its JSON text (``Tokenizer.to_str()``): a
plain string pickles, clones and loads without running code, and is turned
back into a tokenizer only when ids are needed.

Each text column becomes ``max_tokens`` ids: the first ``max_tokens`` words,
then the pad id 0. The columns are laid side by side, so the ids are int64
``(n, n_text_columns * max_tokens)``.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ._scenario import column_position

PAD_ID = 0  # id of [PAD]: the module's embedding keeps it at zero
UNK_ID = 1  # id of [UNK]: any word not in the fitted vocabulary
SPECIAL_TOKENS = ("[PAD]", "[UNK]")
INSTALL_HINT = 'pip install "mtlestimators[text]"'


def require_tokenizers():
    """The ``tokenizers`` package, or an ImportError that says how to get it."""
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError(
            "text_columns needs the Hugging Face 'tokenizers' package, which is "
            f"not installed; install it with {INSTALL_HINT} (or pip install "
            "tokenizers), or fit without text_columns."
        ) from exc
    return tokenizers


def text_column_indices(
    text_columns, n_columns: int, feature_names, task_index: int
) -> list[int]:
    """Positions in X of the columns named in ``text_columns`` (int indices,
    negative allowed, or DataFrame column names), in the order given."""
    if isinstance(text_columns, (str, bytes)) or not isinstance(
        text_columns, (list, tuple)
    ):
        raise TypeError(
            "text_columns must be None or a list of column names or indices, "
            f"got {text_columns!r}; for one column pass a list, e.g. "
            "text_columns=['review']."
        )
    if len(text_columns) == 0:
        raise ValueError(
            "text_columns=[] names no column; pass None for a model without "
            "text, or the columns of X that hold text."
        )
    positions = []
    for column in text_columns:
        position = column_position(
            column,
            n_columns,
            feature_names,
            f"text_columns: {column!r}",
            "each column that holds text",
        )
        if position is None:
            raise TypeError(
                "text_columns must list column names (str) or indices (int), "
                f"got {column!r}."
            )
        if position == task_index:
            raise ValueError(
                f"text_columns: {column!r} is the task column (task_column); a "
                "column is either the task ids or text. Remove it from "
                "text_columns, or set task_column to the column of task ids."
            )
        if position in positions:
            raise ValueError(
                f"text_columns names column {column!r} more than once; list "
                "each text column once."
            )
        positions.append(position)
    return positions


def column_texts(values, column) -> list[str]:
    """The texts of one column as a list of str: missing values (None, NaN,
    ``pandas.NA``) become ``""``; any other non-string value is an error
    naming ``column``."""
    values = np.asarray(values, dtype=object)
    missing = np.asarray(pd.isna(values), dtype=bool)
    texts = []
    for value, absent in zip(values, missing):
        if absent:
            texts.append("")
        elif isinstance(value, str):
            texts.append(str(value))
        else:
            raise ValueError(
                f"Text column {column!r} of X holds a value that is not a string "
                f"({value!r}, a {type(value).__name__}); text columns hold "
                "str (None or NaN for a missing text). Convert the column "
                "(e.g. X[col].astype('string')) or leave it out of text_columns."
            )
    return texts


def fit_tokenizer(texts, vocab_size: int, min_frequency: int) -> str:
    """Train a word-level tokenizer on ``texts`` (an iterable of str) and
    return it as JSON text. ``vocab_size`` counts the two special tokens;
    words seen fewer than ``min_frequency`` times are left out."""
    tokenizers = require_tokenizers()
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    texts = list(texts)
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    vocab = tokenizer.get_vocab()
    assert vocab["[PAD]"] == PAD_ID and vocab["[UNK]"] == UNK_ID
    return tokenizer.to_str()


@functools.lru_cache(maxsize=8)
def load_tokenizer(tokenizer_json: str):
    """The tokenizer of a JSON text from :func:`fit_tokenizer` (cached: a
    fitted model encodes with the same object at every predict)."""
    return require_tokenizers().Tokenizer.from_str(tokenizer_json)


def vocabulary_size(tokenizer_json: str) -> int:
    """Number of ids of a fitted tokenizer, the special tokens included."""
    return load_tokenizer(tokenizer_json).get_vocab_size()


def encode_texts(tokenizer_json: str, texts, max_tokens: int) -> np.ndarray:
    """int64 (n, max_tokens): the first ``max_tokens`` ids of each text,
    padded with ``PAD_ID``."""
    out = np.full((len(texts), max_tokens), PAD_ID, dtype=np.int64)
    if not len(texts):
        return out
    tokenizer = load_tokenizer(tokenizer_json)
    for row, encoding in enumerate(tokenizer.encode_batch(list(texts))):
        ids = encoding.ids[:max_tokens]
        out[row, : len(ids)] = ids
    return out


def encode_columns(tokenizer_json: str, columns, max_tokens: int) -> np.ndarray:
    """int64 (n, len(columns) * max_tokens): each column's ids side by side
    (``columns`` a list of lists of str, one per text column)."""
    return np.concatenate(
        [encode_texts(tokenizer_json, texts, max_tokens) for texts in columns], axis=1
    )
