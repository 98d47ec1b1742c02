"""Parameter blocks: checks shared by every settings object, and reading ``conf/`` without Kedro."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mc_simclr.utils import deep_merge

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


def load_parameters(conf_dir: str | Path, env: str | None = None) -> dict[str, Any]:
    """The ``parameters*.yml`` of ``conf_dir/base``, with those of ``conf_dir/<env>`` merged softly over them.

    What the project's Kedro config loader gives a pipeline (the same files, the same soft merge;
    the project's YAML uses no resolvers), for code that runs without Kedro: the benchmarks, and the
    tests that take their sizes from an environment.
    """
    params: dict[str, Any] = {}
    for name in ("base", env) if env and env != "base" else ("base",):
        folder = Path(conf_dir) / name
        files = sorted(folder.glob("parameters*.yml")) + sorted(folder.glob("parameters*/**/*.yml"))
        if not files and name == "base":
            raise FileNotFoundError(f"no parameters*.yml in {folder}")
        layer: dict[str, Any] = {}
        for path in files:
            content = yaml.safe_load(path.read_text()) or {}
            if not isinstance(content, Mapping):
                raise ValueError(f"{path}: expected a mapping of parameter blocks, got {type(content).__name__}")
            duplicates = sorted(set(layer) & set(content))
            if duplicates:
                raise ValueError(f"{path}: block(s) {duplicates} are also defined in another file of {folder}")
            layer.update(content)
        params = deep_merge(params, layer)
    return params
