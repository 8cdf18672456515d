"""Find the library's public estimators (for the common test harness)."""

from __future__ import annotations

import inspect

from sklearn.base import BaseEstimator


def all_estimators() -> list[tuple[str, type]]:
    """``(name, class)`` of every public, concrete estimator in ``mtlestimators``,
    sorted by name. An estimator is public when its name is in the package's
    ``__all__``; abstract bases (names ending in ``Base``) are left out."""
    import mtlestimators

    found = []
    for name in mtlestimators.__all__:
        obj = getattr(mtlestimators, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, BaseEstimator)
            and not inspect.isabstract(obj)
            and not name.endswith("Base")
        ):
            found.append((name, obj))
    return sorted(found)
