"""mtlestimators: multi-task learning models as scikit-learn estimators.

Estimators are scikit-learn compatible and train with skorch. Loss weighters
and gates are plugins found through entry points (:mod:`mtlestimators.plugins`).
"""

from importlib.metadata import PackageNotFoundError, version

from ._autotask import AutoTaskClassifier
from ._base import MultiTaskClassifierBase, NetEstimatorBase
from ._baselines import CrossStitchClassifier, PLEClassifier, SNRClassifier
from ._calibration import PerTaskCalibratedClassifier
from ._gallery import GalleryEmbedder
from ._gallery_index import GalleryIndex
from ._mmoe import MMoEClassifier
from ._mssm import MSSMClassifier
from ._multitask_dnn import MultiTaskDNNClassifier
from ._shared_bottom import SharedBottomClassifier
from .export import export_onnx, export_torch
from .metrics import per_task_scores

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
    "export_onnx",
    "export_torch",
    "per_task_scores",
    "__version__",
]
