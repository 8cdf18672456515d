"""Data sets for examples, tests and benchmarks; all load offline."""

from ._adult import (
    ADULT_COLUMNS,
    load_adult,
    load_adult_multitask,
    load_adult_scenarios,
)
from ._galleries import load_mnist_5k, make_digit_galleries
from ._synthetic import make_multitask_classification

__all__ = [
    "ADULT_COLUMNS",
    "load_adult",
    "load_adult_multitask",
    "load_adult_scenarios",
    "load_mnist_5k",
    "make_digit_galleries",
    "make_multitask_classification",
]
