"""Rendering the shards of data_simulation here, in a local process pool and on a Dask LocalCluster.

Usage::

    python benchmarks/bench_execution.py [--workers 2] [--clips-per-split unlabeled=480 ...] [--workdir DIR]

The default corpus of conf/base (or the sizes given) is written once; its render plan
(:func:`~mc_simclr.acoustics.render.plan_render_shards`) is then saved three times into fresh folders,
by ``execution.backend`` ``local``, ``processes`` and ``dask`` with ``--workers`` workers. Printed:
wall seconds of each, the speed-up against ``local`` measured in the same run, the peak resident
memory of the driver (local) and of the largest worker (processes, dask), and whether every backend
wrote the same bytes as ``local``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:  # the checkout's package when mc_simclr is not installed
    import mc_simclr  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "src"))

from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips
from mc_simclr.audio.corpora import build_clip_table
from mc_simclr.execution import ShardPlan, dask_client, run_tasks
from mc_simclr.params import load_parameters
from mc_simclr.shards import complete_shards, save_shards, write_shard


def _max_rss_gib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 2**20  # kB on Linux


def _worker_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clips-per-split", nargs="*", default=[], metavar="SPLIT=N", help="corpus sizes")
    parser.add_argument("--workdir", type=Path, help="folder for the corpus and the shards (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    params = load_parameters(REPO / "conf")
    corpus = params["corpus"]
    for item in args.clips_per_split:
        split, _, count = item.partition("=")
        corpus["synthetic"]["clips_per_split"][split] = int(count)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_execution_"))
    corpus["synthetic"]["root"] = str(workdir / "corpus")
    sample_rate = int(params["audio"]["sample_rate"])
    table, _ = build_clip_table(corpus, sample_rate)
    simulation = params["simulation"]
    plan = plan_render_shards(table, scenes_for_clips(table, simulation), simulation, sample_rate)
    print(f"{len(table)} clips in {len(plan)} shards, {args.workers} workers", flush=True)

    results: dict[str, dict[str, float]] = {}
    reference: dict[str, bytes] = {}
    for backend in ("local", "processes", "dask"):
        root = workdir / f"shards_{backend}"
        execution = {"backend": backend, "workers": args.workers}
        started = time.perf_counter()
        if backend == "dask":  # the cluster's start is timed too; the workers' memory is asked before it stops
            config = ShardPlan({}, execution).execution
            client = dask_client(config)
            try:
                root.mkdir(parents=True, exist_ok=True)
                run_tasks(root, plan, write_shard, config, "rendering", client=client)
                peak = max(client.run(_worker_rss_kb).values()) / 2**20
            finally:
                cluster = client.cluster
                client.close()
                cluster.close()
        else:
            save_shards(root, ShardPlan(plan, execution))
            peak = _max_rss_gib(resource.RUSAGE_SELF if backend == "local" else resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - started
        written = {sid: (root / sid / "audio.npy").read_bytes() for sid in complete_shards(root)}
        reference = reference or written
        results[backend] = {"wall_s": wall, "peak_rss_gib": peak, "identical": float(written == reference)}
    local = results["local"]["wall_s"]
    print(f"\n{'backend':<10} {'wall s':>8} {'speed-up':>9} {'peak RSS GiB':>13}  same bytes as local")
    for backend, result in results.items():
        speedup = local / result["wall_s"]
        same = "yes" if result["identical"] else "NO"
        print(f"{backend:<10} {result['wall_s']:>8.1f} {speedup:>8.2f}x {result['peak_rss_gib']:>13.2f}  {same}")
    print("(peak RSS: the driver for local; the largest worker for processes and dask)")
    return results


if __name__ == "__main__":
    main()
