"""End-to-end MC-SimCLR experiment without Kedro: wall time of every stage and the results table.

Usage::

    python benchmarks/gpu_experiment.py [--encoder split|paper] [--epochs N] [--batch-size N]
        [--device auto|cpu|cuda] [--unlabeled N] [--labeled N] [--validation N] [--test N]
        [--probe-epochs N] [--finetune-epochs N] [--num-workers N] [--workdir DIR] [--out DIR]
        [--precision float32 [bf16]] [--set SECTION.KEY=VALUE ...]

The data_simulation -> feature_extraction -> pretraining -> evaluation chain of the Kedro
pipelines, run with the Kedro-free library alone (no Kedro, no MLflow), so that it also runs on a
GPU machine that has only torch, torchaudio, numpy, scipy, pandas, pyarrow, tqdm, matplotlib,
pyyaml, torchrir and soundfile. Without an installed ``mc_simclr`` it imports the package from
this checkout's ``src/``.

Each stage calls the same library function as the pipeline's node:

1. corpus: :func:`~mc_simclr.audio.corpora.build_clip_table` on the embedded synthetic corpus,
   ``--unlabeled`` / ``--labeled`` / ``--validation`` / ``--test`` clips, written below ``--workdir``.
2. simulation: :func:`~mc_simclr.acoustics.render.scenes_for_clips` and
   :func:`~mc_simclr.acoustics.render.plan_render_shards`: one random shoebox scene per clip, RIRs
   from ``torchrir`` on ``--device``, the 4-channel clips written as audio shards (the convolution
   with the RIRs runs on the CPU, as in the pipeline).
3. features: :func:`~mc_simclr.features.plan_feature_shards`, log-Mel + GCC-PHAT patches of the
   labeled, validation and test clips (feature shards).
4. pretraining: :func:`~mc_simclr.pretraining.pretrain_from_params` on the unlabeled clips;
   ``--encoder split`` is the encoder of conf/base (split_crnn, one NT-Xent per branch),
   ``--encoder paper`` the paper's single CRNN of conf/paper (128 filters of 5 x 5, one NT-Xent on h).
5. evaluation: :func:`~mc_simclr.evaluation.prepare_evaluation` and
   :func:`~mc_simclr.evaluation.evaluate_encoder` (no subset fine-tuning) on the pretrained encoder
   and on a random-init encoder of the same shape.

Printed and written to ``--out`` (default: ``$OUT`` when set, else the work dir) as
``gpu_experiment_<encoder>.csv`` (the results table: accuracy in % and mean azimuth error in
degrees of the test clips per protocol, one row per encoder) and ``gpu_experiment_<encoder>.json``
(the table, the wall time of each stage, pretraining clips/s and loss per epoch, the settings used,
the device). Stage times close with ``torch.cuda.synchronize()`` on CUDA.

``--precision float32 bf16`` pretrains and evaluates once per ``pretraining.precision`` in the same
process and work dir (the second run finds the shards complete and goes straight to pretraining);
a run other than float32 writes ``gpu_experiment_<encoder>_<precision>.*``, and a last table
(printed, and ``gpu_experiment_<encoder>_precisions.csv``) puts the runs side by side: pretraining
time and clips/s, final loss, and the linear-probe and fine-tuning numbers of the pretrained
encoder. Without ``--precision``, the one of conf/base (or of ``--set pretraining.precision=...``).

Settings come from the YAML files of the checkout's ``conf/base`` (features at 16 kHz, scenes,
augmentations, supervised protocols, ...), with ``--encoder paper`` taking the ``encoder`` block and
the loss weights of ``conf/paper`` over them; then ``--set`` overrides (a YAML value at a dotted
path, e.g. ``--set features.hop_length=160``), then the options above. The pretraining warm-up is
capped at a quarter of the pretraining epochs (conf/base: 10 of 40), so that short runs stay valid.

``--workdir`` receives the corpus, the audio and feature shards, the pretraining checkpoint and
``encoder.pt``. Shards that are already complete there are kept (as in the pipelines), so a second
run in the same work dir (say with the other ``--encoder``) skips rendering and features; their
stage times then measure only that check, which the output notes.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
try:  # the checkout's package when mc_simclr is not installed (a bare GPU machine)
    import mc_simclr  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "src"))

from mc_simclr.acoustics.render import plan_render_shards, scenes_for_clips
from mc_simclr.acoustics.rir import get_backend
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.audio.corpora import SPLITS, build_clip_table
from mc_simclr.audio.synthetic import CLASSES
from mc_simclr.devices import resolve_device
from mc_simclr.evaluation import PROTOCOLS, SupervisedConfig, evaluate_encoder, prepare_evaluation
from mc_simclr.features import EVALUATION_SPLITS, FeatureExtractor, class_names, plan_feature_shards
from mc_simclr.networks import EncoderConfig
from mc_simclr.params import load_parameters
from mc_simclr.pretraining import PRECISIONS, PretrainConfig, block_clips, pretrain_from_params
from mc_simclr.reporting.run import results_table, to_markdown
from mc_simclr.shards import OK, FeatureShards, ShardedAudio, save_shards, write_feature_shard, write_shard
from mc_simclr.utils import deep_merge, write_text_atomic

ENCODERS = ("split", "paper")
DEVICES = ("auto", "cpu", "cuda")
#: conf/paper keys that ``--encoder paper`` takes over conf/base.
PAPER_PRETRAINING_KEYS = ("joint_loss_weight", "branch_loss_weight")
#: conf/base pretraining: 10 warm-up epochs of 40.
MAX_WARMUP_FRACTION = 0.25
#: Minimum clip count per split: NT-Xent needs two clips, fine-tuning's batch norm two patches.
MIN_CLIPS = {"unlabeled": 2, "labeled": 2, "validation": 1, "test": 1, "confirmation": 0}


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def set_path(params: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set a.b.c=value`` (value parsed as YAML); the parent block must exist.

    Raises ``ValueError`` for a malformed assignment, ``TypeError`` for a path through a non-block.
    """
    path, sep, text = assignment.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(keys):
        raise ValueError(f"expected SECTION.KEY=VALUE, got {assignment!r}")
    block = params
    for depth, key in enumerate(keys[:-1]):
        if not isinstance(block.get(key), dict):
            raise TypeError(f"{'.'.join(keys[: depth + 1])} is not a parameter block of conf/base")
        block = block[key]
    block[keys[-1]] = yaml.safe_load(text)


