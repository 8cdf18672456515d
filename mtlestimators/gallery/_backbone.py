"""The image encoder shared by every image of every gallery.

A torchvision classification model (by name), the library's own small
VGG-style network (``"small_vgg"``, for CPU runs and tests) or any
``nn.Module``, cut below its classifier and split into blocks so the first
ones can be frozen (the gallery paper, section 3.2, trains only the last of
VGG16's five convolutional blocks).
"""

from __future__ import annotations

import copy
import difflib
import numbers
import os
from pathlib import Path

import torch
from torch import nn

SMALL_VGG_WIDTHS = (32, 64, 128)


def small_vgg(widths=SMALL_VGG_WIDTHS) -> nn.Sequential:
    """A VGG-style network: per block a 3x3 convolution, ReLU and 2x2 max pool.

    Three blocks of 32, 64 and 128 channels encode a 28x28 image in about
    0.2 ms on one CPU core; a stand-in for VGG16 where that is too slow.
    """
    layers, width = [], 3
    for out in widths:
        layers.append(
            nn.Sequential(
                nn.Conv2d(width, out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            )
        )
        width = out
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """Blocks applied in order, then global average pooling to (N, D).

    The first ``n_frozen`` blocks do not train: their parameters have
    ``requires_grad=False``, they run without autograd and stay in eval mode
    (so batch-norm statistics do not drift).
    """

    def __init__(self, blocks: list[nn.Module], n_frozen: int = 0):
        super().__init__()
        assert 0 <= n_frozen <= len(blocks)
        self.blocks = nn.ModuleList(blocks)
        self.n_frozen = n_frozen
        for block in self.blocks[:n_frozen]:
            block.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = images  # (N, 3, S, S)
        with torch.no_grad():
            for block in self.blocks[: self.n_frozen]:
                h = block(h)
        for block in self.blocks[self.n_frozen :]:
            h = block(h)
        if h.ndim == 4:
            h = h.mean(dim=(2, 3))  # (N, D)
        return h.flatten(1)

    def extra_repr(self) -> str:
        return f"n_frozen={self.n_frozen}"

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self.blocks[: self.n_frozen]:
            block.train(False)
        return self


def _torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _blocks_of(model: nn.Module) -> list[nn.Module]:
    """Split a torchvision classifier below its head into blocks."""
    import torchvision

    if isinstance(model, torchvision.models.VGG):
        blocks, current = [], []
        for layer in model.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):  # a VGG block ends with a pool
                blocks.append(nn.Sequential(*current))
                current = []
        if current:
            blocks.append(nn.Sequential(*current))
        return blocks
    if isinstance(model, torchvision.models.ResNet):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    if isinstance(model, torchvision.models.SwinTransformer):
        # Swin's features are channels-last (N, H, W, C): its own final norm
        # and permute give (N, C, H, W) maps, which the encoder then pools.
        return [*model.features, model.norm, model.permute]
    for name in ("aux_logits",):  # GoogLeNet, Inception v3: one output in training
        if getattr(model, name, False):
            setattr(model, name, False)
            for aux in ("AuxLogits", "aux1", "aux2"):
                if hasattr(model, aux):
                    setattr(model, aux, None)
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        blocks = list(features)
        if isinstance(model, torchvision.models.DenseNet):
            blocks.append(nn.ReLU())
        return blocks
    # Any other model: the whole network with its classifier replaced.
    for name in ("fc", "heads", "head", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Sequential) and any(
            isinstance(m, nn.Linear) for m in head
        ):
            last = max(i for i, m in enumerate(head) if isinstance(m, nn.Linear))
            head[last] = nn.Identity()
            return [model]
        if isinstance(head, nn.Module):
            setattr(model, name, nn.Identity())
            return [model]
    raise ValueError(
        f"backbone {type(model).__name__} has no classifier (fc, heads, head or "
        "classifier) to remove; pass an nn.Module that maps images to vectors."
    )


