"""AutoTaskClassifier with text columns (``text_columns``): the word-level
tokenizer fitted at fit, the text tokens of facet 1, and that single-row
inference, pickling, checkpoints, warm start and export cover them."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback

from mtlestimators import AutoTaskClassifier
from mtlestimators.autotask import _text
from mtlestimators.autotask._autotask import AutoTaskModule

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
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "1"},
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


def test_importing_the_library_does_not_need_tokenizers():
    code = (
        "import sys; sys.modules['tokenizers'] = None;"
        "import numpy as np; import mtlestimators;"
        "from mtlestimators import AutoTaskClassifier;"
        "X = np.column_stack([np.arange(40.0), np.arange(40) % 2]);"
        "AutoTaskClassifier(max_epochs=1, verbose=0).fit(X, np.arange(40) % 3 > 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ------------------------------------------------------------------- data
GOOD = ["great", "tasty", "love", "excellent"]
BAD = ["awful", "stale", "bitter", "bland"]
FILLER = ["the", "coffee", "was", "very", "a", "snack", "and", "it"]


def review_data(n=800, seed=0):
    """Three scenarios; the label is in the words only (one word of a
    review is positive or negative, the rest filler); the features are
    noise."""
    rng = np.random.RandomState(seed)
    y = rng.randint(2, size=n)
    words = [
        rng.permutation([*rng.choice(FILLER, 4), rng.choice(GOOD if t else BAD)])
        for t in y
    ]
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["f0", "f1", "f2"])
    X["scenario"] = rng.choice(["ads", "hotel", "store"], size=n)
    X["review"] = [" ".join(w) for w in words]
    return X, y


FAST = dict(
    task_column="scenario",
    max_text_tokens=8,
    text_min_frequency=1,
    batch_size=32,
    max_epochs=10,
    verbose=0,
    random_state=0,
)


@pytest.fixture(scope="module")
def fitted():
    X, y = review_data()
    model = AutoTaskClassifier(text_columns=["review"], **FAST).fit(X, y)
    return model, X, y


# --------------------------------------------------------------- learning
def test_learns_from_the_words_where_the_features_cannot(fitted):
    model, _, _ = fitted
    X_test, y_test = review_data(n=400, seed=1)
    with_text = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    X, y = review_data()
    columns = ["f0", "f1", "f2", "scenario"]
    without = AutoTaskClassifier(**FAST).fit(X[columns], y)
    no_text = roc_auc_score(y_test, without.predict_proba(X_test[columns])[:, 1])
    assert with_text > 0.95, with_text
    assert no_text < 0.65, no_text  # chance: the label is only in the words


def test_text_tokens_join_facet_1_after_the_features(fitted):
    model, X, _ = fitted
    net = model.net_.module_
    assert net.n_tokens == 4 and net.n_text_tokens == 8  # 3 features + task
    inputs = {k: torch.as_tensor(v) for k, v in model._predict_inputs(X[:5]).items()}
    assert set(inputs) == {"features", "task", "text"}
    t1, t2 = net.eval().facets(**inputs)
    assert t1.shape == (5, (4 + 8) * 8)  # (d + L) * e1
    assert t2.shape == (5, net.position_embed_2.shape[1])  # facet 2: features
    assert net.text_embed_1.num_embeddings == _text.vocabulary_size(
        model.text_tokenizer_
    )
    assert torch.count_nonzero(net.text_embed_1.weight[_text.PAD_ID]) == 0


def test_padding_is_inert_in_facet_1():
    torch.manual_seed(0)
    net = AutoTaskModule(
        n_features=2, n_tasks=2, feature_embed_dim=4, block_embed_dim=8,
        text_vocab_size=10, n_text_tokens=8, dropout=0.0,
    ).eval()  # fmt: skip
    features, task = torch.randn(2, 2), torch.tensor([1, 2])
    # two text columns of 4 ids; the first column's padding sits between
    # the words of the two columns
    text = torch.tensor([[3, 4, 0, 0, 5, 6, 7, 0], [2, 0, 0, 0, 0, 0, 0, 0]])
    before = net(features, task, text)[0]
    tokens = net.feature_tokens(net.tokens(features, task), task, text)
    assert (tokens[:, 3:][text == 0] == 0).all()  # zero at the padding
    with torch.no_grad():  # padding slots' position embeddings change
        net.text_position_embed_1[[2, 3, 7]] += 5.0 * torch.randn(3, 4)
    torch.testing.assert_close(net(features, task, text)[0][0], before[0])
    with torch.no_grad():  # the same change at a word's slot is seen
        net.text_position_embed_1[[0]] += 5.0 * torch.randn(1, 4)
    assert not torch.allclose(net(features, task, text)[0][0], before[0])


def test_unknown_words_are_the_unknown_token(fitted):
    model, X, _ = fitted
    row = X.iloc[[0]].assign(review="zebra GREAT quokka")
    vocab = _text.load_tokenizer(model.text_tokenizer_).get_vocab()
    ids = model._predict_inputs(row)["text"][0]
    unk = _text.UNK_ID
    assert ids[:3].tolist() == [unk, vocab["great"], unk]
    assert np.isfinite(model.predict_proba(row)).all()


def test_missing_text_is_an_empty_text(fitted):
    model, X, _ = fitted
    rows = X.iloc[:4].copy()
    rows["review"] = pd.Series([None, np.nan, pd.NA, ""], dtype=object).to_numpy()
    proba = model.predict_proba(rows)
    assert (model._predict_inputs(rows)["text"] == _text.PAD_ID).all()
    expected = model.predict_proba(rows.assign(review=""))
    np.testing.assert_array_equal(proba, expected)


def test_training_text_may_be_missing():
    X, y = review_data(n=200)
    X["review"] = X["review"].astype("string")
    X.loc[::3, "review"] = pd.NA
    model = AutoTaskClassifier(text_columns=["review"], **{**FAST, "max_epochs": 1})
    assert model.fit(X, y).predict_proba(X).shape == (200, 2)


def test_unseen_tasks_read_the_text_too(fitted):
    model, _, _ = fitted
    X_test, y_test = review_data(n=400, seed=2)
    proba = model.predict_proba(X_test.assign(scenario="never-seen"))[:, 1]
    assert roc_auc_score(y_test, proba) > 0.9


# ----------------------------------------------------------- inference
def test_one_row_at_a_time_equals_the_batch(fitted):
    model, X, _ = fitted
    full = model.predict_proba(X.iloc[:20])
    alone = np.vstack([model.predict_proba(X.iloc[[i]]) for i in range(20)])
    np.testing.assert_allclose(alone, full, rtol=0, atol=1e-6)


def test_a_row_ignores_the_rest_of_the_batch(fitted):
    model, X, _ = fitted
    full = model.predict_proba(X.iloc[:64])
    order = np.random.RandomState(0).permutation(64)
    model.set_params(batch_size=7)
    try:
        shuffled = model.predict_proba(X.iloc[order])
    finally:
        model.set_params(batch_size=32)
    np.testing.assert_allclose(shuffled, full[order], rtol=0, atol=1e-6)


def test_several_text_columns_by_index_of_an_array():
    X, y = review_data(n=200)
    X["title"] = X["review"].str.split().str[:2].str.join(" ")
    array = X.to_numpy(dtype=object)  # f0 f1 f2 scenario review title
    params = {**FAST, "task_column": 3, "max_epochs": 2}
    model = AutoTaskClassifier(text_columns=[4, -1], **params).fit(array, y)
    assert model._predict_inputs(array[:3])["text"].shape == (3, 16)
    assert model.net_.module_.n_tokens == 4  # the text is not a feature
    alone = np.vstack([model.predict_proba(array[[i]]) for i in range(5)])
    np.testing.assert_allclose(alone, model.predict_proba(array[:5]), atol=1e-6)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_text_alone_with_no_task_encoding():
    X, y = review_data(n=200)
    model = AutoTaskClassifier(
        text_columns=["review"], task_encoding="none", **{**FAST, "max_epochs": 1}
    ).fit(X[["scenario", "review"]], y)
    assert model.net_.module_.n_tokens == 0
    assert model.predict_proba(X[["scenario", "review"]][:3]).shape == (3, 2)


# ------------------------------------------------------ model lifecycle
def test_pickle_and_clone_keep_the_tokenizer(fitted):
    model, X, _ = fitted
    assert isinstance(model.text_tokenizer_, str)  # JSON text, no live object
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    copy = clone(model)
    assert copy.get_params()["text_columns"] == ["review"]
    assert not hasattr(copy, "text_tokenizer_")


def test_a_refit_without_text_drops_the_tokenizer():
    X, y = review_data(n=100)
    model = AutoTaskClassifier(text_columns=["review"], **{**FAST, "max_epochs": 1})
    model.fit(X, y)
    columns = ["f0", "f1", "f2", "scenario"]
    model.set_params(text_columns=None).fit(X[columns], y)
    assert not hasattr(model, "text_tokenizer_")
    assert model.predict_proba(X[columns]).shape == (100, 2)


def test_warm_start_keeps_the_tokenizer():
    X, y = review_data(n=200)
    params = {**FAST, "max_epochs": 2}
    model = AutoTaskClassifier(text_columns=["review"], **params).fit(X, y)
    tokenizer = model.text_tokenizer_
    model.set_params(warm_start=True)
    new_words = X.assign(review=X["review"] + " delicious")
    model.fit(new_words, y)
    assert model.text_tokenizer_ == tokenizer  # the trained ids stay valid
    assert len(model.history_) == 4
    ids = model._predict_inputs(new_words[:1])["text"][0]
    assert ids[5] == _text.UNK_ID  # "delicious" came after the tokenizer


class Interrupt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would; skorch then ends the fit)
    at the end of epoch ``at`` while armed; counts the epochs trained."""

    armed = False
    epochs_run = 0

    def __init__(self, at=2):
        self.at = at

    def on_epoch_begin(self, net, **kwargs):
        Interrupt.epochs_run += 1

    def on_epoch_end(self, net, **kwargs):
        if Interrupt.armed and len(net.history) == self.at:
            Interrupt.armed = False
            raise KeyboardInterrupt