def experiment_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """conf/base (+ conf/paper's encoder), then ``--set``, then the options."""
    params = load_parameters(CONF)
    if args.encoder == "paper":
        paper = load_parameters(CONF, "paper")
        params["encoder"] = deep_merge(params["encoder"], paper["encoder"])
        params["pretraining"].update({k: paper["pretraining"][k] for k in PAPER_PRETRAINING_KEYS})
    for assignment in args.set:
        set_path(params, assignment)

    params["corpus"]["source"] = "synthetic"
    synthetic = params["corpus"]["synthetic"]
    for split in SPLITS:
        count = getattr(args, split)
        if count is not None:
            synthetic["clips_per_split"][split] = count
    pretraining = params["pretraining"]
    conf_warmup = int(pretraining["warmup_epochs"])
    if args.epochs is not None:
        pretraining["epochs"] = args.epochs
    pretraining["warmup_epochs"] = min(conf_warmup, int(int(pretraining["epochs"]) * MAX_WARMUP_FRACTION))
    if args.batch_size is not None:
        pretraining["batch_size"] = args.batch_size
    if args.num_workers is not None:
        pretraining["num_workers"] = args.num_workers
    evaluation = params["evaluation"]
    evaluation["subsets"]["amounts"] = []  # no subset fine-tuning
    supervised = evaluation["supervised"]
    if args.probe_epochs is not None:
        supervised["probe_epochs"] = args.probe_epochs
    if args.finetune_epochs is not None:
        supervised["finetune_epochs"] = args.finetune_epochs

    device = args.device
    simulation = params["simulation"]
    if simulation["backend"] == "torchrir":
        simulation["backend_options"] = {**(simulation.get("backend_options") or {}), "device": device}
    params["feature_extraction"]["device"] = device
    pretraining["device"] = device
    supervised["device"] = device
    return params