def _is_safetensors(path: str) -> bool:
    """A ``.safetensors`` name, or a file that starts as one: an 8-byte
    little-endian header length, then the JSON header."""
    if path.endswith(".safetensors"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:
        return False
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 2 <= n <= size - 8


def _load_state_dict(path: str) -> dict:
    """A state_dict from a file, without running code: a safetensors file
    (``safetensors.torch.load_file``) or a ``torch.save`` file read with
    ``torch.load(weights_only=True)`` (tensors and plain containers only)."""
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ValueError(
            f"weights={path!r} could not be read as a PyTorch state_dict "
            f"(unreadable, truncated, or a pickle of objects, which is never "
            f"loaded: {lines[0]}); save one with "
            "torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file(model.state_dict(), path)."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"weights={path!r} does not hold a state_dict (a dict of tensors); "
            "save one with torch.save(model.state_dict(), path)."
        )
    return state


def _apply_state_dict(model: nn.Module, state: dict, label: str, backbone) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        own = model.state_dict()
        missing = sorted(set(own) - set(state))[:3]
        unexpected = sorted(set(state) - set(own))[:3]
        resized = sorted(
            k for k in set(own) & set(state) if own[k].shape != state[k].shape
        )[:3]
        raise ValueError(
            f"weights={label!r} does not fit backbone={backbone!r} (missing keys "
            f"{missing}, unexpected keys {unexpected}, other shapes {resized}); "
            "give a state_dict saved from the same architecture."
        ) from None


def _resolve_weights_enum(backbone: str, weights):
    import torchvision

    if isinstance(weights, torchvision.models.WeightsEnum):
        return weights
    try:
        if "." in weights:
            return torchvision.models.get_weight(weights)
        return torchvision.models.get_model_weights(backbone)[weights]
    except (KeyError, ValueError, AttributeError):
        options = [w.name for w in torchvision.models.get_model_weights(backbone)]
        raise ValueError(
            f"weights={weights!r} is neither a file nor a torchvision weights "
            f"name for {backbone!r}; its weights are {options} (or None, or a "
            "path to a local state_dict)."
        ) from None


def _cached_weights(backbone: str, weights) -> dict:
    """The state_dict of torchvision weights from the local torch hub cache;
    no network is assumed, so a missing file is an error that says where to
    put it."""
    enum = _resolve_weights_enum(backbone, weights)
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if not file.is_file():
        raise ValueError(
            f"weights={weights!r} needs {file.name}, which is not in the local "
            f"torch hub cache ({file.parent}); no download is attempted. Copy "
            "the file there, or pass a path to a local state_dict."
        )
    return _load_state_dict(str(file))


def _looks_like_path(value) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if isinstance(value, str) and os.path.isfile(value):
        return True
    return isinstance(value, str) and (
        os.sep in value
        or "/" in value
        or value.endswith((".pt", ".pth", ".bin", ".safetensors"))
    )


def build_encoder(
    backbone, weights=None, trainable_layers=None, image_size: int = 224
) -> tuple[ImageEncoder, int]:
    """``(encoder, embedding_dim)`` for the estimator's backbone parameters.

    Raises ValueError/TypeError naming the parameter for an unknown backbone,
    weights that cannot be found or do not fit, a bad ``trainable_layers``
    or an ``image_size`` the backbone cannot encode.
    """
    if isinstance(backbone, nn.Module):
        model = copy.deepcopy(backbone)  # fit must not train the user's module
        if weights is not None:
            if not _looks_like_path(weights) or not os.path.isfile(weights):
                raise ValueError(
                    f"weights={weights!r}: with an nn.Module backbone, weights "
                    "is None or the path of an existing state_dict file."
                )
            _apply_state_dict(
                model, _load_state_dict(os.fspath(weights)), weights, "module"
            )
        blocks = list(model) if isinstance(model, nn.Sequential) else [model]
        label = type(backbone).__name__
    elif isinstance(backbone, str):
        label = backbone
        if backbone == "small_vgg":
            model = small_vgg()
        else:
            import torchvision

            names = _torchvision_models()
            if backbone not in names:
                close = difflib.get_close_matches(backbone, names + ["small_vgg"])
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"backbone={backbone!r} is not a torchvision classification "
                    f"model.{hint} Use one of torchvision.models.list_models("
                    "module=torchvision.models), 'small_vgg', or an nn.Module."
                )
            model = torchvision.models.get_model(backbone, weights=None)
        if weights is not None:
            if _looks_like_path(weights):
                if not os.path.isfile(weights):
                    raise ValueError(
                        f"weights={os.fspath(weights)!r} is not an existing file; "
                        "give the path of a saved state_dict."
                    )
                state, source = _load_state_dict(os.fspath(weights)), weights
            elif backbone == "small_vgg":
                raise ValueError(
                    f"weights={weights!r}: 'small_vgg' has no published weights; "
                    "use None or the path of a saved state_dict."
                )
            else:
                state, source = _cached_weights(backbone, weights), weights
            _apply_state_dict(model, state, os.fspath(source), backbone)
        blocks = list(model) if backbone == "small_vgg" else _blocks_of(model)
    else:
        raise TypeError(
            f"backbone must be a torchvision model name, 'small_vgg' or an "
            f"nn.Module, got {type(backbone).__name__}."
        )

    n_blocks = len(blocks)
    if trainable_layers is None:
        n_frozen = 0
    elif (
        isinstance(trainable_layers, numbers.Integral)
        and not isinstance(trainable_layers, bool)
        and 0 <= trainable_layers <= n_blocks
    ):
        n_frozen = n_blocks - int(trainable_layers)
    else:
        raise ValueError(
            f"trainable_layers={trainable_layers!r}; backbone {label!r} has "
            f"{n_blocks} blocks, so use an int from 0 (frozen) to {n_blocks}, "
            "or None to train all of them."
        )
    if (
        not isinstance(image_size, numbers.Integral)
        or isinstance(image_size, bool)
        or image_size < 1
    ):
        raise ValueError(
            f"image_size must be a positive integer (pixels), got {image_size!r}."
        )
    encoder = ImageEncoder(blocks, n_frozen)
    encoder.eval()
    try:
        with torch.no_grad():
            probe = encoder(torch.zeros(2, 3, image_size, image_size))
    except (RuntimeError, AssertionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = (
            "this backbone needs the image size it was built for (e.g. 224 for "
            "the ViTs)"
            if isinstance(exc, AssertionError)
            else "use a larger image_size"
        )
        raise ValueError(
            f"backbone {label!r} cannot encode {image_size}x{image_size} images "
            f"({reason}); {fix}."
        ) from None
    encoder.train()
    if probe.ndim != 2:
        raise ValueError(
            f"backbone {label!r} returns shape {tuple(probe.shape)} per batch; it "
            "must return (N, D) vectors or (N, D, h, w) feature maps."
        )
    return encoder, int(probe.shape[1])
