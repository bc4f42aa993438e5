"""Derived views of a stack's config, computed once per config instead of once per workload.

The config is frozen, so anything derived from it (the enabled workloads, who calls whom) can be
computed on first use and kept. Per-workload code then looks views up instead of rebuilding them
from the whole catalog on every call, which made render time grow with the square of the services.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class HasViews(Protocol):
    """A frozen config object with somewhere to keep its views (``PlatformConfig``)."""

    _views: dict[str, Any]


C = TypeVar("C", bound=HasViews)

#: Marks which instance a views dict belongs to: ``model_copy`` shares private attributes, and
#: a copy with an updated field must not see views computed from the original.
_OWNER = "__owner__"


#: Every function decorated with ``view`` (tests/test_scale.py checks each runs once per config).
VIEWS: list[Callable[..., Any]] = []


def view(compute: Callable[[C], T]) -> Callable[[C], T]:
    """Decorate a function of the config alone: computed once per config instance, then kept."""
    key = f"{compute.__module__}.{compute.__qualname__}"
    VIEWS.append(compute)

    @functools.wraps(compute)
    def cached(cfg: C) -> T:
        views = cfg._views
        if views.get(_OWNER) is not cfg:
            views = {_OWNER: cfg}
            cfg._views = views
        if key not in views:
            views[key] = compute(cfg)
        result: T = views[key]
        return result

    return cached
