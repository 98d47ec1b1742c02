"""Diagnostics of the pretrained encoder of one environment (docs/experiments/hard.md).

    python scripts/diagnose_hard.py --env hard            # after the env's data_simulation,
                                                          # feature_extraction and pretraining

Reads the environment's data folder (``data_root`` of ``conf/<env>/globals.yml``) and writes, under
``<data_root>/08_reporting/diagnostics/``:

* ``srp_phat_by_snr.csv``: SRP-PHAT's azimuth error per SNR band on every clip that is not a test
  clip (unlabeled, labeled, validation), and on the validation clips alone. No learning: where it
  fails, the direction is not in the input.
* ``probes_by_snr.csv``: on the validation split, per SNR band, the linear probe of the pretrained
  and of a random-init encoder (``evaluation.batchnorm`` as configured) and a supervised azimuth
  model (the random-init encoder trained on azimuth alone, selected on validation, so its
  validation figure is slightly optimistic).
* ``shortcut.csv``: R² on the validation patches of a ridge regression from the frozen embedding
  to the clip's SNR and to its level (fitted on the labeled patches), for both encoders, beside
  the linear probe's validation accuracy.
* ``summary.md``: the three tables in Markdown.

An environment without diffuse noise (``conf/recorded``) gets the probes over all validation clips
and the level's R² only.

Nothing here chooses a setting: the test and confirmation splits are not read.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.scene import SceneConfig
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.baselines import srp_phat_clips
from mc_simclr.devices import resolve_device
from mc_simclr.diagnostics import elevation_spread, elevation_symmetries, level_db, linear_r2, scores_by_band
from mc_simclr.evaluation import (
    clip_predictions,
    embed,
    fine_tune,
    frozen_encoder,
    linear_probe,
    prepare_evaluation,
    split_scores,
)
from mc_simclr.params import load_parameters
from mc_simclr.reporting.run import to_markdown
from mc_simclr.shards import FeatureShards, ShardedAudio
from mc_simclr.utils import write_text_atomic

PROJECT = Path(__file__).resolve().parents[1]
NOT_TEST = ("unlabeled", "labeled", "validation")


def data_root(env: str) -> Path:
    """The environment's data folder (``data_root`` of its globals, else ``data``)."""
    for folder in (env, "base"):
        globals_file = PROJECT / "conf" / folder / "globals.yml"
        if globals_file.is_file():
            root = (yaml.safe_load(globals_file.read_text()) or {}).get("data_root")
            if root:
                return PROJECT / root
    return PROJECT / "data"


def srp_by_snr(audio: ShardedAudio, params: dict, sample_rate: int) -> pd.DataFrame:
    """SRP-PHAT per SNR band, all non-test clips and the validation clips."""
    meta = audio.metadata
    index = meta[meta["split"].isin(NOT_TEST)].copy()
    index["class_index"] = -1
    found = srp_phat_clips(audio, index, params["evaluation"]["srp_phat"], sample_rate, splits=NOT_TEST)
    clips = pd.concat(found.values(), ignore_index=True).merge(meta[["clip_id", "noise_snr_db", "split"]], on="clip_id")
    pooled = scores_by_band(clips).assign(clips_of="unlabeled + labeled + validation")
    validation = scores_by_band(clips[clips["split"] == "validation"]).assign(clips_of="validation")
    return pd.concat([pooled, validation], ignore_index=True).drop(columns="accuracy")


