"""
MSSM and its baselines on the Adult census data
===============================================

:class:`~mtlestimators.MSSMClassifier` learns two tasks from one table of
raw fields: whether a person earns more than 50K, and whether they have never
married (the UCI Adult data bundled with the package,
:func:`~mtlestimators.datasets.load_adult_multitask`). This example fits it
next to two of the baselines of the MSSM paper,
:class:`~mtlestimators.MMoEClassifier` and
:class:`~mtlestimators.CrossStitchClassifier`, compares their held-out ROC AUC
per task with :func:`~mtlestimators.per_task_scores`, and plots MSSM's field
masks (the paper's Figure 3a): how much each task's own sub-network reads
each field.

The settings are small so that the example runs in seconds: 4,000 training
rows and 5 epochs. ``benchmarks/mssm_table1.py`` runs the full protocol
(results in :doc:`/results/mssm`).
"""

# %%
# Data: 13 fields, two binary tasks
# ---------------------------------
# Categorical columns are pandas ``category`` columns; the tabular models embed
# each field (a table per categorical field, a learned vector per numeric one).
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from mtlestimators import (
    CrossStitchClassifier,
    MMoEClassifier,
    MSSMClassifier,
    per_task_scores,
)
from mtlestimators.datasets import load_adult_multitask

data = load_adult_multitask()
X_train, X_test, Y_train, Y_test = train_test_split(
    data.data, data.target, train_size=4000, test_size=4000, random_state=0
)
print("categorical fields:", data.categorical_features)
print("numeric fields:", data.numeric_features)
print("share of positives per task:", Y_train.mean().round(3).to_dict())

# %%
# Fit three models
# ----------------
# Every model takes the same DataFrame and the (n, 2) target; ``verbose=0``
# hides skorch's epoch table.
models = {
    "MSSM": MSSMClassifier(max_epochs=5, verbose=0, random_state=0),
    "MMoE": MMoEClassifier(max_epochs=5, verbose=0, random_state=0),
    "Cross-Stitch": CrossStitchClassifier(max_epochs=5, verbose=0, random_state=0),
}
auc = {}
for name, model in models.items():
    model.fit(X_train, Y_train)
    scores = per_task_scores(Y_test, model.predict_proba(X_test))
    auc[name] = [scores[task]["roc_auc"] for task in Y_test.columns]
    print(f"{name:>12}: " + ", ".join(f"{a:.3f}" for a in auc[name]))

# %%
# Held-out ROC AUC and MSSM's field masks
# ---------------------------------------
# ``field_masks_`` has one row per task and one column per field: the mean
# FSCM weight of that field for that task's specific sub-network.
mssm = models["MSSM"]
fig, (ax_auc, ax_mask) = plt.subplots(
    1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]}
)
width = 0.25
for i, (name, values) in enumerate(auc.items()):
    ax_auc.bar(np.arange(2) + (i - 1) * width, values, width, label=name)
ax_auc.set_xticks(range(2), Y_test.columns)
ax_auc.set_ylim(0.8, 1.0)
ax_auc.set_ylabel("test ROC AUC")
ax_auc.legend(loc="upper left")

image = ax_mask.imshow(mssm.field_masks_, aspect="auto", cmap="viridis")
ax_mask.set_yticks(range(mssm.n_tasks_), mssm.task_names_)
ax_mask.set_xticks(
    range(len(mssm.feature_names_in_)), mssm.feature_names_in_, rotation=60, ha="right"
)
ax_mask.set_title("MSSM field masks (mean FSCM weight)")
fig.colorbar(image, ax=ax_mask)
fig.tight_layout()
plt.show()

# %%
# At this size the three models score within about 0.01 AUC of each other; in
# the full benchmark (10 epochs on all training rows, 10 seeds) all 13 models of
# the MSSM paper's Table 1 land within about 0.002 AUC on Adult (see
# :doc:`/tabular`).
