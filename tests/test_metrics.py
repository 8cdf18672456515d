import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from mtlestimators import per_task_scores


def test_scores_each_task_on_its_labelled_rows():
    rng = np.random.RandomState(0)
    y = (rng.rand(50, 2) > 0.5).astype(float)
    p = np.clip(y * 0.6 + rng.rand(50, 2) * 0.4, 0.01, 0.99)
    y[:10, 1] = np.nan
    scores = per_task_scores(pd.DataFrame(y, columns=["a", "b"]), p)
    rows = ~np.isnan(y[:, 1])
    assert scores["b"]["n"] == 40
    assert scores["b"]["roc_auc"] == pytest.approx(
        roc_auc_score(y[rows, 1], p[rows, 1])
    )
    assert scores["b"]["pr_auc"] == pytest.approx(
        average_precision_score(y[rows, 1], p[rows, 1])
    )
    assert scores["a"]["log_loss"] == pytest.approx(log_loss(y[:, 0], p[:, 0]))


def test_regression_and_multiclass_tasks():
    y_reg = np.array([1.0, 2.0, np.nan, 4.5])
    scores = per_task_scores(y_reg, np.array([1.0, 3.0, 0.0, 4.5]), ["regression"])
    assert scores["task_0"]["mse"] == pytest.approx(1.0 / 3.0)
    y_cls = np.array(["x", "y", "z", "y"])
    proba = np.array(
        [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]]
    )
    scores = per_task_scores(y_cls, proba)
    assert scores["task_0"]["accuracy"] == pytest.approx(0.75)


def test_single_binary_task_accepts_predict_proba_output():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    assert per_task_scores(y, proba)["task_0"]["roc_auc"] == 1.0


def test_a_split_with_one_class_scores_with_nan_auc():
    scores = per_task_scores(np.array([0, 0, 0]), np.array([0.1, 0.4, 0.2]))
    assert np.isnan(scores["task_0"]["roc_auc"])
    assert scores["task_0"]["accuracy"] == 1.0


def test_classes_argument_maps_scores_when_a_class_is_absent():
    y = np.array(["b", "c", "b"])
    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    with pytest.raises(ValueError, match="pass the model's classes_ as classes="):
        per_task_scores(y, [proba], ["multiclass"])
    scores = per_task_scores(
        y, [proba], ["multiclass"], classes=[np.array(["a", "b", "c"])]
    )
    assert scores["task_0"]["accuracy"] == 1.0
