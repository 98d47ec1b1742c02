"""Checks shared by every settings object built from a parameter block."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def check_keys(params: Mapping[str, Any], known: Iterable[str], name: str) -> None:
    """Raise ``ValueError`` naming ``name.<key>`` for every key of ``params`` not in ``known``."""
    known = set(known)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"Unknown parameter(s) {[f'{name}.{k}' for k in unknown]}; expected some of {sorted(known)}")


def check_values(checks: Mapping[str, bool], name: str, detail: Any = "") -> None:
    """Raise ``ValueError`` naming ``name.<key>`` for every check that failed."""
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"Invalid parameter(s) {[f'{name}.{k}' for k in bad]}" + (f": {detail}" if detail else ""))


def dataclass_from_params(cls: type[T], params: Mapping[str, Any], name: str) -> T:
    """``cls(**params)`` after checking that every key is a field of the dataclass ``cls``."""
    check_keys(params, (f.name for f in fields(cls)), name)
    return cls(**params)
