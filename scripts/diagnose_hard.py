"""Diagnostics of the pretrained encoder of one environment (docs/experiments/hard.md).

    python scripts/diagnose_hard.py --env hard            # after the env's data_simulation,
                                                          # feature_extraction and pretraining
    python scripts/diagnose_hard.py --env tetra --elevation   # symmetries, spread, constant predictor
    python scripts/diagnose_hard.py --env hard --noise-swap NAME=ENCODER ...

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

With ``--noise-swap NAME=ENCODER ...`` (a noisy environment), instead: ``noise_swap.csv`` and
``noise_swap.md``, NT-Xent's instance accuracy (top-1 among the other 2N - 1 views, on the frozen
embedding) of each encoder and of a random-init one on the labeled and validation clips, two
one-second crops per clip at independent offsets (no other augmentation), when the second view
shares the clip's noise (as in pretraining), carries another clip's noise at the same SNR, carries
another clip's noise and SNR, or when neither view has noise. The clean audio and the noise are
rebuilt apart from the rendering's own seeds (checked against the shards).

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
from mc_simclr.acoustics.noise import NoiseConfig, clip_noise
from mc_simclr.acoustics.rir import get_backend, normalize_peak, spatialize
from mc_simclr.acoustics.scene import Scene, SceneConfig
from mc_simclr.acoustics.symmetry import ArraySymmetries
from mc_simclr.audio.crops import pad_or_trim
from mc_simclr.audio.io import read_mono
from mc_simclr.baselines import srp_phat_clips
from mc_simclr.devices import resolve_device
from mc_simclr.diagnostics import (
    constant_errors,
    elevation_spread,
    elevation_symmetries,
    instance_accuracy,
    level_db,
    linear_r2,
    noisy_views,
    scores_by_band,
)
from mc_simclr.evaluation import (
    clip_predictions,
    embed,
    fine_tune,
    frozen_encoder,
    linear_probe,
    prepare_evaluation,
    random_init_like,
    split_scores,
)
from mc_simclr.model_files import unpack_encoder
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


def elevation(params: dict, out: Path, env: str, root: Path) -> int:
    """``elevation.md``: the symmetries' effect on elevation and the spread of the scenes' elevations;
    with the environment's features, the constant predictor's error per split too."""
    geometry = ArrayGeometry.from_params(params["array"])
    table = elevation_symmetries(ArraySymmetries.of(geometry))
    spread = elevation_spread(SceneConfig.from_params(params["simulation"]["scene"], geometry))
    text = (
        f"# Elevation under `conf/{env}` ({geometry.describe()})\n\n"
        + to_markdown(table)
        + "\nElevations of the scene distribution (degrees):\n\n"
        + to_markdown(pd.DataFrame([spread]))
    )
    patches = root / "04_feature/patches"
    if patches.exists():
        constant = constant_errors(FeatureShards(patches).items)
        text += (
            "\nThe best constant predictor (the labeled clips' median elevation), mean absolute error per "
            "split (degrees):\n\n" + to_markdown(constant)
        )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "elevation.md", text)
    print(text)
    return 0


def clean_and_noise(audio: ShardedAudio, params: dict, clip_ids: list[str]) -> dict[str, tuple]:
    """``{clip_id: (clean, unit-power noise, SNR)}``: each clip's reverberant audio and diffuse noise
    apart, from the rendering's scene, backend and noise seed; the sum, peak-normalised, is checked
    against the rendered shard."""
    simulation = params["simulation"]
    sample_rate = int(params["audio"]["sample_rate"])
    noise_config = NoiseConfig.from_params(simulation.get("noise"))
    if not noise_config.enabled:
        raise SystemExit("--noise-swap needs an environment with simulation.noise.enabled")
    backend = get_backend(simulation["backend"], **(simulation.get("backend_options") or {}))
    rows = audio.metadata.set_index("clip_id")
    out = {}
    for clip_id in tqdm(clip_ids, desc="clean audio and noise apart", unit="clip"):
        row = {"clip_id": clip_id, **rows.loc[clip_id].to_dict()}
        scene = Scene.from_record(row)
        clean = spatialize(read_mono(row["path"], sample_rate), backend.simulate(scene, sample_rate))
        mics = np.asarray(scene.mic_positions, dtype=np.float64)
        noise, snr_db = clip_noise(clean.shape[1], mics, sample_rate, noise_config, int(simulation["seed"]), clip_id)
        rebuilt = normalize_peak(
            noisy_views(clean, noise, snr_db, noise, snr_db)["shared"][0], float(simulation["peak"])
        )
        rendered = audio.load_clip(clip_id)
        if abs(snr_db - float(row["noise_snr_db"])) > 1e-6 or not np.allclose(rebuilt, rendered, atol=1e-3):
            raise SystemExit(f"clip {clip_id}: the rebuilt clean audio + noise does not match the rendered shard")
        out[clip_id] = (clean, noise, snr_db)
    return out


def noise_swap(params: dict, root: Path, encoders: dict[str, Path], out: Path, draws: int, env: str) -> int:
    """NT-Xent's instance accuracy under four noise conditions (module docstring)."""
    import torch

    audio = ShardedAudio(root / "03_primary/spatial_audio")
    meta = audio.metadata
    clip_ids = sorted(meta.loc[(meta["status"] == "ok") & meta["split"].isin(["labeled", "validation"]), "clip_id"])
    parts = clean_and_noise(audio, params, clip_ids)
    models = {}
    for name, path in encoders.items():
        models[name], extractor = unpack_encoder(torch.load(path, map_location="cpu", weights_only=True))
    models["random init"] = random_init_like(next(iter(models.values())), 0).eval()
    sample_rate, peak = int(params["audio"]["sample_rate"]), float(params["simulation"]["peak"])
    crop = int(round(float(params["pretraining"]["crop_seconds"]) * sample_rate))
    rng = np.random.default_rng(0)
    rows = []
    for draw in tqdm(range(draws), desc="draws", unit="draw"):
        order = rng.permutation(len(clip_ids))
        other = {clip_ids[order[k]]: clip_ids[order[(k + 1) % len(order)]] for k in range(len(order))}
        views: dict[str, tuple[list, list]] = {}
        for clip_id in clip_ids:
            clean, noise, snr_db = parts[clip_id]
            _, other_noise, other_snr = parts[other[clip_id]]
            n = clean.shape[1]
            starts = [int(rng.integers(0, max(n - crop, 0) + 1)) for _ in range(2)]
            for condition, pair in noisy_views(clean, noise, snr_db, other_noise, other_snr).items():
                for k, (signal, start) in enumerate(zip(pair, starts, strict=True)):
                    cut = pad_or_trim(normalize_peak(signal, peak)[:, start : start + crop], crop)
                    views.setdefault(condition, ([], []))[k].append(cut.astype(np.float32))
        for condition, (first, second) in views.items():
            with torch.no_grad():
                f1 = extractor(torch.from_numpy(np.stack(first)))
                f2 = extractor(torch.from_numpy(np.stack(second)))
                for name, model in models.items():
                    z1 = torch.cat([model(b) for b in f1.split(64)]).numpy()
                    z2 = torch.cat([model(b) for b in f2.split(64)]).numpy()
                    rows.append(
                        {"encoder": name, "second view": condition, "draw": draw, "accuracy": instance_accuracy(z1, z2)}
                    )
    table = pd.DataFrame(rows)
    summary = (
        table.groupby(["encoder", "second view"], sort=False)["accuracy"]
        .agg(["mean", "std"])
        .mul(100.0)
        .round(1)
        .reset_index()
        .pivot(index="encoder", columns="second view", values="mean")
        .reset_index()
    )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "noise_swap.csv", table.to_csv(index=False))
    text = (
        f"# NT-Xent instance accuracy (%) under `conf/{env}`: {len(clip_ids)} labeled + validation clips, "
        f"{draws} crop draws (chance {100.0 / (2 * len(clip_ids) - 1):.2f} %)\n\n" + to_markdown(summary)
    )
    write_text_atomic(out / "noise_swap.md", text)
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
    parser.add_argument(
        "--noise-swap",
        nargs="+",
        metavar="NAME=ENCODER",
        help="only NT-Xent's instance accuracy of these encoders (and a random one) with the views' noise swapped",
    )
    parser.add_argument("--draws", type=int, default=5, help="crop draws of --noise-swap (default 5)")
    args = parser.parse_args(argv)
    if not (PROJECT / "conf" / args.env).is_dir():
        parser.error(f"--env: no folder conf/{args.env}")
    params = load_parameters(PROJECT / "conf", args.env)
    root = args.data_root or data_root(args.env)
    if args.elevation:
        return elevation(params, args.out or root / "08_reporting" / "diagnostics", args.env, root)
    if args.noise_swap:
        encoders = {}
        for item in args.noise_swap:
            name, _, path = item.partition("=")
            if not name or not path or not Path(path).is_file():
                parser.error(f"--noise-swap: expected NAME=ENCODER with an existing encoder file, got {item!r}")
            encoders[name] = Path(path)
        if args.draws < 1:
            parser.error(f"--draws must be >= 1, got {args.draws}")
        return noise_swap(
            params, root, encoders, args.out or root / "08_reporting" / "diagnostics", args.draws, args.env
        )
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
