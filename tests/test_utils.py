"""General helpers: atomic writes (whole file or nothing, ordinary permissions), merges, digests."""

from __future__ import annotations

import os
import stat

import pytest

from mc_simclr.utils import atomic_path, deep_merge, epoch_seed, fingerprint, flatten, write_text_atomic


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    write_text_atomic(target, "first")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]  # no temporary left


def test_atomic_files_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640  # not a temporary file's 0600


def test_deep_merge_flatten_and_digests():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 0}
    merged = deep_merge(base, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": [1, 2]}, "d": 0}
    assert base["a"]["b"] == 1
    merged["a"]["c"].append(3)
    assert base["a"]["c"] == [1, 2]  # a copy, not a view
    assert flatten("x", {"a": {"b": 1}, "c": 2}) == {"x.a.b": 1, "x.c": 2}
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1}) != fingerprint({"a": 2, "b": 2})
    assert epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2)