def probes_by_snr(inputs, snr: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Linear probes of both encoders and the supervised azimuth model per SNR band (validation)."""
    train, validation = inputs.splits["labeled"], inputs.splits["validation"]
    array = inputs.symmetries or inputs.n_mics
    device = resolve_device(inputs.config.device)
    rows, accuracy = [], {}
    for name, encoder in (("MC-SimCLR", inputs.pretrained), ("random init", inputs.random)):
        frozen = frozen_encoder(encoder, train, inputs.batchnorm, device)
        probe = linear_probe(
            frozen, train, validation, {"validation": validation}, inputs.n_classes, inputs.config, array
        )
        clips = clip_predictions(validation.items, probe["validation"]).merge(snr, on="clip_id")
        rows.append(scores_by_band(clips).assign(model=f"{name}, linear probe"))
        accuracy[name] = split_scores(validation.items, probe["validation"])["accuracy"]
    azimuth_only = copy.deepcopy(inputs.config)
    azimuth_only.class_loss_weight = 0.0
    tuned = fine_tune(
        inputs.random, train, validation, {"validation": validation}, inputs.n_classes, azimuth_only, False, array
    )
    clips = clip_predictions(validation.items, tuned.predictions["validation"]).merge(snr, on="clip_id")
    rows.append(scores_by_band(clips).assign(model="supervised azimuth (random init, azimuth only)", accuracy=np.nan))
    table = pd.concat(rows, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]], accuracy


def shortcut(inputs, audio: ShardedAudio, snr: pd.DataFrame, accuracy: dict[str, float]) -> pd.DataFrame:
    """R² of the clip's SNR and level from the frozen embedding (labeled -> validation patches)."""
    train, validation = inputs.splits["labeled"], inputs.splits["validation"]
    device = resolve_device(inputs.config.device)
    clip_ids = sorted(set(train.items["clip_id"]) | set(validation.items["clip_id"]))
    levels = {c: level_db(audio.load_clip(c)) for c in tqdm(clip_ids, desc="clip levels", unit="clip")}
    targets = {}
    for split_name, split in (("labeled", train), ("validation", validation)):
        items = split.items[["clip_id"]].merge(snr, on="clip_id", how="left")
        targets[split_name] = {
            "SNR (dB)": items["noise_snr_db"].to_numpy(),
            "level (dB)": items["clip_id"].map(levels).to_numpy(),
        }
    rows = []
    for name, encoder in (("MC-SimCLR", inputs.pretrained), ("random init", inputs.random)):
        frozen = frozen_encoder(encoder, train, inputs.batchnorm, device)
        train_emb = embed(frozen, train.features, device).numpy()
        val_emb = embed(frozen, validation.features, device).numpy()
        row = {"encoder": name, "LP accuracy % (validation)": accuracy[name]}
        for target in targets["labeled"]:
            if np.isnan(targets["labeled"][target]).all():
                continue
            row[f"R² {target}"] = linear_r2(
                train_emb, targets["labeled"][target], val_emb, targets["validation"][target]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def elevation(params: dict, out: Path, env: str) -> int:
    """``elevation.md``: the symmetries' effect on elevation and the spread of the scenes' elevations."""
    geometry = ArrayGeometry.from_params(params["array"])
    table = elevation_symmetries(ArraySymmetries.of(geometry))
    spread = elevation_spread(SceneConfig.from_params(params["simulation"]["scene"], geometry))
    text = (
        f"# Elevation under `conf/{env}` ({geometry.describe()})\n\n"
        + to_markdown(table)
        + "\nElevations of the scene distribution (degrees):\n\n"
        + to_markdown(pd.DataFrame([spread]))
    )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "elevation.md", text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hard", help="the configuration environment (conf/<env>)")
    parser.add_argument("--data-root", type=Path, help="the data folder (default: the environment's data_root)")
    parser.add_argument("--encoder", type=Path, help="the encoder file (default: <data_root>/06_models/encoder.pt)")
    parser.add_argument("--out", type=Path, help="where to write (default: <data_root>/08_reporting/diagnostics)")
    parser.add_argument(
        "--elevation",
        action="store_true",
        help="only what the array's symmetries do to elevation and the scenes' spread",
    )
    parser.add_argument("--skip-srp", action="store_true", help="leave SRP-PHAT out (the slowest part)")
    args = parser.parse_args(argv)
    if not (PROJECT / "conf" / args.env).is_dir():
        parser.error(f"--env: no folder conf/{args.env}")
    params = load_parameters(PROJECT / "conf", args.env)
    root = args.data_root or data_root(args.env)
    if args.elevation:
        return elevation(params, args.out or root / "08_reporting" / "diagnostics", args.env)
    encoder_file = args.encoder or root / "06_models" / "encoder.pt"
    for needed in (root / "03_primary/spatial_audio", root / "04_feature/patches", encoder_file):
        if not needed.exists():
            parser.error(
                f"{needed} is missing: run `kedro run --env={args.env} --pipelines="
                "data_simulation,feature_extraction,pretraining` first"
            )
    import torch  # after the argument checks: a wrong call answers at once

    audio = ShardedAudio(root / "03_primary/spatial_audio")
    noisy = "noise_snr_db" in audio.metadata
    # without noise (simulation.noise.enabled false): no SNR bands, no SNR shortcut, no SRP-PHAT per band
    snr = (
        audio.metadata[["clip_id", "noise_snr_db"]]
        if noisy
        else audio.metadata[["clip_id"]].assign(noise_snr_db=np.nan)
    )
    out = args.out or root / "08_reporting" / "diagnostics"
    out.mkdir(parents=True, exist_ok=True)
    class_names = json.loads((root / "04_feature/class_names.json").read_text())
    state = torch.load(encoder_file, map_location="cpu", weights_only=True)
    inputs = prepare_evaluation(state, FeatureShards(root / "04_feature/patches"), class_names, params["evaluation"])

    parts = [f"# Diagnostics of `conf/{args.env}` (one pretraining seed, validation)\n"]
    probes, accuracy = probes_by_snr(inputs, snr)
    write_text_atomic(out / "probes_by_snr.csv", probes.to_csv(index=False))
    parts.append("\n## Probes per SNR band (validation)\n\n" + to_markdown(probes))
    cut = shortcut(inputs, audio, snr, accuracy)
    write_text_atomic(out / "shortcut.csv", cut.to_csv(index=False))
    parts.append("\n## Nuisances in the frozen embedding (labeled -> validation)\n\n" + to_markdown(cut, digits=2))
    if not noisy:
        parts.append("\n(no diffuse noise in this environment: the probes hold one row, `all`)\n")
    if not args.skip_srp and noisy:
        srp = srp_by_snr(audio, params, int(params["audio"]["sample_rate"]))
        write_text_atomic(out / "srp_phat_by_snr.csv", srp.to_csv(index=False))
        parts.append("\n## SRP-PHAT per SNR band\n\n" + to_markdown(srp))
    write_text_atomic(out / "summary.md", "".join(parts))
    print("".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
