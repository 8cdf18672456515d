import numpy as np
import pandas as pd
import pytest
import torch

from mtlestimators import MMoEClassifier
from mtlestimators.tabular._fields import (
    MISSING,
    UNSEEN,
    FieldEmbedding,
    FieldEncoder,
    categorical_mask,
)


def _frame(n=120, seed=0):
    rng = np.random.RandomState(seed)
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    colour[:5] = None
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=n),
            "colour": pd.Categorical(colour),
            "city": rng.choice(["a", "b"], size=n),
            "count": rng.randint(0, 5, size=n),
        }
    )
    Y = np.column_stack(
        [frame["size"] > 0, (frame["colour"] == "red") | (frame["count"] > 2)]
    ).astype(int)
    return frame, Y


def test_from_dtype_finds_pandas_categorical_and_string_columns():
    frame, _ = _frame()
    mask = categorical_mask("from_dtype", frame, 4, list(frame.columns))
    assert mask.tolist() == [False, True, True, False]
    assert not categorical_mask("from_dtype", frame.to_numpy(), 4, None).any()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ([1, 3], [False, True, False, True]),
        (["colour"], [False, True, False, False]),
        ([False, False, True, False], [False, False, True, False]),
        (None, [False, False, False, False]),
    ],
)
def test_categorical_features_like_hist_gradient_boosting(spec, expected):
    frame, _ = _frame()
    assert categorical_mask(spec, frame, 4, list(frame.columns)).tolist() == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        (["nope"], r"unknown columns \['nope'\]"),
        ([7], "indices outside"),
        ([True, False], "needs 4 entries"),
        ("auto", "is not understood"),
    ],
)
def test_bad_categorical_features_say_what_to_fix(spec, message):
    frame, _ = _frame()
    with pytest.raises(ValueError, match=message):
        categorical_mask(spec, frame, 4, list(frame.columns))


def test_codes_reserve_unseen_and_missing_slots():
    X = np.array([["a", 1.0], ["b", 2.0], [None, 3.0]], dtype=object)
    encoder = FieldEncoder.fit(X, np.array([True, False]), ["c", "n"])
    new = np.array([["b", 2.0], ["zzz", 0.0], [np.nan, 1.0]], dtype=object)
    codes = encoder.transform(new)["categorical"][:, 0]
    assert codes[1] == UNSEEN and codes[2] == MISSING and codes[0] >= 2
    numeric = encoder.transform(X)["numeric"][:, 0]
    assert numeric.mean() == pytest.approx(0.0, abs=1e-6)


def test_infinity_in_a_numeric_field_names_the_field():
    # NaN is a missing value (its own embedding), infinity an error.
    X = np.array([["a", 1.0], ["b", np.inf]], dtype=object)
    with pytest.raises(ValueError, match="infinity in numeric field 'n'"):
        FieldEncoder.fit(X, np.array([True, False]), ["c", "n"])
    X = np.array([["a", 1.0], ["b", np.nan], ["a", 3.0]], dtype=object)
    encoder = FieldEncoder.fit(X, np.array([True, False]), ["c", "n"])
    assert encoder.means[0] == pytest.approx(2.0)
    numeric = encoder.transform(X)["numeric"][:, 0]
    assert np.isnan(numeric[1]) and numeric[0] == pytest.approx(-1.0)


def test_embedding_keeps_column_order():
    embedding = FieldEmbedding([4], n_numeric=1, embedding_dim=3, field_order=[1, 0])
    numeric = torch.tensor([[2.0]])
    out = embedding(torch.tensor([[2]]), numeric)  # (1, 2 fields, 3)
    assert out.shape == (1, 2, 3)
    expected_numeric = 2.0 * embedding.numeric_weight[0] + embedding.numeric_bias[0]
    torch.testing.assert_close(out[0, 0], expected_numeric)
    torch.testing.assert_close(out[0, 1], embedding.table.weight[2])


def test_estimator_takes_mixed_frames_and_unseen_categories_at_predict():
    frame, Y = _frame()
    clf = MMoEClassifier(max_epochs=2, verbose=0, random_state=0).fit(frame, Y)
    assert clf.is_categorical_.tolist() == [False, True, True, False]
    new = frame.head(3).copy()
    new["city"] = ["never", "seen", "before"]
    assert clf.predict_proba(new).shape == (3, 2)
    bad = frame.copy()
    bad.loc[0, "size"] = np.inf
    with pytest.raises(ValueError, match="numeric field 'size'"):
        clf.predict_proba(bad)
    missing = frame.head(3).copy()
    missing.loc[0, "size"] = np.nan  # a missing value, not an error
    assert np.isfinite(clf.predict_proba(missing)).all()


def test_unseen_and_missing_slots_start_neutral_and_unseen_stays_untouched():
    frame, Y = _frame()
    clf = MMoEClassifier(max_epochs=3, verbose=0, random_state=0).fit(frame, Y)
    table = clf.net_.module_.fields.table.weight.detach()
    offsets = clf.net_.module_.fields.offsets.tolist()
    for start in offsets:
        assert torch.all(table[start + UNSEEN] == 0)
    # "colour" has missing values in fit, so its missing row trains.
    colour = offsets[0]
    assert torch.any(table[colour + MISSING] != 0)


def test_category_codes_do_not_depend_on_row_order():
    frame, _ = _frame()
    mask = np.array([False, True, True, False])
    forward = FieldEncoder.fit(frame.to_numpy(object), mask, list(frame.columns))
    reverse = FieldEncoder.fit(frame.to_numpy(object)[::-1], mask, list(frame.columns))
    for a, b in zip(forward.vocabularies, reverse.vocabularies):
        assert a.tolist() == b.tolist()


def test_warm_start_keeps_the_fitted_codes_and_scaling():
    frame, Y = _frame()
    clf = MMoEClassifier(max_epochs=1, verbose=0, warm_start=True, random_state=0)
    clf.fit(frame, Y)
    encoder = clf.field_encoder_
    shifted = frame.iloc[::-1].copy()
    shifted["size"] = shifted["size"] + 5.0
    clf.fit(shifted, Y[::-1])
    assert clf.field_encoder_ is encoder
    assert len(clf.history_) == 2


def test_strings_in_a_numeric_array_column_name_the_fix():
    X = np.array([[1.0, "a"], [2.0, "b"], [3.0, "a"], [4.0, "b"]], dtype=object)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(
        ValueError, match=r"Numeric field 'x1' .*categorical_features=\[1\]"
    ):
        MMoEClassifier(verbose=0).fit(X, y)
    clf = MMoEClassifier(categorical_features=[1], max_epochs=1, verbose=0).fit(X, y)
    assert clf.is_categorical_.tolist() == [False, True]


def test_empty_categorical_features_and_names_without_column_names():
    X = np.random.RandomState(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    clf = MMoEClassifier(categorical_features=[], max_epochs=1, verbose=0).fit(X, y)
    assert not clf.is_categorical_.any()
    with pytest.raises(ValueError, match="X has no column names"):
        MMoEClassifier(categorical_features=["x0"], verbose=0).fit(X, y)
