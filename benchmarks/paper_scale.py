"""The paper's configuration at FSDnoisy18k's size, stage by stage: wall time, peak memory and disk.

Usage::

    python benchmarks/paper_scale.py --workdir /big/disk/paper_scale [--fractions 0.125 0.25 0.5 1]
        [--stages data_simulation feature_extraction pretraining evaluation] [--max-steps 3] [--batch-size 512]
        [--storage-dtype float32] [--dtype-check] [--clean]

For each fraction of FSDnoisy18k's size, a synthetic stand-in in its released layout
(``scripts/make_fsdnoisy18k_standin.py``) is written once under ``--workdir``, then every stage
of ``kedro run --env=paper`` runs in its own process under ``/usr/bin/time -v`` in a project folder
of that fraction (a copy of ``conf/`` with overrides merged into its ``conf/paper``: the stand-in as corpus,
``pretraining.max_steps`` optimizer steps at the paper's batch of 512 (``--batch-size``), two linear-probe epochs and
one fine-tuning epoch, no subsets). Printed and written to ``--workdir/paper_scale.csv``: stage,
fraction, hours of audio, wall seconds, peak resident memory (the largest process), and the disk the
stage added (a stage and fraction measured again replaces its row). With ``--dtype-check``, the
largest difference between the features of shards stored as float32 and as int16 / float16 (the
same clips) is printed too.

A script for the CPU machine (it runs Kedro); the GPU path is ``benchmarks/gpu_experiment.py``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("data_simulation", "feature_extraction", "pretraining", "evaluation")


def make_project(folder: Path, corpus: Path, max_steps: int, storage_dtype: str, batch_size: int = 512) -> Path:
    """A project folder of one fraction: ``conf/`` and ``pyproject.toml`` of this checkout, bounded runs."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")
    if (folder / "conf").exists():
        shutil.rmtree(folder / "conf")
    shutil.copytree(REPO / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir()
    (folder / "src").mkdir(exist_ok=True)
    overrides = {
        "corpus": {"fsdnoisy18k": {"root": str(corpus)}},
        "simulation": {"storage_dtype": storage_dtype},
        "pretraining": {"max_steps": max_steps, "num_workers": 2, "batch_size": batch_size},
        "evaluation": {
            "supervised": {"probe_epochs": 2, "finetune_epochs": 1, "warmup_epochs": 0},
            "subsets": {"amounts": []},
        },
    }
    merge_into_environment(folder / "conf" / "paper", overrides)
    return folder


def merge_into_environment(env: Path, overrides: dict) -> None:
    """Deep-merge ``overrides`` into the parameter files of one environment's folder.

    ``kedro run --env=paper`` loads conf/base and conf/paper, not conf/local, and a top-level key may
    stand in only one file of an environment, so each override goes into the file that holds its key.
    """

    def merge(into: dict, update: dict) -> dict:
        for key, value in update.items():
            into[key] = merge(dict(into.get(key) or {}), value) if isinstance(value, dict) else value
        return into

    files = {path: yaml.safe_load(path.read_text()) or {} for path in sorted(env.glob("parameters*.yml"))}
    for key, value in overrides.items():
        owner = next((path for path, content in files.items() if key in content), env / "parameters_scale.yml")
        content = files.setdefault(owner, {})
        content[key] = merge(dict(content.get(key) or {}), value)
    for path, content in files.items():
        path.write_text(yaml.safe_dump(content, sort_keys=False))


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run_stage(project: Path, stage: str) -> dict[str, float]:
    """One stage under ``/usr/bin/time -v``: wall seconds, peak resident memory, disk added."""
    before = disk_bytes(project / "data")
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "kedro", "run", "--env=paper", f"--pipeline={stage}"]
    env = {"KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "MPLBACKEND": "Agg"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env={**os.environ, **env})
    wall = time.perf_counter() - started
    (project / f"{stage}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed in {project} (see {project / f'{stage}.log'}):\n{done.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"wall_s": wall, "peak_rss_gib": rss_kb / 2**20, "disk_gb": (disk_bytes(project / "data") - before) / 1e9}


def dtype_check(project: Path, clips: int = 64) -> dict[str, dict[str, float]]:
    """|difference| of log-Mel and GCC-PHAT features between float32 and compact storage of the same clips:
    max, 99th percentile and mean over every bin, and the float32 features' range."""
    from mc_simclr.features import FeatureExtractor
    from mc_simclr.params import load_parameters
    from mc_simclr.shards import ShardedAudio, from_storage, to_storage

    params = load_parameters(project / "conf", "paper")
    extractor = FeatureExtractor.from_params(params["features"], int(params["audio"]["sample_rate"]))
    audio = ShardedAudio(project / "data" / "03_primary" / "spatial_audio")
    ids = audio.metadata.loc[audio.metadata["status"] == "ok", "clip_id"].to_numpy()[:clips]
    crops = np.stack([np.pad(a := audio.load_clip(c, 0, 16000), ((0, 0), (0, 16000 - a.shape[1]))) for c in ids])
    reference = extractor(torch.from_numpy(crops)).numpy()
    out = {}
    for dtype in ("int16", "float16"):
        stored = extractor(torch.from_numpy(from_storage(to_storage(crops, dtype)))).numpy()
        difference = np.abs(stored - reference)
        mel, gcc = difference[:, : extractor.n_mics], difference[:, extractor.n_mics :]
        out[dtype] = {
            "log_mel_max_abs": float(mel.max()),
            "log_mel_p99_abs": float(np.percentile(mel, 99)),
            "log_mel_mean_abs": float(mel.mean()),
            "gcc_max_abs": float(gcc.max()),
            "gcc_p99_abs": float(np.percentile(gcc, 99)),
            "gcc_mean_abs": float(gcc.mean()),
        }
    out["float32 range"] = {
        "log_mel": [float(reference[:, : extractor.n_mics].min()), float(reference[:, : extractor.n_mics].max())],
        "gcc": [float(reference[:, extractor.n_mics :].min()), float(reference[:, extractor.n_mics :].max())],
    }
    return out


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="folder for the stand-ins and the runs (large)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--max-steps", type=int, default=3, help="pretraining optimizer steps")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=512,
        help="pretraining batch (default 512, the paper's: about 22 GiB on a CPU; a smaller one leaves memory "
        "for other work when only the other stages are measured)",
    )
    parser.add_argument("--storage-dtype", default="float32", choices=("float32", "int16", "float16"))
    parser.add_argument("--dtype-check", action="store_true", help="features of compact storage against float32")
    parser.add_argument("--clean", action="store_true", help="delete each fraction's data and stand-in once measured")
    args = parser.parse_args(argv)
    from mc_simclr.audio.corpora import write_fsdnoisy18k_standin

    rows: list[dict[str, object]] = []
    for fraction in args.fractions:
        corpus = args.workdir / f"standin_{fraction:g}"
        started = time.perf_counter()
        write_fsdnoisy18k_standin(corpus, fraction)
        print(
            f"stand-in {fraction:g}: {time.perf_counter() - started:.0f} s, {disk_bytes(corpus) / 1e9:.1f} GB",
            flush=True,
        )
        project = make_project(
            args.workdir / f"project_{fraction:g}", corpus, args.max_steps, args.storage_dtype, args.batch_size
        )
        hours = audio_hours(corpus)
        for stage in args.stages:
            result = run_stage(project, stage)
            row = {"stage": stage, "fraction": fraction, "audio_h": round(hours, 2), **result}
            rows.append(row)
            print(
                f"{stage:<20} {fraction:>6g} {row['audio_h']:>8.2f} h {result['wall_s']:>9.0f} s "
                f"{result['peak_rss_gib']:>7.2f} GiB {result['disk_gb']:>8.2f} GB",
                flush=True,
            )
        if args.dtype_check:
            print(f"compact storage, features against float32 ({fraction:g}): {dtype_check(project)}", flush=True)
        if args.clean:  # the next fraction needs the disk
            shutil.rmtree(project / "data", ignore_errors=True)
            shutil.rmtree(corpus, ignore_errors=True)
    save_rows(args.workdir / "paper_scale.csv", rows)
    return rows


def save_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Merge ``rows`` into the CSV at ``path``: a (stage, fraction) measured again replaces its old row."""
    if not rows:
        return
    kept = []
    if path.is_file():
        with open(path, newline="") as file:
            new = {(row["stage"], float(row["fraction"])) for row in rows}
            kept = [row for row in csv.DictReader(file) if (row["stage"], float(row["fraction"])) not in new]
    merged = sorted([*kept, *rows], key=lambda row: (float(row["fraction"]), STAGES.index(row["stage"])))
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(merged)
    temporary.replace(path)


def audio_hours(corpus: Path) -> float:
    """Hours of source audio in the stand-in (all splits)."""
    import soundfile as sf

    seconds = 0.0
    for path in corpus.glob("FSDnoisy18k.audio_*/*.wav"):
        info = sf.info(str(path))
        seconds += info.frames / info.samplerate
    return seconds / 3600.0


if __name__ == "__main__":
    main()
