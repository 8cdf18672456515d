"""GalleryEmbedder: multi-task image-gallery representations.

Gutelman & Levin, "Efficient Image Gallery Representations at Scale Through
Multi-Task Learning", SIGIR 2020: a shared image encoder (VGG16 with its
first four blocks frozen), mean pooling over the gallery, and one 2-layer head
per task (section 3.2), trained jointly with pseudo-uniform loss weighting or
Kendall et al.'s uncertainty weighting (section 3.3).
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted
from skorch.hf import AccelerateMixin
from torch import nn
from torch.utils.data import DataLoader

from .._core.base import NetEstimatorBase, _name_of
from .._core.early_stopping import fitted_epochs
from .._core.net import DataParallelMixin, MultiTaskNet, bare_module
from .._core.params import InstanceOf, Integer, Options, check_param
from .._core.targets import (
    drop_unlabelled_rows,
    encode_targets,
    has_column_names,
    missing_mask,
    normalize_labels,
    resolve_tasks,
    task_names_of,
    y_in_task_order,
)
from .._core.weights import (
    check_sample_weight,
    resolve_class_weight,
    row_weights,
    weight_columns,
    with_weights,
)
from ._backbone import build_encoder
from ._data import (
    GalleryDataset,
    PackedGalleries,
    check_galleries,
    pack_galleries,
)
from ._pooling import POOLINGS


class GalleryModule(nn.Module):
    """Shared encoder -> per-gallery pooling -> one 2-layer head per task.

    ``forward(images, lengths)`` takes a packed batch (all images of B
    galleries, (N, 3, S, S), and the B gallery lengths) and returns one
    output per task: a logit (B,) for binary, logits (B, C) for multiclass,
    a value (B,) for regression. The heads are FC + ReLU then a linear
    output; sigmoid/softmax live in the loss and in ``predict_tasks``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        embedding_dim: int,
        output_dims: list[int],
        task_kinds: list[str],
        head_units: int = 256,
        pooling: str = "mean",
        attention_units: int = 128,
    ):
        super().__init__()
        self.encoder = encoder
        self.task_kinds = list(task_kinds)
        if pooling == "attention":
            self.pooling = POOLINGS[pooling](embedding_dim, attention_units)
        else:
            self.pooling = POOLINGS[pooling](embedding_dim)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(embedding_dim, head_units),
                nn.ReLU(),
                nn.Linear(head_units, d),
            )
            for d in output_dims
        )
        self.prepared = False

    def embed(self, images: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.encoder(images)  # (N, D)
        n = len(lengths)
        segments = torch.repeat_interleave(torch.arange(n, device=h.device), lengths)
        return self.pooling(h, segments, n)  # (B, D)

    def forward(self, images, lengths) -> tuple[torch.Tensor, ...]:
        z = self.embed(images, lengths)  # (B, D)
        outputs = []
        for head, kind in zip(self.heads, self.task_kinds):
            out = head(z)  # (B, d)
            outputs.append(out if kind == "multiclass" else out[:, 0])
        return tuple(outputs)

    def prepare(self, y: np.ndarray) -> None:
        """Start each regression head at its task's mean label, so the first
        epochs are not spent learning the offset of the target; with weight
        columns (a (n, 2K) target), the weighted mean."""
        n_tasks = len(self.task_kinds)
        weights = weight_columns(y, n_tasks)
        with torch.no_grad():
            for k, kind in enumerate(self.task_kinds):
                labelled = ~np.isnan(y[:, k])
                if weights is not None:
                    labelled &= weights[:, k] > 0
                if kind != "regression" or not labelled.any():
                    continue
                w = None if weights is None else weights[labelled, k]
                mean = np.average(y[labelled, k], weights=w)
                self.heads[k][-1].bias.fill_(float(mean))
        self.prepared = True


class GalleryNet(MultiTaskNet):
    """:class:`MultiTaskNet` over galleries: a :class:`GalleryDataset` read by
    a ``DataLoader`` whose ``collate_fn`` packs a batch of galleries into one
    encoder pass (:class:`PackedGalleries`)."""

    def __init__(self, module, **kwargs):
        for prefix in ("iterator_train", "iterator_valid"):
            kwargs.setdefault(prefix, DataLoader)
            kwargs.setdefault(f"{prefix}__collate_fn", pack_galleries)
        super().__init__(module, **kwargs)

    def get_dataset(self, X, y=None):
        if not isinstance(X, GalleryDataset):
            raise TypeError(f"GalleryNet needs a GalleryDataset, got {type(X)}.")
        return X if y is None else X.with_targets(y)

    def _infer(self, x, **fit_params):
        x = x.to(self.data_device())
        return self.module_(x.images, x.lengths, **fit_params)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if not self.module_.prepared and y is not None:
            self.module_.prepare(np.asarray(y, dtype=np.float32))

    def checkpoint_extra(self) -> dict:
        return {"prepared": bool(self.module_.prepared)}

    def load_checkpoint_extra(self, extra: dict) -> None:
        self.module_.prepared = bool(extra.get("prepared", False))

    def gallery_iterator(self, dataset, batch_size=None, num_workers=None):
        """The eval-time DataLoader, with batch size and workers overridable
        after fit (they do not change the model)."""
        params = self.get_params_for("iterator_valid")
        params["batch_size"] = batch_size or params.get("batch_size", self.batch_size)
        if num_workers is not None:
            params["num_workers"] = num_workers
        return self.iterator_valid(dataset, **params)

    def task_outputs(self, X, batch_size=None, num_workers=None):
        """Eval-mode module outputs for a GalleryDataset, one CPU tensor per
        task, computed over packed batches."""
        self._set_training(False)
        parts = []
        with torch.no_grad():
            for batch, _ in self.gallery_iterator(X, batch_size, num_workers):
                parts.append([out.cpu() for out in self.infer(batch)])
        return tuple(torch.cat(part) for part in zip(*parts))

    def embed(
        self, dataset: GalleryDataset, progress=False, batch_size=None, num_workers=None
    ) -> np.ndarray:
        """Pooled gallery embeddings (n, D) float32, in eval mode."""
        self._set_training(False)
        out = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(dataset), unit="gallery", delay=2.0, file=sys.stderr)
        with torch.no_grad():
            for batch, _ in self.gallery_iterator(dataset, batch_size, num_workers):
                batch: PackedGalleries = batch.to(self.data_device())
                with self.autocast_context():
                    z = self.module_.embed(batch.images, batch.lengths)
                out.append(z.float().cpu())
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return torch.cat(out).numpy().astype(np.float32, copy=False)


