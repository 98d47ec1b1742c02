"""General helpers that own no concept of the method: digests, seeding, atomic writes, nested blocks.

Every module that writes a file the project reads back later writes it through :func:`atomic_path`
(a temporary name in the same folder, renamed into place), so an interrupted run never leaves a file
that looks complete.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def fingerprint(payload: Mapping[str, Any]) -> str:
    """A short, stable digest of a JSON-serialisable mapping (keys sorted; other values by ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for the draws of one epoch, independent of how many epochs ran before."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] % (2**63))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block succeeds.

    The parent folder is created. The file gets the permissions of a plain ``open`` under the
    process's umask (not the owner-only mode of a temporary file). On any error the temporary file
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def torch_save_atomic(path: str | Path, obj: Any) -> None:
    """``torch.save`` through :func:`atomic_path`: a crash never leaves a torn file."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key (inputs are not modified).

    The same soft merge that the project's config loader applies across environments.
    """
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(prefix: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested blocks as one level of dotted keys: ``flatten("a", {"b": {"c": 1}}) == {"a.b.c": 1}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out
