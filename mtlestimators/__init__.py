"""mtlestimators: multi-task learning models as scikit-learn estimators.

Estimators are scikit-learn compatible and train with skorch. Loss weighters
and gates are plugins found through entry points (:mod:`mtlestimators.plugins`).
"""

from importlib.metadata import PackageNotFoundError, version

from ._core.base import NetEstimatorBase
from ._core.classifier import MultiTaskClassifierBase
from ._core.net import TrainingDivergedError
from .autotask import (
    AutoTaskClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
)
from .export import export_onnx, export_torch
from .gallery import GalleryEmbedder, GalleryIndex
from .metrics import per_task_scores
from .tabular import (
    CrossStitchClassifier,
    MMoEClassifier,
    MSSMClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SingleTaskMLPClassifier,
    SNRClassifier,
)

try:
    __version__ = version("mtlestimators")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AutoTaskClassifier",
    "CrossStitchClassifier",
    "GalleryEmbedder",
    "GalleryIndex",
    "MMoEClassifier",
    "MSSMClassifier",
    "MultiTaskClassifierBase",
    "MultiTaskDNNClassifier",
    "NetEstimatorBase",
    "PLEClassifier",
    "PerTaskCalibratedClassifier",
    "SNRClassifier",
    "SharedBottomClassifier",
    "SingleTaskMLPClassifier",
    "TrainingDivergedError",
    "export_onnx",
    "export_torch",
    "per_task_scores",
    "__version__",
]
