"""Speed of the CRNN encoder on CPU: channels-last convolutions against the contiguous layout.

Usage::

    python benchmarks/bench_encoder.py [--encoders base paper_crnn [paper]] [--batch 128]
                                       [--steps 5] [--repeats 3] [--threads N] [--seed 0]

A script, not a test; it imports only the Kedro-free library (``mc_simclr.networks``), so it also
runs where Kedro is not installed.

:class:`~mc_simclr.networks.CRNNEncoder` converts its input to the channels-last memory format on
CPU (``cpu_channels_last``, on by default). For each encoder this script builds one model, copies
it, switches the copy back to the contiguous layout with
:func:`~mc_simclr.networks.set_cpu_channels_last` and times, on the same random ``--batch`` of
features:

* train step: forward + backward + SGD step of encoder + :class:`~mc_simclr.networks.SELDHeads`
  (what fine-tuning does each step; pretraining's encoder step is the same work);
* embed: forward in eval mode under ``torch.no_grad()`` (linear probe, k-NN, inference).

One warm-up step each, then ``--steps`` timed ones; the two layouts alternate ``--repeats``
times so that both see the same machine load, and the best run counts. It also checks that both
layouts give the same embedding (up to float rounding) and prints the largest difference.

Encoders (input ``(batch, channels, frames, bins)`` of 1 s patches), read from ``conf/`` by
``benchmarks/setups.py``:

* ``base``: conf/base, split CRNN (Mel and GCC branches of 32 filters 3x3), 51 x 64;
* ``paper_crnn``: conf/base with the ablation variant ``paper_crnn`` (one CRNN on all 10 channels);
* ``paper``: conf/paper, one CRNN of 128 filters 5x5, pools [[2,4],[2,4],[1,2]], GRU 128, 101 x 96
  (not run unless named: about 5 minutes on 2 cores at the defaults).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import torch
import torch.nn.functional as F

from mc_simclr.networks import EncoderConfig, SELDHeads, build_encoder, set_cpu_channels_last

from setups import SETUPS, extractor, load_setup

N_CLASSES = 14


def time_steps(encoder, heads, x, labels, targets, steps: int) -> tuple[float, float]:
    """Mean seconds of one train step and of one embedding pass."""
    optimizer = torch.optim.SGD(list(encoder.parameters()) + list(heads.parameters()), lr=1e-3, momentum=0.9)

    def train_step() -> None:
        logits, vector = heads(encoder(x))
        loss = F.cross_entropy(logits, labels) + F.mse_loss(vector, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    encoder.train()
    heads.train()
    train_step()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_s = (time.perf_counter() - start) / steps
    encoder.eval()
    with torch.no_grad():
        encoder(x)
        start = time.perf_counter()
        for _ in range(steps):
            encoder(x)
        embed_s = (time.perf_counter() - start) / steps
    return train_s, embed_s


def bench(name: str, batch: int, steps: int, repeats: int, seed: int) -> dict[str, float]:
    setup = load_setup(name)
    front_end = extractor(setup)
    frames, bins = front_end.n_frames(front_end.sample_rate), front_end.n_mels  # one 1 s patch
    torch.manual_seed(seed)
    config = EncoderConfig.from_params(setup["encoder"])
    models = {"channels_last": build_encoder(config, bins)}
    models["contiguous"] = set_cpu_channels_last(copy.deepcopy(models["channels_last"]), False)
    heads = {layout: SELDHeads(config.embedding_dim, N_CLASSES) for layout in models}
    heads["contiguous"].load_state_dict(heads["channels_last"].state_dict())
    x = torch.randn(batch, config.in_channels, frames, bins)
    labels = torch.randint(0, N_CLASSES, (batch,))
    targets = F.normalize(torch.randn(batch, 2), dim=1)
    with torch.no_grad():
        embeddings = {layout: model.eval()(x) for layout, model in models.items()}
    diff = float((embeddings["channels_last"] - embeddings["contiguous"]).abs().max())
    scale = float(embeddings["contiguous"].abs().max())
    runs: dict[str, list[tuple[float, float]]] = {layout: [] for layout in models}
    for repeat in range(repeats):
        for layout in ("contiguous", "channels_last"):
            runs[layout].append(time_steps(models[layout], heads[layout], x, labels, targets, steps))
            train_s, embed_s = runs[layout][-1]
            run = f"run {repeat + 1}/{repeats}"
            print(f"  {name:<10} {layout:<13} {run}: train step {train_s:.3f} s, embed {embed_s:.3f} s", flush=True)
    best = {layout: (min(r[0] for r in rs), min(r[1] for r in rs)) for layout, rs in runs.items()}
    return {
        "train_contiguous": best["contiguous"][0],
        "train_channels_last": best["channels_last"][0],
        "embed_contiguous": best["contiguous"][1],
        "embed_channels_last": best["channels_last"][1],
        "max_diff": diff,
        "scale": scale,
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=["base", "paper_crnn"],
        help=f"any of {', '.join(SETUPS)} (default: base paper_crnn)",
    )
    parser.add_argument("--batch", type=int, default=128, help="patches per step (default 128, the fine-tuning batch)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run after one warm-up (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each layout (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [name for name in args.encoders if name not in SETUPS]
    if unknown:
        parser.error(f"--encoders: unknown {unknown}; expected any of {list(SETUPS)}")
    if min(args.batch, args.steps, args.repeats) < 1:
        parser.error("--batch, --steps and --repeats must be positive")
    if args.batch < 2:
        parser.error("--batch must be at least 2 (batch norm in training mode)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s), batch {args.batch}, best of {args.repeats} runs of {args.steps} steps"
    )
    results = {name: bench(name, args.batch, args.steps, args.repeats, args.seed) for name in args.encoders}
    header = (
        f"{'encoder':<11} {'train step contiguous':>22} {'channels-last':>14} {'ratio':>6}   "
        f"{'embed contiguous':>17} {'channels-last':>14} {'ratio':>6}   max |diff| / max |h|"
    )
    print(f"\n{header}")
    for name, r in results.items():
        print(
            f"{name:<11} {r['train_contiguous']:>20.3f} s {r['train_channels_last']:>12.3f} s "
            f"{r['train_contiguous'] / r['train_channels_last']:>5.2f}x   {r['embed_contiguous']:>15.3f} s "
            f"{r['embed_channels_last']:>12.3f} s {r['embed_contiguous'] / r['embed_channels_last']:>5.2f}x   "
            f"{r['max_diff']:.1e} / {r['scale']:.2f}"
        )
    return results


if __name__ == "__main__":
    main()
