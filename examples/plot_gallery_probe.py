"""
Gallery embeddings: a probe on a new task, and retrieval
========================================================

:class:`~mtlestimators.GalleryEmbedder` learns one vector per *gallery* (a
set of images) from several gallery-level tasks at once. This example trains
it on galleries of handwritten digits
(:func:`~mtlestimators.datasets.make_digit_galleries`), then

1. predicts a task the embedder never trained on (``mostly_even``: are more
   than half of the gallery's digits even?) with a logistic-regression probe
   on the frozen embeddings, the gallery paper's hold-out protocol, against a
   probe on each gallery's mean image;
2. indexes the test galleries with :class:`~mtlestimators.GalleryIndex`
   and retrieves the galleries closest to a query gallery.

The settings are small (scikit-learn's 8x8 digits, 400 training galleries, 8
epochs); ``benchmarks/gallery_table2.py`` runs the full protocol on MNIST
(:doc:`/results/gallery`).
"""

# %%
# Galleries and their tasks
# -------------------------
# Training and test galleries draw from disjoint image pools. The training
# tasks are of three kinds: binary (``contains_3``, ``contains_8``),
# multiclass (``most_frequent``) and regression (``mean_digit``); 10% of the
# training labels are missing (NaN).
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mtlestimators import GalleryEmbedder, GalleryIndex
from mtlestimators.datasets import make_digit_galleries

train = make_digit_galleries(
    400, source="sklearn", subset="train", missing_rate=0.1, random_state=0
)
test = make_digit_galleries(200, source="sklearn", subset="test", random_state=1)
print(train.task_kinds)
print(
    "images per gallery:",
    min(map(len, train.galleries)),
    "to",
    max(map(len, train.galleries)),
)

# %%
# Train the embedder
# ------------------
# ``small_vgg`` is the library's small convolutional encoder for CPU runs;
# ``backbone="vgg16"`` with ImageNet weights is the paper's setting.
embedder = GalleryEmbedder(
    backbone="small_vgg",
    image_size=8,
    lr=1e-3,
    max_epochs=8,
    verbose=0,
    random_state=0,
)
embedder.fit(train.galleries, train.target)
print("embedding size:", embedder.embedding_dim_)
print("predictions for three test galleries:")
print(embedder.predict_tasks(test.galleries[:3]))

# %%
# A probe on a task the embedder never saw
# ----------------------------------------
# ``FrozenEstimator`` keeps the fitted embedder as it is: the pipeline's
# ``fit`` only trains the logistic regression.
probe = make_pipeline(
    FrozenEstimator(embedder), StandardScaler(), LogisticRegression(max_iter=2000)
)
probe.fit(train.galleries, train.holdout)
mtl_accuracy = probe.score(test.galleries, test.holdout)


def mean_image(galleries):
    return np.stack([g.reshape(len(g), -1).mean(axis=0) for g in galleries])


baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
baseline.fit(mean_image(train.galleries), train.holdout)
mean_accuracy = baseline.score(mean_image(test.galleries), test.holdout)
majority = max(test.holdout.mean(), 1 - test.holdout.mean())
print(
    f"probe on embeddings {mtl_accuracy:.3f}, on mean images "
    f"{mean_accuracy:.3f}, majority {majority:.3f}"
)

# %%
# Retrieval
# ---------
# :class:`~mtlestimators.GalleryIndex` hashes the embeddings with bucketed
# random projections and ranks the candidates by cosine distance. Query the
# index with the first test gallery and show it with its three nearest
# neighbours (the query itself is indexed too, at distance 0).
index = GalleryIndex(embedder, n_neighbors=4, random_state=0).fit(test.galleries)
distances, indices = index.kneighbors(test.galleries[:1])

fig = plt.figure(figsize=(11, 6))
grid = fig.add_gridspec(4, 9)
ax_bar = fig.add_subplot(grid[:, :3])
ax_bar.bar(
    ["embeddings", "mean image", "majority"],
    [mtl_accuracy, mean_accuracy, majority],
    color=["C0", "C1", "C7"],
)
ax_bar.set_ylim(0.4, 1.0)
ax_bar.set_ylabel("accuracy on mostly_even (test)")
ax_bar.set_title("Probe on a never-trained task")
for row, (i, d) in enumerate(zip(indices[0], distances[0])):
    gallery = test.galleries[i]
    for col in range(6):
        ax = fig.add_subplot(grid[row, 3 + col])
        ax.axis("off")
        if col < len(gallery):
            ax.imshow(gallery[col], cmap="gray_r")
    label = "query" if row == 0 else f"neighbour {row}, distance {d:.2f}"
    fig.axes[-6].set_title(label, loc="left", fontsize=9)
fig.tight_layout()
plt.show()

# %%
# Digits of the query and of its neighbours (the first six images of each
# are shown above):
for i in indices[0]:
    print(np.bincount(test.digits[i], minlength=10))