def test_an_interrupted_fit_resumes_from_its_checkpoint(tmp_path):
    X, y = review_data(n=200)
    params = {**FAST, "text_columns": ["review"], "max_epochs": 4}

    def model(**extra):
        return AutoTaskClassifier(callbacks=[Interrupt()], **params, **extra)

    Interrupt.armed = True
    stopped = model(checkpoint_dir=tmp_path).fit(X, y)
    assert len(stopped.history_) == 2
    Interrupt.epochs_run = 0
    resumed = model(checkpoint_dir=tmp_path).fit(X, y)  # tokenizer refitted
    assert Interrupt.epochs_run == 2  # only the remaining epochs
    reference = model().fit(X, y)
    a, b = resumed.net_.module_.state_dict(), reference.net_.module_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.text_tokenizer_ == reference.text_tokenizer_
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


@pytest.mark.cuda
def test_a_cuda_fit_reads_the_text_and_scores_rows_alone():
    X, y = review_data(n=300)
    model = AutoTaskClassifier(
        text_columns=["review"], device="cuda", **{**FAST, "max_epochs": 3}
    ).fit(X, y)
    assert model.net_.module_.text_embed_1.weight.is_cuda
    full = model.predict_proba(X.iloc[:10])
    alone = np.vstack([model.predict_proba(X.iloc[[i]]) for i in range(10)])
    np.testing.assert_allclose(alone, full, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- export
def test_onnx_graph_takes_the_text_ids_and_matches_predict_proba(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from mtlestimators.export import export_onnx, prepare_inputs

    X, y = review_data(n=300)
    X["title"] = X["review"].str.split().str[:2].str.join(" ")
    model = AutoTaskClassifier(
        text_columns=["review", "title"], **{**FAST, "max_epochs": 3}
    ).fit(X, y)
    path = export_onnx(model, tmp_path / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["features", "task", "text"]
    X_test, _ = review_data(n=50, seed=3)
    X_test["title"] = X_test["review"].str.split().str[:2].str.join(" ")
    X_test.loc[:4, "review"] = None  # a row with padding only in a column
    X_test.loc[5, "scenario"] = "never-seen"
    for rows in (slice(None), slice(3, 4)):
        inputs = prepare_inputs(model, X_test[rows])
        assert inputs["text"].dtype == np.int64 and inputs["text"].shape[1] == 16
        got = session.run(None, inputs)[0]
        expected = model.predict_proba(X_test[rows])
        assert np.abs(got - expected).max() <= 1e-5
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["mtlestimators.text_columns"] == '["review", "title"]'
    assert meta["mtlestimators.max_text_tokens"] == "8"
    assert json.loads(meta["mtlestimators.text_tokenizer"]) == model.text_tokenizer_


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "text_columns, error, match",
    [
        (["nope"], ValueError, "text_columns: 'nope' is not a column of X"),
        (["scenario"], ValueError, "'scenario' is the task column"),
        (["review", "f0"], ValueError, "Text column .f0. of X holds a value that"),
        ("review", TypeError, "text_columns must be None or a list"),
    ],
)
def test_bad_text_columns_are_named_at_fit(text_columns, error, match):
    X, y = review_data(n=50)
    model = AutoTaskClassifier(text_columns=text_columns, **FAST)
    with pytest.raises(error, match=match):
        model.fit(X, y)
    assert not hasattr(model, "net_")


def test_a_text_column_left_out_of_text_columns_is_named():
    X, y = review_data(n=50)
    with pytest.raises(ValueError, match="or name it in text_columns"):
        AutoTaskClassifier(**FAST).fit(X, y)


def test_fit_without_tokenizers_says_how_to_install_it(monkeypatch):
    X, y = review_data(n=50)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    model = AutoTaskClassifier(text_columns=["review"], **FAST)
    with pytest.raises(ImportError, match=r'pip install "mtlestimators\[text\]"'):
        model.fit(X, y)
    assert not hasattr(model, "net_")


# ------------------------------------------- settings that the fit fixes
def test_changed_text_columns_are_refused_at_predict_and_warm_start():
    X, y = review_data(n=200)
    X["title"] = X["review"].str.split().str[0]
    quick = {**FAST, "max_epochs": 1}
    model = AutoTaskClassifier(text_columns=["review", "title"], **quick).fit(X, y)
    assert model.text_columns_ == ["review", "title"]
    expected = model.predict_proba(X[:5])
    model.set_params(text_columns=["title", "review"])
    with pytest.raises(ValueError, match="fitted with text_columns=.'review', 'title'"):
        model.predict_proba(X[:5])
    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match="warm_start=True continues"):
        model.fit(X, y)
    # the refused fit left the model as it was
    model.set_params(text_columns=["review", "title"])
    np.testing.assert_array_equal(model.predict_proba(X[:5]), expected)


def test_full_attention_is_refused_with_text():
    X, y = review_data(n=100)
    with pytest.raises(ValueError, match="attention='causal'"):
        AutoTaskClassifier(text_columns=["review"], attention="full", **FAST).fit(X, y)