def check_parameters(params: dict[str, Any]) -> None:
    """Build every settings object once so that a bad value fails before any work."""
    synthetic = params["corpus"]["synthetic"]
    for split, minimum in MIN_CLIPS.items():
        count = synthetic["clips_per_split"].get(split, 0)
        if not isinstance(count, int) or count < minimum:
            raise ValueError(f"corpus.synthetic.clips_per_split.{split} must be an integer >= {minimum}, got {count!r}")
    bad_classes = sorted(set(synthetic.get("classes") or ()) - set(CLASSES))
    if bad_classes:
        raise ValueError(f"corpus.synthetic.classes has unknown class(es) {bad_classes}")
    sample_rate = int(params["audio"]["sample_rate"])
    FeatureExtractor.from_params(params["features"], sample_rate=sample_rate)
    SceneConfig.from_params(params["simulation"].get("scene", {}))
    get_backend(params["simulation"]["backend"], **(params["simulation"].get("backend_options") or {}))
    EncoderConfig.from_params(params["encoder"])
    PretrainConfig.from_block(params["pretraining"])
    SupervisedConfig.from_params(params["evaluation"]["supervised"])


# --------------------------------------------------------------------------------------------
# Stages: the library functions that the pipelines' nodes call
# --------------------------------------------------------------------------------------------
@contextmanager
def stage(name: str, timings: dict[str, float], device: torch.device) -> Iterator[None]:
    """Record the wall time of a block in ``timings[name]`` (CUDA work included)."""
    print(f"\n== {name}", flush=True)
    started = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timings[name] = time.perf_counter() - started
    print(f"== {name}: {timings[name]:.1f} s", flush=True)


def simulate(clip_table: pd.DataFrame, params: dict[str, Any], workdir: Path) -> tuple[ShardedAudio, dict[str, int]]:
    """One scene per clip, rendered through its RIRs into audio shards below ``workdir``.

    Returns the shards and the counts of shards written, skipped (already complete) and removed.
    """
    simulation, sample_rate = params["simulation"], int(params["audio"]["sample_rate"])
    plan = plan_render_shards(clip_table, scenes_for_clips(clip_table, simulation), simulation, sample_rate)
    root = workdir / "spatial_audio"
    counts = save_shards(root, plan, desc="simulating shards", writer=write_shard)
    return ShardedAudio(root), counts


