"""Gallery inputs: validation, lazy decoding and packed batches.

A gallery is a non-empty sequence of images; a batch of galleries is packed
into one tensor of all its images plus the length of every gallery
(:class:`PackedGalleries`), so the encoder runs once per batch and pooling
works per gallery by segment, without padding to the longest gallery.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import issparse
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

# torchvision's classification weights expect ImageNet-normalized RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PackedGalleries:
    """A batch of galleries: every image in one tensor, plus gallery lengths.

    ``images`` is (N, 3, S, S) with the images of gallery 0 first, then those
    of gallery 1, ...; ``lengths`` is (B,) and sums to N. ``len()`` is the
    number of galleries, which is what skorch records as the batch size.
    """

    __slots__ = ("images", "lengths")

    def __init__(self, images: torch.Tensor, lengths: torch.Tensor):
        assert int(lengths.sum()) == len(images), (lengths, images.shape)
        self.images = images
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def to(self, device) -> PackedGalleries:
        return PackedGalleries(self.images.to(device), self.lengths.to(device))


def pack_galleries(batch) -> tuple[PackedGalleries, torch.Tensor]:
    """``collate_fn``: ``[(images (k_i, 3, S, S), y_i), ...]`` to one packed
    batch and the stacked targets (a placeholder of zeros without targets)."""
    images = torch.cat([item[0] for item in batch])  # (N, 3, S, S)
    lengths = torch.tensor([len(item[0]) for item in batch])  # (B,)
    targets = [item[1] for item in batch]
    if targets[0] is None:
        y = torch.zeros(len(batch))
    else:
        y = torch.stack(targets)  # (B, K)
    return PackedGalleries(images, lengths), y


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def _is_pil(item) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - torchvision depends on pillow
        return False
    return isinstance(item, Image.Image)


def _check_array_image(image: np.ndarray, where: str) -> np.ndarray:
    if image.dtype == object or not (
        np.issubdtype(image.dtype, np.number) or image.dtype == bool
    ):
        raise TypeError(
            f"{where} has dtype {image.dtype}; images must be numeric arrays "
            "(uint8 0-255 or float), PIL images or file paths."
        )
    if image.ndim == 3 and image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{where} has shape {image.shape}; a colour image is (H, W, C) with "
            "C = 1, 3 or 4 channels last."
        )
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(
            f"{where} has shape {image.shape}; an image is a non-empty (H, W) "
            "grayscale or (H, W, C) colour array."
        )
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise ValueError(
            f"{where} contains NaN or infinity; images must be finite. Replace "
            "the missing pixels before fitting."
        )
    return image


def _check_path(path, where: str) -> str:
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"{where}: image file {path!r} does not exist; check the path."
        )
    try:
        with Image.open(path):  # reads the header only
            pass
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(
            f"{where}: {path!r} is not a readable image file ({exc}). Remove it "
            "from the gallery or replace the file."
        ) from None
    return path


def check_galleries(X, argument: str = "X") -> list[list]:
    """Validate X and return it as a list of galleries (lists of images).

    Accepted: a sequence of galleries, each a non-empty sequence of numpy
    images, PIL images or file paths, or a stacked array (k, H, W[, C]); a
    numpy array (n, k, H, W[, C]) of fixed-size galleries; or a 2-D numeric
    array (n, d), read as n galleries of one 1 x d grayscale image (the form
    scikit-learn's estimator checks use). Files are checked to exist and to
    have a readable image header; they are decoded later, in batches.
    """
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # pandas DataFrame
        if X.shape[1] == 1 and X.dtypes.iloc[0] == np.dtype(object):
            X = list(X.iloc[:, 0])
        else:
            X = X.to_numpy()
    elif hasattr(X, "iloc"):  # pandas Series of galleries
        X = list(X)
    if issparse(X):
        raise TypeError(
            f"{argument} is a sparse matrix; sparse input is not supported. Give "
            "galleries of dense images (numpy arrays, PIL images or file paths)."
        )
    if not isinstance(X, (Sequence, np.ndarray)) and hasattr(X, "__array__"):
        X = np.asarray(X)
    if isinstance(X, (list, tuple)) and X and isinstance(X[0], (list, tuple)):
        first = X[0][0] if len(X[0]) else None
        if isinstance(first, (numbers.Number, np.number)) and not isinstance(
            first, bool
        ):
            X = np.asarray(X)  # a nested list of numbers is a 2-D array
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim >= 2:
        first = X.flat[0] if X.size else None
        if not (
            _is_path(first) or _is_pil(first) or isinstance(first, (np.ndarray, list))
        ):
            X = X.astype(np.float64)  # numbers held as objects
    if isinstance(X, np.ndarray) and X.dtype.kind in "US":  # file paths
        X = X.tolist()
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 1:
            raise ValueError(
                f"{argument} is a 1-D array of shape {X.shape}; X is a sequence of "
                "galleries. Reshape your data: a list of galleries, an array "
                "(n_galleries, n_images, H, W[, C]), or X.reshape(-1, 1) for one "
                "one-pixel image per gallery."
            )
        if X.ndim == 2 and X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={X.shape}) while a minimum "
                f"of 1 is required: {argument} would hold empty images."
            )
        if X.ndim == 2:
            X = X[:, None, None, :]  # (n, 1 image, 1 row, d)
        elif X.ndim not in (4, 5):
            raise ValueError(
                f"{argument} is an array of shape {X.shape}; give galleries as "
                "(n_galleries, n_images, H, W[, C]), or a list of galleries "
                "for galleries of different lengths."
            )
    if isinstance(X, (str, bytes, os.PathLike)) or _is_pil(X):
        raise TypeError(
            f"{argument} must be a sequence of galleries (e.g. a list of lists of "
            f"images), got a single {type(X).__name__}."
        )
    if not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        raise TypeError(
            f"{argument} must be a sequence of galleries (e.g. a list of lists "
            f"of images), got {type(X).__name__}."
        )
    if len(X) == 0:
        raise ValueError(f"{argument} holds 0 galleries; a minimum of 1 is required.")
    galleries = []
    for i, gallery in enumerate(X):
        where = f"{argument}[{i}]"
        if isinstance(gallery, np.ndarray) and gallery.dtype != object:
            if gallery.ndim not in (3, 4):
                raise ValueError(
                    f"{where} is an array of shape {gallery.shape}; a gallery "
                    "array is (n_images, H, W) or (n_images, H, W, C). Wrap a "
                    "single image in a list: [image]."
                )
            gallery = list(gallery)
        elif _is_path(gallery) or _is_pil(gallery):
            raise TypeError(
                f"{where} is a single image; a gallery is a sequence of images. "
                "Wrap it in a list: [image]."
            )
        elif not isinstance(gallery, Sequence | np.ndarray):
            raise TypeError(
                f"{where} is a {type(gallery).__name__}; a gallery is a sequence "
                "of images (numpy arrays, PIL images or file paths)."
            )
        if len(gallery) == 0:
            raise ValueError(
                f"{where} is an empty gallery; every gallery needs at least one "
                "image. Drop it or add an image."
            )
        images = []
        for j, image in enumerate(gallery):
            spot = f"{where}[{j}]"
            if _is_path(image):
                images.append(_check_path(image, spot))
            elif _is_pil(image):
                images.append(image)
            else:
                images.append(_check_array_image(np.asarray(image), spot))
        galleries.append(images)
    return galleries


def _decode(image, where: str) -> torch.Tensor:
    """One image as float32 (3, H, W): uint8/integers scaled to [0, 1], floats
    as given; grayscale repeated to 3 channels, alpha dropped."""
    if isinstance(image, str):
        from PIL import Image

        try:
            with Image.open(image) as file:
                array = np.array(file.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(
                f"{where}: could not decode image file {image!r} ({exc}); the "
                "file is truncated or corrupt. Replace or remove it."
            ) from None
    elif _is_pil(image):
        array = np.array(image.convert("RGB"))
    else:
        array = image
    if not array.flags.writeable:
        array = array.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool:
        tensor = tensor.float()
    elif tensor.dtype == torch.uint16 or array.dtype == np.uint16:
        tensor = tensor.float() / 65535.0  # 16-bit images
    elif not tensor.is_floating_point():
        tensor = tensor.float() / 255.0
    else:
        tensor = tensor.float()
        if tensor.numel() and float(tensor.max()) > 1.0 + 1e-6:
            warnings.warn(
                f"A float image has values up to {float(tensor.max()):.4g}; float "
                "images are read as intensities in [0, 1]. Divide 0-255 images "
                "by 255 (or pass them as uint8).",
                UserWarning,
                stacklevel=2,
            )
    if tensor.ndim == 2:
        tensor = tensor[None]  # (1, H, W)
    else:
        tensor = tensor.permute(2, 0, 1)[:3]  # (C, H, W), alpha dropped
    if len(tensor) == 1:
        tensor = tensor.expand(3, -1, -1)
    elif len(tensor) == 2:  # gray + alpha
        tensor = tensor[:1].expand(3, -1, -1)
    return tensor


def preprocess(images: Sequence, image_size: int, where: str = "X") -> torch.Tensor:
    """Decode, resize (bilinear, antialiased) and ImageNet-normalize one
    gallery: (k, 3, image_size, image_size) float32. Images of the same size
    are resized together."""
    decoded = [_decode(image, f"{where}[{j}]") for j, image in enumerate(images)]
    out = torch.empty(len(decoded), 3, image_size, image_size)
    by_shape: dict[tuple, list[int]] = {}
    for j, tensor in enumerate(decoded):
        by_shape.setdefault(tuple(tensor.shape), []).append(j)
    for shape, index in by_shape.items():
        group = torch.stack([decoded[j] for j in index])  # (g, 3, H, W)
        if shape[1:] != (image_size, image_size):
            group = TF.resize(group, [image_size, image_size], antialias=True)
        out[index] = group
    return TF.normalize(out, IMAGENET_MEAN, IMAGENET_STD)


class GalleryDataset(Dataset):
    """Galleries (validated by :func:`check_galleries`) and optional targets;
    item ``i`` is ``(images (k_i, 3, S, S), y_i)``, decoded when asked for
    (so in DataLoader workers when ``num_workers > 0``)."""

    def __init__(self, galleries: list, image_size: int, y=None):
        self.galleries = galleries
        self.image_size = int(image_size)
        self.y = None if y is None else torch.as_tensor(y, dtype=torch.float32)
        if self.y is not None and len(self.y) != len(galleries):
            raise ValueError(
                f"X has {len(galleries)} galleries but y has {len(self.y)} rows."
            )

    def __len__(self) -> int:
        return len(self.galleries)

    def __getitem__(self, i):
        images = preprocess(self.galleries[i], self.image_size, f"X[{i}]")
        return images, (None if self.y is None else self.y[i])

    def with_targets(self, y) -> GalleryDataset:
        return GalleryDataset(self.galleries, self.image_size, y)

    def subset(self, index) -> GalleryDataset:
        y = None if self.y is None else self.y[index]
        return GalleryDataset([self.galleries[i] for i in index], self.image_size, y)
