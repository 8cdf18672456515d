import numpy as np
import pandas as pd
import pytest

from mtlestimators._core.targets import (
    drop_unlabelled_rows,
    encode_targets,
    resolve_tasks,
)


def _y():
    return np.array(
        [[0, "a", 1.5], [1, "b", 2.25], [np.nan, "c", np.nan], [1, None, 0.1]],
        dtype=object,
    )


def test_kinds_are_inferred_per_column():
    specs = resolve_tasks(_y(), ["b", "m", "r"])
    assert [s.kind for s in specs] == ["binary", "multiclass", "regression"]
    assert list(specs[1].classes) == ["a", "b", "c"]
    assert [s.output_dim for s in specs] == [1, 3, 1]


def test_given_kinds_override_inference():
    y = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert resolve_tasks(y, ["t"], {"t": "regression"})[0].kind == "regression"
    assert resolve_tasks(y, ["t"])[0].kind == "multiclass"


def test_unknown_kind_and_unknown_column_are_named():
    y = np.array([[0.0], [1.0]])
    with pytest.raises(ValueError, match="kind 'ordinal'"):
        resolve_tasks(y, ["t"], {"t": "ordinal"})
    with pytest.raises(ValueError, match=r"\['other'\] that are not in y"):
        resolve_tasks(y, ["t"], {"other": "binary"})


def test_a_task_without_any_label_is_an_error_naming_it():
    y = np.array([[0.0, np.nan], [1.0, np.nan]])
    with pytest.raises(ValueError, match="Task 'clicks' .* has no label at all"):
        resolve_tasks(y, ["ctr", "clicks"])


def test_rows_without_any_label_are_dropped_with_a_warning():
    y = np.array([[0.0, np.nan], [np.nan, np.nan], [1.0, 1.0]])
    with pytest.warns(UserWarning, match="Dropped 1 of 3 rows"):
        keep = drop_unlabelled_rows(y)
    assert keep.tolist() == [0, 2]


def test_encoding_keeps_missing_as_nan():
    y = _y()
    specs = resolve_tasks(y, ["b", "m", "r"])
    encoded = encode_targets(y, specs)
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded[:, 1], [0, 1, 2, np.nan])
    assert np.isnan(encoded[2, 0]) and np.isnan(encoded[2, 2])
    np.testing.assert_allclose(encoded[:, 2], [1.5, 2.25, np.nan, 0.1], rtol=1e-6)


def test_mixed_label_types_are_refused():
    y = np.array([[1], ["a"], [2]], dtype=object)
    with pytest.raises(ValueError, match="mixes label types|Mix"):
        resolve_tasks(y, ["t"])


def test_pandas_nullable_missing_values_count_as_missing():
    y = pd.DataFrame({"t": pd.array([1, None, 0], dtype="Int64")}).to_numpy(object)
    specs = resolve_tasks(y, ["t"])
    assert specs[0].kind == "binary"