def extract_features(
    audio: ShardedAudio, classes: list[str], params: dict[str, Any], workdir: Path
) -> tuple[FeatureShards, dict[str, int]]:
    """Feature patches of the evaluation splits, one feature shard per audio shard (and shard counts)."""
    sample_rate = int(params["audio"]["sample_rate"])
    plan = plan_feature_shards(audio, classes, params["features"], params["feature_extraction"], sample_rate)
    root = workdir / "feature_patches"
    counts = save_shards(root, plan, desc="extracting features", writer=write_feature_shard)
    return FeatureShards(root), counts


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    base = load_parameters(CONF)
    clips = base["corpus"]["synthetic"]["clips_per_split"]
    pretraining, supervised = base["pretraining"], base["evaluation"]["supervised"]
    parser = argparse.ArgumentParser(
        description="MC-SimCLR end to end without Kedro: synthetic corpus, torchrir simulation, features, "
        "pretraining and evaluation of the pretrained and a random-init encoder, with the wall time of each stage.",
    )
    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        default="split",
        help="split: conf/base encoder (split_crnn, branch losses); paper: conf/paper's single CRNN, "
        "joint loss only (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="device of simulation, features, pretraining and evaluation (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=_int_at_least(1), help=f"pretraining epochs (default: conf/base, {pretraining['epochs']})"
    )
    parser.add_argument(
        "--batch-size",
        type=_int_at_least(2),
        help=f"pretraining batch size (default: conf/base, {pretraining['batch_size']})",
    )
    parser.add_argument(
        "--num-workers",
        type=_int_at_least(0),
        help=f"pretraining DataLoader workers (default: conf/base, {pretraining['num_workers']})",
    )
    for split in SPLITS:
        parser.add_argument(
            f"--{split}",
            type=_int_at_least(MIN_CLIPS[split]),
            help=f"{split} clips of the synthetic corpus (default: conf/base, {clips[split]})",
        )
    parser.add_argument(
        "--probe-epochs",
        type=_int_at_least(1),
        help=f"linear-probe epochs (default: conf/base, {supervised['probe_epochs']})",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=_int_at_least(1),
        help=f"fine-tuning epochs (default: conf/base, {supervised['finetune_epochs']})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one parameter of conf/base with a YAML value, e.g. features.hop_length=160 "
        "(repeatable; the options above win)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for corpus, shards and checkpoint; complete shards there are reused "
        "(default: a new temporary folder, kept)",
    )
    parser.add_argument(
        "--out", type=Path, help="folder for the result files (default: $OUT if set, else the work dir)"
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        help="pretraining.precision; several: one pretraining + evaluation each, compared "
        "(default: conf/base or --set pretraining.precision, float32)",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parsed options and the experiment's parameters; bad values end in an argparse error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.device = str(resolve_device(args.device))
    except (RuntimeError, ValueError) as err:
        parser.error(f"argument --device: {err}")
    for name in ("workdir", "out"):
        path = getattr(args, name)
        if path is not None and path.exists() and not path.is_dir():
            parser.error(f"argument --{name}: {path} exists and is not a folder")
    try:
        params = experiment_parameters(args)
    except (ValueError, TypeError) as err:
        parser.error(f"argument --set: {err}")
    try:
        check_parameters(params)
    except (ValueError, TypeError, KeyError) as err:
        parser.error(f"invalid setting (check --set and the options): {err}")
    return args, params


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def clips_per_epoch(n_clips: int, batch_size: int) -> int:
    """Clips one pretraining epoch trains on (``pretrain`` drops the last incomplete batch)."""
    return n_clips // batch_size * batch_size if n_clips > batch_size else n_clips


def run_experiment(params: dict[str, Any], workdir: Path, device: torch.device, tag: str = "") -> dict[str, Any]:
    """All stages, timed; returns the results table and what the report needs. The encoder is saved
    as ``encoder<tag>.pt`` in ``workdir``."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sample_rate = int(params["audio"]["sample_rate"])
    params["corpus"]["synthetic"]["root"] = str(workdir / "corpus")
    with stage("corpus", timings, device):
        clip_table, _ = build_clip_table(params["corpus"], sample_rate)
    with stage("simulation", timings, device):
        audio, audio_shards = simulate(clip_table, params, workdir)
    rendered = audio.metadata[audio.metadata["status"] == OK]
    classes = class_names(audio.metadata)
    with stage("features", timings, device):
        patches, feature_shards = extract_features(audio, classes, params, workdir)

    clip_ids = block_clips(audio, params["pretraining"])
    config = PretrainConfig.from_block(params["pretraining"])
    with stage("pretraining", timings, device):
        encoder_file = pretrain_from_params(
            audio, params["features"], params["pretraining"], params["encoder"], params["augmentations"], sample_rate
        )
    torch.save(encoder_file, workdir / f"encoder{tag}.pt")
    history = encoder_file["history"]

    results = {}
    with stage("evaluation", timings, device):
        inputs = prepare_evaluation(encoder_file, patches, classes, params["evaluation"])
        for name, pretrained in (("random init", False), ("MC-SimCLR", True)):
            print(f"-- {name}", flush=True)
            results[name] = evaluate_encoder(inputs, pretrained)
    timings["total"] = time.perf_counter() - started

    steady = history[1:] or history  # the first epoch carries start-up costs
    # clips actually trained on per epoch: the last incomplete batch is dropped
    trained_clips = clips_per_epoch(len(clip_ids), config.batch_size) * len(history)
    return {
        "table": results_table({name: {p: res.test[p] for p in PROTOCOLS} for name, res in results.items()}),
        "validation": {name: res.validation for name, res in results.items()},
        "timings_s": timings,
        "pretraining": {
            "clips": len(clip_ids),
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "clips_per_s_wall": trained_clips / timings["pretraining"],
            "clips_per_s_steady": float(np.mean([h["clips_per_s"] for h in steady])),
            "final_loss": history[-1]["loss"],
            "history": history,
        },
        "rendered": {
            "clips": {split: int((rendered["split"] == split).sum()) for split in SPLITS},
            "hours": float(rendered["length"].sum()) / sample_rate / 3600.0,
            "skipped": len(audio.metadata) - len(rendered),
        },
        "feature_patches": {split: int((patches.items["split"] == split).sum()) for split in EVALUATION_SPLITS},
        "shards": {"audio": audio_shards, "features": feature_shards},
        "classes": classes,
    }


def print_summary(encoder: str, outcome: dict[str, Any], workdir: Path) -> None:
    rendered, pretraining = outcome["rendered"], outcome["pretraining"]
    print(f"\nResults ({encoder} encoder; accuracy %, azimuth error degrees; {rendered['clips']['test']} test clips)")
    print(to_markdown(outcome["table"]))
    timings = outcome["timings_s"]
    print(to_markdown(pd.DataFrame({"stage": list(timings), "seconds": list(timings.values())})))
    print(
        f"pretraining: {pretraining['clips']} clips x {pretraining['epochs']} epochs at batch "
        f"{pretraining['batch_size']}: {pretraining['clips_per_s_wall']:.1f} clips/s over the stage, "
        f"{pretraining['clips_per_s_steady']:.1f} clips/s per epoch after the first; "
        f"final loss {pretraining['final_loss']:.4f}"
    )
    print(f"rendered: {rendered['clips']} ({rendered['hours']:.2f} h), {rendered['skipped']} clips skipped")
    for name, counts in outcome["shards"].items():
        if counts["skipped"]:
            print(f"note: {counts['skipped']} {name} shards were already complete in {workdir}; not recomputed")


def main(argv: Sequence[str] | None = None) -> int:
    args, params = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    device = torch.device(args.device)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mc_simclr_gpu_experiment_"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else workdir)
    out.mkdir(parents=True, exist_ok=True)
    # A fresh run every time (the checkpoint of an earlier run in this work dir is overwritten).
    params["pretraining"].update(checkpoint_path=str(workdir / "pretraining_checkpoint.pt"), restart=True)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"MC-SimCLR experiment: {args.encoder} encoder on {device} ({device_name}), work dir {workdir}", flush=True)

    precisions = list(dict.fromkeys(args.precision or [params["pretraining"].get("precision", "float32")]))
    compared = {}
    for precision in precisions:
        run_params = copy.deepcopy(params)
        run_params["pretraining"]["precision"] = precision
        tag = "" if precision == "float32" else f"_{precision}"
        if len(precisions) > 1:
            print(f"\n==== pretraining.precision: {precision}", flush=True)
        outcome = run_experiment(run_params, workdir, device, tag)
        print_summary(args.encoder, outcome, workdir)
        compared[precision] = comparison_row(outcome)
        csv_path = out / f"gpu_experiment_{args.encoder}{tag}.csv"
        json_path = out / f"gpu_experiment_{args.encoder}{tag}.json"
        outcome["table"].to_csv(csv_path, index=False)
        report = {
            "encoder": args.encoder,
            "precision": precision,
            "device": {
                "type": device.type,
                "name": device_name,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "results": outcome.pop("table").to_dict("records"),
            **outcome,
            "parameters": run_params,
            "workdir": str(workdir),
        }
        write_text_atomic(json_path, json.dumps(_finite(report), indent=2, default=str) + "\n")
        print(f"wrote {csv_path} and {json_path}", flush=True)
    if len(compared) > 1:
        table = pd.DataFrame([{"precision": k, **v} for k, v in compared.items()])
        csv_path = out / f"gpu_experiment_{args.encoder}_precisions.csv"
        write_text_atomic(csv_path, table.to_csv(index=False))
        print(f"\nPrecision compared ({args.encoder} encoder, MC-SimCLR row; accuracy %, angle errors degrees)")
        print(to_markdown(table))
        print(f"wrote {csv_path}", flush=True)
    return 0


def comparison_row(outcome: dict[str, Any]) -> dict[str, float]:
    """Pretraining speed and loss and the pretrained encoder's test numbers of one run."""
    table = outcome["table"].set_index("encoder")
    pretrained = table.loc["MC-SimCLR"]
    return {
        "pretraining_s": outcome["timings_s"]["pretraining"],
        "clips_per_s": outcome["pretraining"]["clips_per_s_steady"],
        "final_loss": outcome["pretraining"]["final_loss"],
        **{k: float(pretrained[k]) for k in table.columns if k.endswith(("_accuracy", "_error"))},
    }


if __name__ == "__main__":
    sys.exit(main())
