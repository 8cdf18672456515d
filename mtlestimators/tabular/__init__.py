"""The MSSM paper's tabular family: MSSM and its Table 1 baselines (shared
bottom, cross-stitch, MMoE, SNR, PLE, single-task) over categorical and
numeric fields."""

from ._cross_stitch import CrossStitchClassifier
from ._mmoe import MMoEClassifier
from ._mssm import MSSMClassifier
from ._ple import PLEClassifier
from ._shared_bottom import SharedBottomClassifier
from ._single_task import SingleTaskMLPClassifier
from ._snr import SNRClassifier

__all__ = [
    "CrossStitchClassifier",
    "MMoEClassifier",
    "MSSMClassifier",
    "PLEClassifier",
    "SNRClassifier",
    "SharedBottomClassifier",
    "SingleTaskMLPClassifier",
]
