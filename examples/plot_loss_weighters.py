"""
Choosing a loss weighter
========================

A multi-task model minimizes one number made of K task losses; the *loss
weighter* decides how. This example trains
:class:`~mtlestimators.SharedBottomClassifier` on the two Adult tasks with
each built-in weighter and compares held-out ROC AUC per task and the
training curves. The weighters are plugins, found by name
(:func:`~mtlestimators.plugins.available_loss_weighters`); see
:doc:`/loss_weighting` for what each one does.
"""

# %%
# The raw Adult table
# -------------------
# :class:`~mtlestimators.SharedBottomClassifier` embeds the raw fields, as the
# rest of the tabular family does: categorical columns through embedding
# tables, numeric ones piecewise-linearly on quantile bins.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from mtlestimators import SharedBottomClassifier, per_task_scores
from mtlestimators.datasets import load_adult_multitask
from mtlestimators.plugins import available_loss_weighters

data = load_adult_multitask()
Z_train, Z_test, Y_train, Y_test = train_test_split(
    data.data, data.target, train_size=5000, test_size=5000, random_state=0
)
print(Z_train.shape, sorted(available_loss_weighters()))

# %%
# One model per weighter
# ----------------------
# Same seed, data and architecture; only ``loss_weighter`` changes.
weighters = ["uniform", "uncertainty", "dwa", "rlw"]
auc, curves, models = {}, {}, {}
for name in weighters:
    model = SharedBottomClassifier(
        loss_weighter=name, max_epochs=6, verbose=0, random_state=0
    )
    model.fit(Z_train, Y_train)
    scores = per_task_scores(Y_test, model.predict_proba(Z_test))
    auc[name] = [scores[task]["roc_auc"] for task in Y_test.columns]
    curves[name] = model.history_[:, "train_loss"]
    models[name] = model
    print(f"{name:>12}: " + ", ".join(f"{a:.4f}" for a in auc[name]))

# %%
# The uncertainty weighter learns one log-variance per task: its weights
# ``exp(-log_variance)`` after training.
log_variance = models["uncertainty"].net_.loss_weighter_.log_variance
print(dict(zip(Y_test.columns, np.exp(-log_variance.detach().numpy()).round(3))))

# %%
# Held-out AUC and training curves
# --------------------------------
# The training losses are on different scales (``rlw``'s weights sum to 1,
# ``uncertainty`` adds its ``log sigma`` terms), so each curve is divided by
# its first epoch's value.
fig, (ax_auc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
width = 0.2
for i, name in enumerate(weighters):
    ax_auc.bar(np.arange(2) + (i - 1.5) * width, auc[name], width, label=name)
    curve = np.asarray(curves[name])
    ax_loss.plot(np.arange(1, len(curve) + 1), curve / curve[0], label=name)
ax_auc.set_xticks(range(2), Y_test.columns)
ax_auc.set_ylim(0.85, 1.0)
ax_auc.set_ylabel("test ROC AUC")
ax_auc.legend(loc="upper left")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training loss / first epoch's")
ax_loss.legend()
fig.tight_layout()
plt.show()

# %%
# On two well-balanced tasks the choice barely moves the held-out AUC (the
# benchmark in :doc:`/results/gradient_weighters` finds the same for the
# gradient-level methods); weighting matters more when task losses differ in
# scale, e.g. regression next to classification.
