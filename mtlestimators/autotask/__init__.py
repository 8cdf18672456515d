"""The AutoTask paper's family: AutoTask, its production baseline
MultiTaskDNN, and per-task calibration, over numeric features plus a task-id
(scenario) column."""

from ._autotask import AutoTaskClassifier
from ._calibration import PerTaskCalibratedClassifier
from ._multitask_dnn import MultiTaskDNNClassifier

__all__ = [
    "AutoTaskClassifier",
    "MultiTaskDNNClassifier",
    "PerTaskCalibratedClassifier",
]
