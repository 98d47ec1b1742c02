"""Write a synthetic stand-in of FSDnoisy18k, in its released layout, at a fraction of its size.

Usage::

    python scripts/make_fsdnoisy18k_standin.py --out data/01_raw/FSDnoisy18k_standin --fraction 0.125
    kedro run --env=paper --params=corpus.fsdnoisy18k.root=data/01_raw/FSDnoisy18k_standin

The released split sizes (15,813 noisy clips of 38.8 h, 1,772 clean, 947 test) times ``--fraction``,
their mean durations, 20 classes, 44.1 kHz 16-bit mono wav: what FSDnoisy18k's reader, the
simulation and the features meet at real size, without the download. At full size it is about 13 GB.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mc_simclr.audio.corpora import write_fsdnoisy18k_standin


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the corpus into (resumes there)")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="share of FSDnoisy18k's size, in (0, 1] (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of durations and sounds (default 0)")
    parser.add_argument("--sample-rate", type=int, default=44100, help="rate of the wav files (default 44100)")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return write_fsdnoisy18k_standin(args.out, args.fraction, args.seed, args.sample_rate)


if __name__ == "__main__":
    main()
