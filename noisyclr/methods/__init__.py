"""Method registry: ``method.name`` → class. Each class carries its own ``Config`` dataclass."""

from __future__ import annotations

import difflib

from ..errors import UserError
from .base import Method, MethodConfig
from .bpt_plr import BPTPLR
from .dividemix import DivideMix
from .mwnet import MWNet
from .plremix import PLReMix
from .simclr import SimCLR
from .standard import Standard

METHODS: dict[str, type[Method]] = {
    "standard": Standard,
    "dividemix": DivideMix,
    "plremix": PLReMix,
    "mwnet": MWNet,
    "simclr": SimCLR,
    "bpt_plr": BPTPLR,
}


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (UserError with the closest name otherwise)."""
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown method.name '{name}'; {hint}available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_config_class(name: str) -> type[MethodConfig]:
    """The config dataclass of method ``name``."""
    return get_method(name).Config


__all__ = ["METHODS", "Method", "MethodConfig", "get_method", "method_config_class"]
