"""Utilities for the library's users and its test suite."""

from .discovery import all_estimators

__all__ = ["all_estimators"]
