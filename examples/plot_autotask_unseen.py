"""
AutoTask: scenarios never seen in training, and per-task calibration
====================================================================

:class:`~mtlestimators.AutoTaskClassifier` is one model for many scenarios
(tasks): each row carries a task id, and an id the model never saw goes
through the "unseen task" path (task code 0: no task information). This example uses the Adult data split
by occupation (:func:`~mtlestimators.datasets.load_adult_scenarios`: the
occupation is the scenario, income > 50K the label, two occupations held out
of training), compares AutoTask with the general branch of the paper's
baseline :class:`~mtlestimators.MultiTaskDNNClassifier` on seen and unseen
occupations, and then calibrates AutoTask's probabilities with one map per
task (:class:`~mtlestimators.PerTaskCalibratedClassifier`).

Settings are small (5,000 training rows, 3 epochs);
``benchmarks/autotask_tables.py`` runs the paper's tables
(:doc:`/results/autotask`).
"""

# %%
# The data: features, then a column of task ids
# ---------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss, roc_auc_score

from mtlestimators import (
    AutoTaskClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
)
from mtlestimators.datasets import load_adult_scenarios

data = load_adult_scenarios()
rows = np.random.RandomState(0).permutation(len(data.X_train))
fit_rows, calibration_rows = rows[:5000], rows[5000:8000]
X_fit, y_fit = data.X_train.iloc[fit_rows], data.y_train.iloc[fit_rows]
X_cal, y_cal = data.X_train.iloc[calibration_rows], data.y_train.iloc[calibration_rows]
X_test, y_test = data.X_test, data.y_test
print(X_fit.shape, "task column:", data.task_column)
print("held out of training:", data.unseen_tasks)

# %%
# Fit AutoTask and the baseline
# -----------------------------
# ``task_column`` names the column with the task ids. The baseline predicts
# with its general branch (trained on every task's rows), the fair comparison
# for unseen tasks.
autotask = AutoTaskClassifier(
    task_column="occupation", max_epochs=3, verbose=0, random_state=0
).fit(X_fit, y_fit)
baseline = MultiTaskDNNClassifier(
    task_column="occupation",
    branch="general",
    max_epochs=3,
    verbose=0,
    random_state=0,
).fit(X_fit, y_fit)
print("tasks seen in fit:", autotask.n_tasks_)

# %%
# ROC AUC on the seen occupations (pooled) and on each unseen one
# ---------------------------------------------------------------
task = X_test["occupation"].to_numpy()
groups = {"seen (pooled)": ~np.isin(task, data.unseen_tasks)}
groups.update({f"{t} (unseen)": task == t for t in data.unseen_tasks})
auc = {name: [] for name in ("AutoTask", "DNN general branch")}
for model, name in ((autotask, "AutoTask"), (baseline, "DNN general branch")):
    p = model.predict_proba(X_test)[:, 1]
    for rows in groups.values():
        auc[name].append(roc_auc_score(y_test[rows], p[rows]))
    print(f"{name:>18}: " + ", ".join(f"{a:.3f}" for a in auc[name]))

# %%
# Per-task calibration on a separate split
# ----------------------------------------
# ``FrozenEstimator`` keeps the fitted model: ``fit`` only fits one Platt map
# per occupation on the calibration rows (a global map for occupations with
# too few of them, and a map for the unseen-task path).
calibrated = PerTaskCalibratedClassifier(FrozenEstimator(autotask), method="sigmoid")
calibrated.fit(X_cal, y_cal)
print(len(calibrated.calibrators_), "occupations with a map of their own")
p_raw = autotask.predict_proba(X_test)[:, 1]
p_cal = calibrated.predict_proba(X_test)[:, 1]
print(f"test log loss: {log_loss(y_test, p_raw):.4f} -> {log_loss(y_test, p_cal):.4f}")

fig, (ax_auc, ax_cal) = plt.subplots(1, 2, figsize=(11, 4))
width = 0.35
for i, (name, values) in enumerate(auc.items()):
    ax_auc.bar(np.arange(len(groups)) + (i - 0.5) * width, values, width, label=name)
ax_auc.set_xticks(range(len(groups)), list(groups), fontsize=8)
ax_auc.set_ylim(0.7, 1.0)
ax_auc.set_ylabel("test ROC AUC")
ax_auc.legend(loc="upper left")
for p, name in ((p_raw, "AutoTask"), (p_cal, "per-task calibrated")):
    observed, predicted = calibration_curve(y_test, p, n_bins=10, strategy="quantile")
    ax_cal.plot(predicted, observed, marker="o", label=name)
ax_cal.plot([0, 1], [0, 1], color="grey", linestyle=":")
ax_cal.set_xlabel("mean predicted probability")
ax_cal.set_ylabel("share of positives")
ax_cal.set_title("Reliability on the test split")
ax_cal.legend()
fig.tight_layout()
plt.show()

# %%
# Per-task maps are monotone within a task, so they leave each task's ROC
# AUC unchanged; what they fix is the probabilities themselves (log loss,
# thresholds). See :doc:`/unseen_tasks`.
