"""Method registry: ``method.name`` → class, each method's module imported only when it is asked for.

The config classes live in :mod:`noisyclr.method_configs` (no torch), so that a config can be typed and checked
before torch is imported; :func:`get_method` imports the method's own module on demand.
"""

from __future__ import annotations

import importlib

from ..method_configs import REGISTRY, MethodConfig, check_method_name, method_config_class


def get_method(name: str):
    """The method class registered as ``name`` (UserError with the closest name otherwise)."""
    check_method_name(name)
    _, module, cls = REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def method_names() -> list[str]:
    """The registered method names, sorted."""
    return sorted(REGISTRY)


def __getattr__(attr: str):
    # `Method` (the base class) and `METHODS` (name -> class) need torch: built on first use
    if attr == "Method":
        from .base import Method

        return Method
    if attr == "METHODS":
        return {name: get_method(name) for name in REGISTRY}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["METHODS", "Method", "MethodConfig", "get_method", "method_config_class", "method_names"]
