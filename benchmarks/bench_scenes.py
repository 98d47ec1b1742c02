"""Scene synthesis: speed against real time, memory over recordings, and the crossfade's clicks.

Usage::

    python benchmarks/bench_scenes.py --recordings 4 --seed 0

(a) Speed. ``--recordings`` recordings of conf/base's ``scenes.synthesis`` (60 s, polyphony 2, half
the events moving) on conf/tetra's array and conf/base's rooms and RIR backend, from the labeled
clips of a synthetic corpus written to a temporary folder, are synthesised three times in the same
run: as the pipeline does (conf/base's ``scenes.moving_backend_options`` for the moving events'
RIRs: 6 dB of image sources, 21-tap fractional delays; each path split into per-point image sources
and one shared tail, ``simulate_path``), and two baselines: the same options with a whole RIR per
point of the path, and whole RIRs per point with the static events' options
(``simulation.backend_options``: 12 dB, 81 taps). It also prints how far the conf's RIR is from the
static events' on one room over the conf's image-source part (after it, both tails are random
draws). The table gives per recording the audio seconds per second of work (x real time) and the
ratios of the medians.

(b) Memory. The same recordings written one after another by ``write_scene_set`` (what the
pipeline runs): the resident memory after each, in MiB; flat means it does not grow with the number
of recordings.

(c) Clicks. A 1 kHz tone through one moving source (a 40 degrees/s turn, RIRs every 100 ms) rendered
as the pipeline does (split path), with the periodic-Hann crossfade of whole RIRs and, as the
baseline, with hard switches from RIR to RIR: the share of the
output's energy more than 500 Hz away from the tone (a click spreads over all frequencies, a glide
does not), in dB, of the middle 2 s under a Blackman window.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from mc_simclr.acoustics.array import ArrayGeometry
from mc_simclr.acoustics.rir import _tail_times, get_backend
from mc_simclr.acoustics.scene import SceneConfig, make_scene
from mc_simclr.acoustics.scene_set import SceneSetConfig, write_scene_set
from mc_simclr.acoustics.scenes import (
    Event,
    event_path,
    path_scenes,
    plan_recording,
    render_moving,
    render_path,
    synthesize_recording,
)
from mc_simclr.audio.corpora import build_clip_table
from mc_simclr.audio.io import read_mono
from mc_simclr.params import load_parameters


def corpus(root: Path, sample_rate: int, seed: int):
    """The labeled clips of a small synthetic corpus (the default generator's classes)."""
    params = {
        "source": "synthetic",
        "synthetic": {
            "root": str(root),
            "seed": seed,
            "confirmation_seed": seed + 1,
            "clips_per_split": {"unlabeled": 0, "labeled": 28, "validation": 0, "test": 0, "confirmation": 0},
            "mean_duration_s": {k: 4.9 for k in ("unlabeled", "labeled", "validation", "test", "confirmation")},
            "duration_range_s": [0.3, 30.0],
        },
    }
    table, _ = build_clip_table(params, sample_rate)
    return table[table["split"] == "labeled"].reset_index(drop=True)


class WholeRIRs:
    """A backend seen through ``simulate`` only: moving paths get a whole RIR per point (baseline)."""

    def __init__(self, backend) -> None:
        self.backend, self.name, self.stats = backend, backend.name, backend.stats

    def simulate(self, scene, sample_rate: int) -> np.ndarray:
        return self.backend.simulate(scene, sample_rate)


def hard_switch(signal: np.ndarray, rirs: list[np.ndarray], hop: int) -> np.ndarray:
    """The baseline of (c): each hop of the signal through its own RIR, no crossfade."""
    n, longest = len(signal), max(r.shape[1] for r in rirs)
    out = np.zeros((rirs[0].shape[0], n + longest + hop))
    for k, rir in enumerate(rirs):
        start = k * hop - hop // 2
        lo, hi = max(start, 0), min(start + hop, n)
        if lo >= hi:
            continue
        wet = np.stack([np.convolve(signal[lo:hi], r) for r in rir])
        out[:, lo : lo + wet.shape[1]] += wet
    return out[:, : n + longest - 1]


def off_tone_db(audio: np.ndarray, sample_rate: int, tone_hz: float, band_hz: float = 500.0) -> float:
    """Energy share more than ``band_hz`` away from the tone, of the middle of ``audio`` (its first and
    last 0.5 s left out, the rest under a Blackman window, so that neither the tone's start nor the
    analysis edges count)."""
    edge = int(0.5 * sample_rate)
    audio = audio[..., edge:-edge] * np.blackman(audio.shape[-1] - 2 * edge)
    spectrum = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    off = np.abs(freqs - tone_hz) > band_hz
    return float(10 * np.log10(spectrum[..., off].sum() / spectrum.sum()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=4, help="recordings per setting (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and the scenes (default 0)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per recording (default: conf)")
    args = parser.parse_args(argv)
    params = load_parameters(Path(__file__).resolve().parents[1] / "conf", "tetra")
    sample_rate = int(params["audio"]["sample_rate"])
    block = dict(params["scenes"])
    if args.duration:
        block["synthesis"] = {**block["synthesis"], "duration_s": args.duration}
    config = SceneSetConfig.from_params({**block, "root": "unused"})
    simulation = params["simulation"]
    rooms = SceneConfig.from_params(simulation.get("scene", {}), params["array"])
    options = dict(simulation.get("backend_options") or {})
    static = get_backend(simulation["backend"], **options)
    settings = {  # label: (moving events' options, a path split into image sources and one tail)
        "conf (split path)": ({**options, **config.moving_backend_options}, True),
        "conf options, whole RIRs": ({**options, **config.moving_backend_options}, False),
        "static options, whole RIRs": (options, False),
    }
    out: dict = {"speed": {}, "memory_mib": [], "clicks_db": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = corpus(Path(tmp) / "corpus", sample_rate, args.seed)
        names = sorted(clips["label"].unique())
        paths = dict(zip(clips["clip_id"], clips["path"], strict=True))
        print(
            f"(a) {args.recordings} recordings of {config.synthesis.duration_s:g} s, array "
            f"{rooms.array.describe()}, backend {simulation['backend']}, {sample_rate} Hz"
        )
        for label, (moving_options, split) in settings.items():
            moving = get_backend(simulation["backend"], **moving_options)
            moving = moving if split else WholeRIRs(moving)
            factors = []
            for i in range(args.recordings):
                plan = plan_recording(f"fold1_room{i + 1}_mix001", clips, names, config.synthesis, rooms, args.seed)
                start = time.perf_counter()
                synthesize_recording(
                    plan, lambda c: read_mono(paths[c], sample_rate), rooms, config.synthesis, static, moving,
                    sample_rate, args.seed,
                )  # fmt: skip
                factors.append(config.synthesis.duration_s / (time.perf_counter() - start))
                print(
                    f"  {label:<24} recording {i + 1}: x{factors[-1]:5.1f} real time "
                    f"(RT60 {plan.room.rt60:.2f} s, {sum(e.moving for e in plan.events)}/{len(plan.events)} moving)"
                )
            out["speed"][label] = factors
        medians = {label: statistics.median(f) for label, f in out["speed"].items()}
        (conf_label, conf_median), *baselines = medians.items()
        print(f"  median x{conf_median:.1f} real time with {conf_label}, worst x{min(out['speed'][conf_label]):.1f}")
        for label, median in baselines:
            print(f"  median x{median:.1f} with {label}: {conf_label} is {conf_median / median:.2f} x as fast")

        print("(b) resident memory after each recording written by write_scene_set (MiB)")
        process = psutil.Process()
        block_b = {**block, "root": str(Path(tmp) / "scenes"), "recordings": {"train": args.recordings}}
        for i in range(1, args.recordings + 1):
            write_scene_set(
                clips, {**block_b, "recordings": {"train": i}}, simulation, params["array"], sample_rate, False
            )
            out["memory_mib"].append(process.memory_info().rss / 2**20)
            print(f"  after {i}: {out['memory_mib'][-1]:.0f} MiB")

    print("(c) a 1 kHz tone through a source turning at 40 degrees/s: energy > 500 Hz off the tone")
    rng = np.random.default_rng(args.seed)
    room = make_scene(
        np.array([6.0, 5.0, 3.0]), 0.4, np.array([3.0, 2.5, 1.5]), np.array([4.5, 2.5, 1.5]),
        array=ArrayGeometry.tetrahedral(),
    )  # fmt: skip
    event = Event(0, "tone", "tone", 0, 0.0, 3.0, 0.0, 0.0, room.source_position, 40.0, 0.0)
    _, path = event_path(event, room, rooms, config.synthesis.rir_hop_s)
    moving = get_backend(simulation["backend"], **settings["conf (split path)"][0])
    scenes = path_scenes(room, path)
    one = scenes[0]
    cheap, full = moving.simulate(one, sample_rate), static.simulate(one, sample_rate)
    # where the cheap RIR's image sources end (its statistical tail, a random draw, starts)
    tdiff, _ = _tail_times(one, moving.diffuse_attenuation_db, moving.max_attenuation_db)
    n_early = int(tdiff * sample_rate)
    out["rir_difference"] = float(
        np.linalg.norm(cheap[:, :n_early] - full[:, :n_early]) / np.linalg.norm(full[:, :n_early])
    )
    print(
        f"  the conf's moving RIR against the static events' over its image-source part (first "
        f"{1000 * tdiff:.0f} ms), relative RMS difference: {out['rir_difference']:.3f}"
    )
    rirs = [moving.simulate(scene, sample_rate) for scene in scenes]
    hop = int(round(config.synthesis.rir_hop_s * sample_rate))
    tone = np.sin(2 * math.pi * 1000.0 * np.arange(int(3.0 * sample_rate)) / sample_rate + rng.uniform(0, 6.28))
    early, late = moving.simulate_path(scenes, sample_rate)
    for label, audio in (
        ("split path (conf)", render_path(tone, early, late, hop)),
        ("crossfade (Hann)", render_moving(tone, rirs, hop)),
        ("hard switch (baseline)", hard_switch(tone, rirs, hop)),
    ):
        out["clicks_db"][label] = off_tone_db(audio[:, : len(tone)], sample_rate, 1000.0)
        print(f"  {label:<24}{out['clicks_db'][label]:7.1f} dB")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
