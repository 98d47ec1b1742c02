"""Where the shards of a stage are computed: in this process, in a local pool, or on a Dask cluster.

Every shard of ``data_simulation`` and ``feature_extraction`` is independent: a task computes one
shard and writes it atomically to the shared data folder (:func:`mc_simclr.shards.write_shard_atomically`),
and returns only its id. The driver never receives audio, and reads the tables from the shard
folders afterwards, exactly as after a local run. Shards that are already complete are skipped
before any task is submitted; a failed task is retried once, then the run stops with the shard and
the error (which names the clip that broke it).

``execution`` parameter block::

    execution:
      backend: local          # local (one after the other, in this process) | processes | dask
      workers: 2              # processes: pool size; dask without address: LocalCluster workers
      dask:
        address: null         # a running scheduler, e.g. tcp://10.0.0.5:8786; null: a LocalCluster
        timeout_s: 10         # how long to try to reach it

Tasks that share this machine (``processes``, and ``dask`` with a LocalCluster) each get the driver's
torch threads divided among the workers (at least one), so the pool does not oversubscribe the
cores; tasks on a remote cluster use the driver's count. The shards are identical to the local
backend's, bit for bit (``tests/test_execution.py``): the RIR rendering and the feature transforms
give the same sums with 1 and 2 threads. Dask is imported only when ``backend: dask`` asks for it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mc_simclr.params import check_keys, check_values

logger = logging.getLogger(__name__)

BACKENDS = ("local", "processes", "dask")


class ShardTaskError(RuntimeError):
    """A shard that failed twice (the error names the shard, and the clip where one broke it)."""


@dataclass(frozen=True)
class ExecutionConfig:
    """The ``execution`` parameter block."""

    backend: str = "local"
    workers: int = 2
    dask: dict[str, Any] = field(default_factory=lambda: {"address": None, "timeout_s": 10})

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, name: str = "execution") -> ExecutionConfig:
        params = dict(params or {})
        check_keys(params, ("backend", "workers", "dask"), name)
        dask = {"address": None, "timeout_s": 10, **(params.get("dask") or {})}
        check_keys(dask, ("address", "timeout_s"), f"{name}.dask")
        config = cls(str(params.get("backend", "local")), int(params.get("workers", 2)), dask)
        check_values(
            {
                "backend": config.backend in BACKENDS,
                "workers": config.workers >= 1,
                "dask.timeout_s": float(dask["timeout_s"]) > 0,
            },
            name,
            f"backend={config.backend!r} (one of {list(BACKENDS)}), workers={config.workers}, "
            f"dask.timeout_s={dask['timeout_s']}",
        )
        return config


class ShardPlan(dict):
    """``{shard_id: shard data or a callable computing it}`` with the ``execution`` block to compute it by."""

    def __init__(self, shards: Mapping[str, Any], execution: Mapping[str, Any] | None = None) -> None:
        super().__init__(shards)
        self.execution = ExecutionConfig.from_params(execution)


def _compute_and_write(
    root: str, shard_id: str, value: Any, writer: Callable[[Path, str, Any], Path], threads: int
) -> str:
    """One task: compute the shard (when ``value`` is a callable) and write it atomically; its id."""
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    writer(Path(root), shard_id, value() if callable(value) else value)
    return shard_id


def _failed(shard_id: str, error: BaseException) -> ShardTaskError:
    return ShardTaskError(f"shard {shard_id} failed twice; last error: {type(error).__name__}: {error}")


def run_tasks(
    root: Path,
    todo: Mapping[str, Any],
    writer: Callable[[Path, str, Any], Path],
    config: ExecutionConfig,
    desc: str,
    client: Any = None,
) -> None:
    """Compute and write every shard of ``todo`` with ``config.backend``; each retried once.

    ``client``: a ``distributed.Client`` to use (and leave open) for the dask backend.
    """
    threads = task_threads(config)
    if config.backend == "local":
        for shard_id in tqdm(sorted(todo), desc=desc, unit="shard"):
            _with_retry(shard_id, lambda s=shard_id: _compute_and_write(str(root), s, todo[s], writer, threads))
    elif config.backend == "processes":
        _run_pool(root, todo, writer, config, desc, threads)
    else:
        _run_dask(root, todo, writer, config, desc, threads, client)


def task_threads(config: ExecutionConfig) -> int:
    """Torch threads of one task: the driver's, shared among the workers when they share its cores."""
    threads = torch.get_num_threads()
    shares_machine = config.backend == "processes" or (config.backend == "dask" and not config.dask.get("address"))
    return max(1, threads // config.workers) if shares_machine else threads


def _with_retry(shard_id: str, task: Callable[[], Any]) -> Any:
    try:
        return task()
    except Exception as first:  # noqa: BLE001 - any failure is retried once
        logger.warning("shard %s failed (%s: %s); retrying once", shard_id, type(first).__name__, first)
        try:
            return task()
        except Exception as second:  # noqa: BLE001
            raise _failed(shard_id, second) from second


def _run_pool(root, todo, writer, config: ExecutionConfig, desc: str, threads: int) -> None:
    context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive a fork
    with concurrent.futures.ProcessPoolExecutor(config.workers, mp_context=context) as pool:

        def submit(shard_id):
            return pool.submit(_compute_and_write, str(root), shard_id, todo[shard_id], writer, threads)

        pending = {submit(s): (s, 0) for s in sorted(todo)}
        with tqdm(total=len(todo), desc=f"{desc} ({config.workers} processes)", unit="shard") as bar:
            while pending:
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    shard_id, attempt = pending.pop(future)
                    error = future.exception()
                    if error is None:
                        bar.update()
                    elif attempt == 0:
                        logger.warning("shard %s failed (%s); retrying once", shard_id, error)
                        pending[submit(shard_id)] = (shard_id, 1)
                    else:
                        for other in pending:
                            other.cancel()
                        raise _failed(shard_id, error) from error


def dask_client(config: ExecutionConfig):
    """A ``distributed.Client``: to ``execution.dask.address``, or to a new LocalCluster of ``workers``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ImportError(
            "execution.backend: dask needs Dask's distributed scheduler: pip install 'mc-simclr[dask]'"
        ) from err
    address, timeout = config.dask.get("address"), float(config.dask["timeout_s"])
    if not address:
        cluster = LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster, timeout=timeout)
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"execution.dask.address: no Dask scheduler answered at {address} within {timeout:g} s ({err})"
        ) from err


def _run_dask(root, todo, writer, config: ExecutionConfig, desc: str, threads: int, client: Any = None) -> None:
    from distributed import as_completed

    own = client is None
    client = dask_client(config) if own else client
    try:
        futures = {
            client.submit(
                _compute_and_write,
                str(root),
                shard_id,
                todo[shard_id],
                writer,
                threads,
                key=f"shard-{shard_id}",
                retries=1,
                pure=False,
            ): shard_id
            for shard_id in sorted(todo)
        }
        with tqdm(total=len(todo), desc=f"{desc} (dask)", unit="shard") as bar:
            for future in as_completed(futures):
                if future.status == "error":
                    error = future.exception()
                    client.cancel(list(futures))
                    raise _failed(futures[future], error) from error
                bar.update()
    finally:
        if own:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not config.dask.get("address"):
                cluster.close()
