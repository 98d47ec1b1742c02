"""Parameter blocks: checks shared by every settings object, and reading ``conf/`` without Kedro."""

from __future__ import annotations

import re
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


_GLOBAL = re.compile(r"\$\{globals:([A-Za-z0-9_.]+)\}")


def _read_layer(folder: Path, patterns: tuple[str, ...], what: str) -> dict[str, Any]:
    files = sorted({path for pattern in patterns for path in folder.glob(pattern)})
    layer: dict[str, Any] = {}
    for path in files:
        content = yaml.safe_load(path.read_text()) or {}
        if not isinstance(content, Mapping):
            raise ValueError(f"{path}: expected a mapping of {what}, got {type(content).__name__}")
        duplicates = sorted(set(layer) & set(content))
        if duplicates:
            raise ValueError(f"{path}: block(s) {duplicates} are also defined in another file of {folder}")
        layer.update(content)
    return layer


def _resolve_globals(value: Any, known: Mapping[str, Any]) -> Any:
    """``${globals:key}`` (dotted keys) replaced by the value of ``globals.yml``, in every string."""
    if isinstance(value, Mapping):
        return {k: _resolve_globals(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_globals(v, known) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match) -> Any:
        node: Any = known
        for part in match[1].split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"globals.yml has no {match[1]!r} (used as {match[0]})")
            node = node[part]
        return node

    whole = _GLOBAL.fullmatch(value)
    if whole:  # a value that is only the reference keeps the global's type
        return lookup(whole)
    return _GLOBAL.sub(lambda match: str(lookup(match)), value)


def load_parameters(conf_dir: str | Path, env: str | None = None) -> dict[str, Any]:
    """The ``parameters*.yml`` of ``conf_dir/base``, with those of ``conf_dir/<env>`` merged softly over them.

    What the project's Kedro config loader gives a pipeline (the same files, the same soft merge,
    ``${globals:...}`` from ``globals.yml`` of base and the environment), for code that runs without
    Kedro: the benchmarks, and the tests that take their sizes from an environment.
    """
    params: dict[str, Any] = {}
    known: dict[str, Any] = {}
    for name in ("base", env) if env and env != "base" else ("base",):
        folder = Path(conf_dir) / name
        layer = _read_layer(folder, ("parameters*.yml", "parameters*/**/*.yml"), "parameter blocks")
        if not layer and name == "base":
            raise FileNotFoundError(f"no parameters*.yml in {folder}")
        params = deep_merge(params, layer)
        known.update(_read_layer(folder, ("globals.yml",), "globals"))
    return _resolve_globals(params, known)
