"""Fine-tuning schedules screened on the validation split, pretrained and from scratch alike.

    python scripts/screen_finetuning.py --env hard --lr 0.01 0.03 --lp-epochs 0 20 --scales 0.1 1.0

Fine-tunes the environment's pretrained encoder (``--encoder``, default
``<data_root>/06_models/encoder.pt``) and a random-init encoder of the same shape with every
combination of learning rate and LP-FT linear-probe phase (``evaluation.supervised.lp_epochs``); the
pretrained encoder also with every encoder gradient scale (training from scratch has none). Both
sides get the same search. Each run keeps its epoch of lowest validation loss, as the pipeline's
fine-tuning does, and reports that epoch's validation scores, so the figures are slightly
optimistic for every row alike; the best row of each side is the one of lowest validation loss.
``--fraction`` fine-tunes on a class-balanced fraction of the labeled clips (the subset curve's
draw). Writes ``finetuning_screen.csv`` and ``finetuning_screen.md`` under ``--out`` (default
``<data_root>/08_reporting/diagnostics``). The test and confirmation splits are not read.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import pandas as pd

from mc_simclr.evaluation import fine_tune, prepare_evaluation
from mc_simclr.evaluation.fine_tuning import class_balanced_subset
from mc_simclr.params import load_parameters
from mc_simclr.reporting.run import to_markdown
from mc_simclr.shards import FeatureShards
from mc_simclr.utils import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnose_hard import PROJECT, data_root  # noqa: E402


def runs(lrs: list[float], lp_epochs: list[int], scales: list[float]) -> list[dict]:
    """The grid: every (lr, lp_epochs) from scratch, and with every scale for the pretrained encoder."""
    grid = [
        {"encoder": "random init", "lr": lr, "lp_epochs": lp, "scale": None}
        for lr, lp in itertools.product(lrs, lp_epochs)
    ]
    grid += [
        {"encoder": "MC-SimCLR", "lr": lr, "lp_epochs": lp, "scale": scale}
        for lr, lp, scale in itertools.product(lrs, lp_epochs, scales)
    ]
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hard", help="the configuration environment (conf/<env>)")
    parser.add_argument("--encoder", type=Path, help="the encoder file (default: <data_root>/06_models/encoder.pt)")
    parser.add_argument("--out", type=Path, help="where to write (default: <data_root>/08_reporting/diagnostics)")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01], help="learning rates (both sides)")
    parser.add_argument("--lp-epochs", type=int, nargs="+", default=[0], help="LP-FT linear-probe phases (both sides)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1], help="encoder gradient scales (pretrained)")
    parser.add_argument("--fraction", type=float, default=1.0, help="fraction of the labeled clips (0, 1]")
    args = parser.parse_args(argv)
    if not (PROJECT / "conf" / args.env).is_dir():
        parser.error(f"--env: no folder conf/{args.env}")
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if any(lr <= 0 for lr in args.lr) or any(s < 0 for s in args.scales):
        parser.error("--lr must be > 0 and --scales >= 0")
    params = load_parameters(PROJECT / "conf", args.env)
    finetune_epochs = int(params["evaluation"]["supervised"]["finetune_epochs"])
    if any(not 0 <= lp < finetune_epochs for lp in args.lp_epochs):
        parser.error(
            f"--lp-epochs must be in [0, evaluation.supervised.finetune_epochs = {finetune_epochs}), "
            f"got {args.lp_epochs}"
        )
    root = data_root(args.env)
    encoder_file = args.encoder or root / "06_models" / "encoder.pt"
    for needed in (root / "04_feature/patches", encoder_file):
        if not needed.exists():
            parser.error(
                f"{needed} is missing: run `kedro run --env={args.env} --pipelines=feature_extraction,pretraining`"
            )
    import torch  # after the argument checks: a wrong call answers at once

    out = args.out or root / "08_reporting" / "diagnostics"
    out.mkdir(parents=True, exist_ok=True)
    class_names = json.loads((root / "04_feature/class_names.json").read_text())
    state = torch.load(encoder_file, map_location="cpu", weights_only=True)
    inputs = prepare_evaluation(state, FeatureShards(root / "04_feature/patches"), class_names, params["evaluation"])
    train, validation = inputs.splits["labeled"], inputs.splits["validation"]
    if args.fraction < 1:
        labeled = train.items.groupby("clip_id", sort=True).first().reset_index()
        train = train.subset(class_balanced_subset(labeled, args.fraction, "fraction", inputs.subset_seed))
    array = inputs.symmetries or inputs.n_mics
    rows = []
    for run in runs(args.lr, args.lp_epochs, args.scales):
        pretrained = run["encoder"] == "MC-SimCLR"
        config = dataclasses.replace(
            inputs.config,
            finetune_lr=run["lr"],
            lp_epochs=run["lp_epochs"],
            encoder_grad_scale=run["scale"] if pretrained else inputs.config.encoder_grad_scale,
        )
        encoder = inputs.pretrained if pretrained else inputs.random
        print(f"fine-tuning {run}", flush=True)
        tuned = fine_tune(
            encoder, train, validation, {"validation": validation}, inputs.n_classes, config, pretrained, array
        )
        scores = tuned.predictions["validation"].validation
        rows.append({**run, "scale": run["scale"] if pretrained else "-", **scores})
    table = pd.DataFrame(rows)
    table["best"] = ""
    for _, group in table.groupby("encoder"):
        table.loc[group["loss"].idxmin(), "best"] = "yes"
    n_clips = train.items["clip_id"].nunique()
    write_text_atomic(out / "finetuning_screen.csv", table.to_csv(index=False))
    shown = table.assign(lr=table["lr"].map(str), loss=table["loss"].map(lambda v: f"{v:.3f}"))
    summary = (
        f"# Fine-tuning screen of `conf/{args.env}` ({n_clips} labeled clips, validation)\n\n"
        f"Encoder: `{encoder_file}`. Best of each side: lowest validation loss.\n\n{to_markdown(shown)}"
    )
    write_text_atomic(out / "finetuning_screen.md", summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
