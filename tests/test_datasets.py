import numpy as np
import pytest

from mtlestimators.datasets import load_adult_multitask, make_multitask_classification


def test_adult_multitask_has_two_tasks_and_no_label_leak():
    bunch = load_adult_multitask()
    assert bunch.data.shape == (32561, 13)
    assert list(bunch.target.columns) == ["income", "never_married"]
    assert "marital-status" not in bunch.data.columns
    assert "income" not in bunch.data.columns
    assert 0.2 < bunch.target["income"].mean() < 0.3
    assert 0.3 < bunch.target["never_married"].mean() < 0.35


def _agreement(p):
    agreements = []
    for seed in range(5):
        _, Y = make_multitask_classification(4000, 100, 2, p, random_state=seed)
        agreements.append((Y[:, 0] == Y[:, 1]).mean())
    return np.mean(agreements)


def test_task_correlation_controls_label_agreement():
    low, mid, high = _agreement(0.0), _agreement(0.5), _agreement(1.0)
    assert abs(low - 0.5) < 0.05
    assert low < mid < high
    assert high > 0.93


def test_weight_vectors_have_the_requested_cosine():
    X, _, y = make_multitask_classification(
        20000,
        8,
        3,
        0.7,
        noise=0.0,
        n_sinusoids=0,
        return_regression=True,
        random_state=1,
    )
    # Without sinusoids and noise, y_k = w_k . x with x ~ N(0, I): corr = cosine.
    corr = np.corrcoef(y.T)
    assert corr[0, 1] == pytest.approx(0.7, abs=0.02)
    assert corr[1, 2] == pytest.approx(0.49, abs=0.02)


def test_labels_are_balanced_and_seeded():
    X1, Y1 = make_multitask_classification(500, 10, 2, 0.5, random_state=3)
    X2, Y2 = make_multitask_classification(500, 10, 2, 0.5, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)
    assert Y1.mean(axis=0).tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task_correlation": 1.5}, "task_correlation must be in"),
        ({"n_tasks": 11}, "n_tasks must be between 1 and n_features"),
    ],
)
def test_bad_arguments_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_multitask_classification(100, 10, **kwargs)
