import numpy as np
import pandas as pd
import pytest
import torch

from mtlestimators import MMoEClassifier
from mtlestimators._fields import (
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


def test_nan_in_a_numeric_field_names_the_field():
    X = np.array([["a", 1.0], ["b", np.nan]], dtype=object)
    with pytest.raises(ValueError, match="NaN or infinity in numeric field 'n'"):
        FieldEncoder.fit(X, np.array([True, False]), ["c", "n"])


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
    bad.loc[0, "size"] = np.nan
    with pytest.raises(ValueError, match="numeric field 'size'"):
        clf.predict_proba(bad)