class AcceleratedGalleryNet(DataParallelMixin, AccelerateMixin, GalleryNet):
    """:class:`GalleryNet` trained through Hugging Face Accelerate: the
    accelerator shards the training DataLoader across processes and gathers
    the validation outputs; only the module is wrapped in DDP
    (:class:`~mtlestimators._core.net.DataParallelMixin`)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        module = bare_module(self.module_)  # DDP hides prepare/prepared
        if not module.prepared and y is not None:
            module.prepare(np.asarray(y, dtype=np.float32))


class GalleryEmbedder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, NetEstimatorBase
):
    """Multi-task image-gallery embeddings (Gutelman & Levin, SIGIR 2020).

    Every image of a gallery goes through one shared encoder (a torchvision
    classification model cut below its classifier); the image vectors are
    pooled per gallery by a permutation-invariant function; one 2-layer head
    per task (FC + ReLU, then a sigmoid / softmax / linear output) trains on
    the gallery-level targets. ``transform`` returns the pooled embedding,
    for downstream probes (``FrozenEstimator``) and retrieval
    (:class:`GalleryIndex`).

    A batch packs the images of all its galleries into one encoder pass and
    pools by segment: no padding to the longest gallery, no loop over
    galleries.

    Parameters
    ----------
    backbone : str or nn.Module, default="vgg16"
        A torchvision classification model name (the paper uses ``"vgg16"``),
        ``"small_vgg"`` (the library's 3-block VGG-style network for CPU runs),
        or an ``nn.Module`` mapping (N, 3, S, S) images to (N, D) vectors or
        (N, D, h, w) maps (averaged). A module is copied, never trained in
        place; an ``nn.Sequential`` counts its children as blocks.
    weights : None, str or path, default=None
        None (random initialization), a torchvision weights name such as
        ``"IMAGENET1K_V1"`` or ``"VGG16_Weights.IMAGENET1K_V1"`` (read from the
        local torch hub cache: no download is attempted), or the path of a
        local state_dict file saved from the same architecture.
    trainable_layers : int or None, default=None
        How many of the encoder's last blocks train; the others are frozen.
        None trains all. The paper: ``trainable_layers=1`` (VGG16's last of
        five blocks) with ImageNet weights. ResNets have 5 blocks (stem and
        four stages); other models count the children of ``features``.
    image_size : int, default=224
        Images are resized (bilinear, antialiased) to image_size x image_size
        and normalized with the ImageNet mean and standard deviation.
    pooling : {"mean", "max", "attention"}, default="mean"
        Per-gallery pooling: the paper's mean, element-wise max, or learned
        attention pooling (Ilse et al. 2018; ``module__attention_units``).
    head_units : int, default=256
        Width of each task head's hidden layer.
    tasks : dict {column: kind}, list of kinds or None, default=None
        Kinds ``"binary"``, ``"multiclass"``, ``"regression"``; None infers
        each column's kind from its labels.
    loss_weighter : str, class or nn.Module, default="pseudo_uniform"
        ``"pseudo_uniform"`` (paper: weight 1 for classification, 1/variance
        for regression), ``"uncertainty"`` (Kendall et al.), or any plugin.
    lr : float, default=1e-4
        Adam learning rate (the paper's value, for pretrained weights; from
        random weights 1e-3 trains faster).
    max_epochs : int, default=10
    batch_size : int, default=16
        Galleries per batch.
    num_workers : int, default=0
        DataLoader workers that decode and resize the images (file paths are
        read there).
    optimizer : str or torch.optim.Optimizer subclass, default="adam"
    callbacks : list of skorch callbacks, optional
    warm_start : bool, default=False
    verbose : int, default=1
        1 prints skorch's epoch table, and a progress bar over galleries for
        embedding passes longer than 2 seconds; 0 is silent.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
    random_state : int, RandomState or None, default=None
        Seeds the initialization and shuffling; the same int gives the same
        model.
    train_split : callable or None, default=None
        skorch's validation split, e.g. ``skorch.dataset.ValidSplit(0.2)``.
    checkpoint_dir, autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol
        Resumable training, mixed precision and Hugging Face Accelerate, as
        in :class:`~mtlestimators.SharedBottomClassifier`; a checkpoint's
        fingerprint includes the image files' sizes and modification times.
    **kwargs
        Routed parameters: ``optimizer__*``, ``module__*``,
        ``loss_weighter__*``, ``callbacks__*``, ``iterator_train__*``,
        ``iterator_valid__*`` (DataLoader arguments).

    Attributes
    ----------
    net_ : GalleryNet
        The fitted skorch net.
    history_ : skorch.History
    embedding_dim_ : int
        Width of ``transform``'s output.
    task_specs_ : list of TaskSpec
    task_names_ : ndarray of str
    n_tasks_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import GalleryEmbedder
    >>> rng = np.random.RandomState(0)
    >>> galleries = [rng.randint(0, 255, size=(k, 12, 12), dtype=np.uint8)
    ...              for k in rng.randint(2, 6, size=40)]
    >>> y = np.column_stack([rng.randint(0, 2, 40), rng.normal(size=40)])
    >>> emb = GalleryEmbedder(backbone="small_vgg", image_size=12, max_epochs=2,
    ...                       lr=1e-3, verbose=0, random_state=0)
    >>> emb.fit(galleries, y).transform(galleries[:3]).shape
    (3, 128)
    >>> [spec.kind for spec in emb.task_specs_]
    ['binary', 'regression']
    """

    # Whether a backbone name, its weights and trainable_layers fit together
    # is checked by build_encoder.
    _parameter_constraints = {
        "backbone": [str, InstanceOf(nn.Module, description="an nn.Module")],
        "weights": [
            None,
            str,
            os.PathLike,
            InstanceOf("torchvision.models.WeightsEnum", description="a WeightsEnum"),
        ],
        "trainable_layers": [None, Integer(0)],
        "image_size": [Integer(1)],
        "pooling": [Options(list(POOLINGS))],
        "head_units": [Integer(1)],
        "tasks": [
            None,
            InstanceOf(
                (Mapping, list, tuple, np.ndarray, pd.Series),
                description="a dict {column: kind} or a list of kinds",
            ),
        ],
        "num_workers": [Integer(0)],
    }

    def __init__(
        self,
        backbone="vgg16",
        weights=None,
        trainable_layers: int | None = None,
        image_size: int = 224,
        pooling: str = "mean",
        head_units: int = 256,
        tasks=None,
        loss_weighter="pseudo_uniform",
        lr: float = 1e-4,
        max_epochs: int = 10,
        batch_size: int = 16,
        num_workers: int = 0,
        optimizer="adam",
        callbacks=None,
        warm_start: bool = False,
        verbose: int = 1,
        device: str = "cpu",
        random_state=None,
        train_split=None,
        checkpoint_dir=None,
        autocast=False,
        accelerator=None,
        early_stopping="auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        **kwargs,
    ):
        self.backbone = backbone
        self.weights = weights
        self.trainable_layers = trainable_layers
        self.image_size = image_size
        self.pooling = pooling
        self.head_units = head_units
        self.tasks = tasks
        self.loss_weighter = loss_weighter
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.verbose = verbose
        self.device = device
        self.random_state = random_state
        self.train_split = train_split
        self.checkpoint_dir = checkpoint_dir
        self.autocast = autocast
        self.accelerator = accelerator
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        vars(self).update(kwargs)

    # ------------------------------------------------------------- building
    def _build_module(self, specs):
        # The encoder's random initialization follows random_state too.
        with torch.random.fork_rng():
            torch.manual_seed(self._seed())
            encoder, dim = build_encoder(
                self.backbone, self.weights, self.trainable_layers, self.image_size
            )
        return GalleryModule, {
            "encoder": encoder,
            "embedding_dim": dim,
            "output_dims": [s.output_dim for s in specs],
            "task_kinds": [s.kind for s in specs],
            "head_units": int(self.head_units),
            "pooling": self.pooling,
        }

    def _check_component_params(self, routed, module_cls) -> None:
        loader_keys = [k for k in routed if k.startswith("iterator_")]
        others = {k: v for k, v in routed.items() if k not in loader_keys}
        super()._check_component_params(others, module_cls)
        accepted = [
            p
            for p in inspect.signature(DataLoader).parameters
            if p not in ("self", "dataset", "batch_size")
        ]
        for key in loader_keys:
            prefix, _, name = key.partition("__")
            if name not in accepted:
                close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
                hint = f" Did you mean '{prefix}__{close[0]}'?" if close else ""
                raise ValueError(
                    f"{key!r} is not a parameter of torch's DataLoader.{hint}"
                )

    def _check_num_workers(self) -> int:
        # Also read at transform, where it may have been set after fit.
        constraints = self._parameter_constraints["num_workers"]
        check_param("num_workers", self.num_workers, constraints)
        return int(self.num_workers)

    _net_class = GalleryNet
    _accelerated_net_class = AcceleratedGalleryNet

    def _net_kwargs(self) -> dict:
        workers = self._check_num_workers()
        return {
            f"{p}__num_workers": workers for p in ("iterator_train", "iterator_valid")
        }

    # ------------------------------------------------------------------ fit
    def _check_targets(self, y, n_galleries: int):
        if y is None:
            raise ValueError(
                "GalleryEmbedder requires y to be passed, but the target y is "
                "None. Give a (n_galleries, n_tasks) table of task labels."
            )
        y_array = check_array(
            y,
            dtype=None,
            ensure_2d=False,
            ensure_all_finite="allow-nan",
            input_name="y",
        )
        if y_array.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D (n, n_tasks), got {y_array.shape}.")
        if len(y_array) != n_galleries:
            raise ValueError(
                f"X has {n_galleries} galleries but y has {len(y_array)} rows; give "
                "one label row per gallery."
            )
        if y_array.ndim == 2:
            names = task_names_of(y, y_array.shape[1])
        else:
            names = [_name_of(y)]
        return y_array.reshape(len(y_array), -1), names

    def fit(self, X, y=None, sample_weight=None, **fit_params):
        """Train the encoder and task heads on galleries X and task table y.

        A call that fails leaves a fitted model as it was.

        Parameters
        ----------
        X : sequence of galleries or ndarray
            Each gallery a non-empty sequence of images (numpy arrays, PIL
            images or file paths) or a stacked array (k, H, W[, C]); or an
            array (n, k, H, W[, C]) of fixed-size galleries; or a 2-D numeric
            array (n, d), read as n galleries of one 1 x d grayscale image.
        y : array-like of shape (n_galleries, n_tasks) or (n_galleries,)
            One column per task (1-D for one task), NaN for a missing label;
            required (None raises ValueError).
        sample_weight : array-like of shape (n_galleries,), default=None
            Non-negative weight of each gallery in the training loss: each
            task's loss is the weighted mean over its labelled galleries, so a
            gallery of weight 0 contributes nothing and an integer weight
            counts like that many copies. None weighs every gallery 1. In a
            ``Pipeline`` pass it as ``<step>__sample_weight``.
        **fit_params
            Not accepted: any raises TypeError.

        Returns
        -------
        self
        """
        return super().fit(X, y, sample_weight=sample_weight, **fit_params)

    def _fit(self, X, y, sample_weight=None, **fit_params):
        if fit_params:
            raise TypeError(
                f"GalleryEmbedder.fit got unexpected arguments {sorted(fit_params)}."
            )
        galleries = check_galleries(X)
        y2, names = self._check_targets(y, len(galleries))
        if y2.shape[1] == 0:
            raise ValueError("y has no columns; give at least one task.")
        sample_weight = check_sample_weight(sample_weight, len(galleries))
        keep = drop_unlabelled_rows(y2)
        galleries, y2 = [galleries[i] for i in keep], y2[keep]
        specs = resolve_tasks(y2, names, self.tasks)
        Y = encode_targets(y2, specs)
        if sample_weight is not None:
            # No class weights here: every class of a task weighs 1.
            ones = resolve_class_weight(None, specs, Y)
            Y = with_weights(Y, row_weights(Y, specs, ones, sample_weight[keep]))
        dataset = GalleryDataset(galleries, self.image_size)
        net, config = self._train(dataset, Y, specs, {})

        self.net_ = net
        self._net_config_ = config
        self.history_ = net.history
        self.n_iter_, self.best_epoch_ = fitted_epochs(net)
        self.task_specs_ = specs
        self.n_tasks_ = len(specs)
        self.task_names_ = np.asarray(names, dtype=object)
        # score() matches y's columns to the tasks by name when fit saw names.
        self._task_names_from_frame_ = has_column_names(y)
        self.embedding_dim_ = int(net.module_.heads[0][0].in_features)
        self.image_size_ = int(self.image_size)  # the size the encoder learned
        return self

    # ------------------------------------------------------------ inference
    def _dataset(self, X) -> GalleryDataset:
        check_is_fitted(self)
        return GalleryDataset(check_galleries(X), self.image_size_)

    def transform(self, X) -> np.ndarray:
        """Pooled gallery embeddings, float32 (n_galleries, ``embedding_dim_``).

        Parameters
        ----------
        X : sequence of galleries or ndarray
            Each gallery a non-empty sequence of images (numpy arrays, PIL
            images or file paths) or a stacked array (k, H, W[, C]); or an
            array (n, k, H, W[, C]) of fixed-size galleries; or a 2-D numeric
            array (n, d), read as n galleries of one 1 x d grayscale image.

        Returns
        -------
        ndarray of float32, shape (n_galleries, ``embedding_dim_``)
        """
        dataset = self._dataset(X)
        return self.net_.embed(
            dataset,
            progress=bool(self.verbose),
            batch_size=self.batch_size,
            num_workers=self._check_num_workers(),
        )

    @property
    def _n_features_out(self) -> int:
        return self.embedding_dim_

    def predict_tasks(self, X) -> pd.DataFrame:
        """Per-task predictions, one column per task: class labels for
        classification tasks (from the classes seen in fit), values for
        regression tasks.

        Parameters
        ----------
        X : sequence of galleries or ndarray
            Each gallery a non-empty sequence of images (numpy arrays, PIL
            images or file paths) or a stacked array (k, H, W[, C]); or an
            array (n, k, H, W[, C]) of fixed-size galleries; or a 2-D numeric
            array (n, d), read as n galleries of one 1 x d grayscale image.

        Returns
        -------
        DataFrame of shape (n_galleries, n_tasks)
            Columns named after the tasks (``task_names_``).
        """
        outputs = self.net_.task_outputs(
            self._dataset(X),
            batch_size=self.batch_size,
            num_workers=self._check_num_workers(),
        )
        columns = {}
        for spec, out in zip(self.task_specs_, outputs):
            if spec.kind == "binary":
                columns[spec.name] = spec.classes[(out > 0).long().numpy()]
            elif spec.kind == "multiclass":
                columns[spec.name] = spec.classes[out.argmax(dim=1).numpy()]
            else:
                columns[spec.name] = out.double().numpy()
        return pd.DataFrame(columns)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean over tasks of each task's score on its labelled rows:
        accuracy for classification tasks, R^2 for regression tasks.

        Parameters
        ----------
        X : sequence of galleries or ndarray
            Each gallery a non-empty sequence of images (numpy arrays, PIL
            images or file paths) or a stacked array (k, H, W[, C]); or an
            array (n, k, H, W[, C]) of fixed-size galleries; or a 2-D numeric
            array (n, d), read as n galleries of one 1 x d grayscale image.
        y : array-like of shape (n_galleries, n_tasks) or (n_galleries,)
            True targets, one column per task, NaN or None for a missing
            label (those rows are skipped for that task). When fit was given
            a DataFrame, a DataFrame y is matched to the tasks by column name
            (any order; unknown or missing names raise ValueError).
        sample_weight : array-like of shape (n_galleries,), optional
            Row weights of each task's score.

        Returns
        -------
        float
        """
        from sklearn.metrics import accuracy_score, r2_score

        check_is_fitted(self)
        y = y_in_task_order(self, y)
        y2 = np.asarray(y, dtype=object).reshape(len(y), -1)
        if y2.shape[1] != self.n_tasks_:
            raise ValueError(
                f"y has {y2.shape[1]} column(s) but the model was fit on "
                f"{self.n_tasks_} tasks; pass one column per task."
            )
        pred = self.predict_tasks(X)
        missing = missing_mask(y2)
        weights = None if sample_weight is None else np.asarray(sample_weight)
        scores = []
        for k, spec in enumerate(self.task_specs_):
            rows = ~missing[:, k]
            if not rows.any():
                continue
            truth = normalize_labels(y2[rows, k])
            guess = pred.iloc[:, k].to_numpy()[rows]
            w = None if weights is None else weights[rows]
            if spec.kind == "regression":
                scores.append(r2_score(truth.astype(float), guess, sample_weight=w))
            else:
                scores.append(accuracy_score(truth, guess, sample_weight=w))
        return float(np.mean(scores))

    def _export_adapter(self):
        """The export adapter of :mod:`mtlestimators.export` (input ``images``)."""
        from ._export import GalleryExportAdapter

        return GalleryExportAdapter(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
