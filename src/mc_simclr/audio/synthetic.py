"""Procedural corpus of labelled mono sound events: the embedded default data set.

Every clip is generated from a seed, needs no download and is cheap enough to run the whole
pipeline offline on a small CPU. A clip holds several events of one class at random onsets; the
clip draws its *instance* parameters once (``instance_params``: the "source" heard in the clip) and
every event then jitters around them (``synthesize_event``), so clips of one class differ from each
other while the events within one clip are similar but not identical. Each class has its own
event density (a per-clip mean rate, with Gamma-distributed gaps so that events sometimes overlap
and sometimes leave pauses); ``engine`` is sustained and covers the whole clip.

Classes (frequencies are in Hz and independent of the sample rate; anything that would reach
0.45 times the sample rate is capped or dropped):

``pluck_low`` / ``pluck_high``
    Karplus-Strong plucked strings, f0 65-160 Hz / 350-1000 Hz. Clip: f0, brightness of the
    pluck (its cut-off, 2-8 harmonics), decay time. Event: f0 (+-0.7 semitone), brightness,
    decay, level.
``bell``
    Inharmonic partials (Risset's bell ratios) with exponential decays that shorten with the
    partial. Clip: f0 250-800 Hz, stretched ratios, decay time. Event: f0, decay, level.
``chirp_up`` / ``chirp_down``
    Logarithmic sine sweeps of 1-2.5 octaves starting from 250-1000 Hz (up) or ending there
    (down), with a weak second harmonic. Clip: range, span, sweep length, harmonic level. Event:
    range, span, length, level.
``noise_low`` / ``noise_mid`` / ``noise_high``
    Band-pass noise bursts centred at 120-300 Hz / 700-1600 Hz / 3000-5500 Hz. Clip: centre,
    bandwidth, burst length, attack. Event: centre, length, release, level.
``footsteps``
    Bouts of 2-6 steps at walking rate (1.5-2.3 steps/s), each step a heel and a toe click of
    exponentially decaying band-pass noise. Clip: pace, surface band, decay, heel-toe gap. Event:
    number of steps, per-step timing and strength.
``engine``
    Sustained harmonic hum, f0 22-55 Hz, with a wandering f0, slow amplitude modulation and a
    little low rumble; rendered as overlapping cross-faded segments. Clip: f0, spectral tilt,
    modulation rate and depth. Event (segment): f0, wander, modulation phase.
``crackle``
    Bursts of sparse Poisson clicks (10-60 clicks/s) with heavy-tailed strengths, band-passed
    over 1.3 octaves from 1.5-4 kHz. Clip: click rate, band, click length, burst length. Event:
    rate, burst length, click times and strengths.
``whistle``
    Near-pure tone of 900-2600 Hz with vibrato, an onset glide and a little breath noise. Clip:
    pitch, vibrato rate and depth, breath level, note length. Event: pitch (+-1.5 semitones),
    note length, level.
``drum``
    Membrane hit: a sine whose pitch drops to 55-170 Hz plus a band-pass noise transient. Clip:
    pitch, drop ratio and time, decay, transient level and colour. Event: all of these, jittered.
``buzz``
    Vowel-like syllables: a glottal harmonic source (f0 100-260 Hz) through three formant
    resonators. Clip: f0, vowel (formants), source tilt, syllable length. Event: f0 and its glide,
    formants (+-4 %), length, level.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

_Instance = dict[str, float]

_MIN_SAMPLE_RATE = 8000
_MAX_FREQUENCY_FRACTION = 0.45  # of the sample rate: every component stays below Nyquist
_NOISE_FLOOR_DB = -60.0  # relative to the clip peak
_PEAK_LEVEL_RANGE = (0.3, 0.9)
_INTER_ONSET_GAMMA_SHAPE = 2.0  # inter-onset gaps ~ Gamma(2): irregular gaps and overlaps
_WAVETABLE_SIZE = 4096
_KS_BLOCK_MIN_PERIOD = 56  # Karplus-Strong: block recursion beats lfilter from this period up
_LN_1000 = math.log(1000.0)  # amplitude decay constant to reach -60 dB


# --------------------------------------------------------------------------------------------
# Small signal helpers
# --------------------------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _detune(rng: np.random.Generator, frequency: float, semitones_std: float) -> float:
    """``frequency`` moved by a normally distributed number of semitones."""
    return frequency * 2.0 ** (rng.normal(0.0, semitones_std) / 12.0)


def _vary(rng: np.random.Generator, value: float, relative_std: float) -> float:
    """``value`` scaled by a log-normal factor of spread ``relative_std``."""
    return value * float(np.exp(rng.normal(0.0, relative_std)))


def _frequency_cap(sample_rate: int) -> float:
    return _MAX_FREQUENCY_FRACTION * sample_rate


def _n_samples(duration_s: float, sample_rate: int) -> int:
    return max(1, int(round(duration_s * sample_rate)))


def _time(n: int, sample_rate: int) -> np.ndarray:
    return np.arange(n) / sample_rate


def _envelope(n: int, sample_rate: int, attack_s: float, release_s: float) -> np.ndarray:
    """Unit envelope with a linear attack and a half-cosine release (each at most half of ``n``)."""
    env = np.ones(n)
    attack = min(int(attack_s * sample_rate), n // 2)
    release = min(int(release_s * sample_rate), n // 2)
    if attack > 0:
        env[:attack] = np.arange(attack) / attack
    if release > 0:
        env[n - release :] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, release + 1) / release))
    return env


def _smooth_noise(rng: np.random.Generator, n: int, sample_rate: int, points_per_second: float) -> np.ndarray:
    """Slowly varying standard-normal contour: random control points, linearly interpolated."""
    n_points = int(math.ceil(n / sample_rate * points_per_second)) + 2
    control = rng.standard_normal(n_points)
    return np.interp(np.linspace(0.0, n_points - 1.0, n), np.arange(n_points), control)


def _sine_from_frequency(frequency: np.ndarray, sample_rate: int, phase: float) -> np.ndarray:
    """Sine following an instantaneous frequency contour (Hz per sample)."""
    return np.sin(2.0 * np.pi * np.cumsum(frequency) / sample_rate + phase)


def _decaying_sine(n: int, frequency: float, t60: float, phase: float, sample_rate: int) -> np.ndarray:
    """``r**k sin(w k + phase)`` for ``k < n``, decaying by 60 dB over ``t60`` seconds.

    Computed as the impulse response of a two-pole resonator, much cheaper than ``exp * sin``.
    """
    radius = math.exp(-_LN_1000 / (t60 * sample_rate))
    omega = 2.0 * math.pi * frequency / sample_rate
    numerator = [math.sin(phase), radius * math.sin(omega - phase)]
    denominator = [1.0, -2.0 * radius * math.cos(omega), radius**2]
    impulse = np.zeros(n)
    impulse[0] = 1.0
    return signal.lfilter(numerator, denominator, impulse)


def _harmonic_wavetable(amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period (plus the wrap-around sample) of ``sum_k a_k sin(2 pi k u + phi_k)``, k >= 1."""
    spectrum = np.zeros(_WAVETABLE_SIZE // 2 + 1, dtype=np.complex128)
    coefficients = 0.5 * _WAVETABLE_SIZE * amplitudes * np.exp(1j * (phases - 0.5 * np.pi))
    spectrum[1 : amplitudes.size + 1] = coefficients
    period = np.fft.irfft(spectrum, _WAVETABLE_SIZE)
    return np.append(period, period[0])


def _play_wavetable(table: np.ndarray, frequency: np.ndarray, sample_rate: int) -> np.ndarray:
    """Read a periodic wavetable at an instantaneous fundamental ``frequency`` (linear interp)."""
    position = (np.cumsum(frequency) / sample_rate) % 1.0 * _WAVETABLE_SIZE
    return np.interp(position, np.arange(_WAVETABLE_SIZE + 1), table)


def _harmonic_amplitudes(max_frequency: float, sample_rate: int, tilt: float, max_harmonics: int) -> np.ndarray:
    """Amplitudes ``k**-tilt`` of the harmonics that stay below the cap at ``max_frequency``."""
    count = int(np.clip(_frequency_cap(sample_rate) // max_frequency, 1, max_harmonics))
    return np.arange(1, count + 1, dtype=np.float64) ** -tilt


def _decaying_noise_bursts(
    rng: np.random.Generator,
    n: int,
    sample_rate: int,
    onsets: np.ndarray,
    amplitudes: np.ndarray,
    decay_s: float,
) -> np.ndarray:
    """White noise under exponentially decaying envelopes started at ``onsets`` (samples)."""
    impulses = np.zeros(n)
    np.add.at(impulses, onsets, amplitudes)
    pole = math.exp(-1.0 / (decay_s * sample_rate))
    return signal.lfilter([1.0], [1.0, -pole], impulses) * rng.standard_normal(n)


def _bandpass(x: np.ndarray, low: float, high: float, sample_rate: int) -> np.ndarray:
    """4th-order Butterworth band-pass of ``x`` between ``low`` and ``high`` Hz.

    The upper -3 dB edge is at most 0.9 times the frequency cap, so that the filter skirt, too,
    stays clear of Nyquist.
    """
    high = min(high, 0.9 * _frequency_cap(sample_rate))
    low = min(low, 0.8 * high)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _karplus_strong(excitation: np.ndarray, period: int, gain: float) -> np.ndarray:
    """Plucked-string comb ``y[n] = x[n] + gain / 2 * (y[n - P] + y[n - P - 1])``.

    ``lfilter`` costs ``len(excitation) * period`` operations, so long periods are computed one
    period at a time instead: every sample of a block depends only on earlier blocks, so the
    recursion costs ``len(excitation) / period`` vectorised steps.
    """
    if period < _KS_BLOCK_MIN_PERIOD:
        denominator = np.zeros(period + 2)
        denominator[0] = 1.0
        denominator[period:] = -0.5 * gain
        return signal.lfilter([1.0], denominator, excitation)
    offset = period + 1
    out = np.zeros(offset + excitation.size)
    half_gain = 0.5 * gain
    for start in range(offset, out.size, period):
        stop = min(start + period, out.size)
        out[start:stop] = excitation[start - offset : stop - offset] + half_gain * (
            out[start - period : stop - period] + out[start - offset : stop - offset]
        )
    return out[offset:]


# --------------------------------------------------------------------------------------------
# Classes: clip-level parameters (``draw``) and one event around them (``render``)
# --------------------------------------------------------------------------------------------


def _pluck_draw(
    f0_range: tuple[float, float], t60_range: tuple[float, float]
) -> Callable[[np.random.Generator], _Instance]:
    def draw(rng: np.random.Generator) -> _Instance:
        return {
            "f0": _log_uniform(rng, *f0_range),
            "brightness": rng.uniform(2.0, 8.0),  # pluck cut-off, in harmonics
            "t60": rng.uniform(*t60_range),
        }

    return draw


def _pluck_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    f0 = _detune(rng, p["f0"], 0.7)
    t60 = _vary(rng, p["t60"], 0.1)
    cutoff = min(_vary(rng, p["brightness"], 0.1) * f0, 0.5 * _frequency_cap(sample_rate))
    period = max(2, int(round(sample_rate / f0)))
    loop_gain = 10.0 ** (-3.0 / (t60 * sample_rate / period))  # -60 dB after t60 at the fundamental
    lowpass = signal.butter(2, cutoff, fs=sample_rate, output="sos")
    burst = signal.sosfilt(lowpass, rng.standard_normal(4 * period))[-period:]  # past the transient
    excitation = np.zeros(_n_samples(t60, sample_rate))
    excitation[: min(period, excitation.size)] = (burst - burst.mean())[: excitation.size]
    return _karplus_strong(excitation, period, loop_gain)


# Risset's bell: partial frequency ratios, relative amplitudes and relative decay times.
_BELL_RATIOS = np.array([0.56, 0.563, 0.92, 0.923, 1.19, 1.7, 2.0, 2.74, 3.0, 3.76, 4.07])
_BELL_AMPLITUDES = np.array([1.0, 0.67, 1.0, 1.8, 2.67, 1.67, 1.46, 1.33, 1.33, 1.0, 1.33])
_BELL_DECAYS = np.array([1.0, 0.9, 0.65, 0.55, 0.325, 0.35, 0.25, 0.2, 0.15, 0.1, 0.075])


def _bell_draw(rng: np.random.Generator) -> _Instance:
    params = {"f0": _log_uniform(rng, 250.0, 800.0), "t60": rng.uniform(1.2, 3.0)}
    stretch = rng.normal(0.0, 0.015, _BELL_RATIOS.size)
    params.update({f"stretch_{i}": float(s) for i, s in enumerate(stretch)})
    return params


def _bell_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    f0 = _detune(rng, p["f0"], 0.4)
    t60 = _vary(rng, p["t60"], 0.1)
    n = _n_samples(t60, sample_rate)
    out = np.zeros(n)
    partials = zip(_BELL_RATIOS, _BELL_AMPLITUDES, _BELL_DECAYS, strict=True)
    for i, (ratio, amplitude, decay) in enumerate(partials):
        frequency = f0 * ratio * math.exp(p[f"stretch_{i}"])
        if frequency >= _frequency_cap(sample_rate):
            continue
        length = _n_samples(decay * t60, sample_rate)
        phase = rng.uniform(0.0, 2.0 * np.pi)
        partial = _decaying_sine(length, frequency, decay * t60, phase, sample_rate)
        out[:length] += amplitude * partial
    return out * _envelope(n, sample_rate, 0.002, 0.0)


def _chirp_draw(rng: np.random.Generator) -> _Instance:
    return {
        "f_low": _log_uniform(rng, 250.0, 1000.0),
        "octaves": rng.uniform(1.0, 2.5),
        "length": rng.uniform(0.15, 0.5),
        "harmonic": rng.uniform(0.0, 0.3),
    }


def _chirp_render(rising: bool) -> Callable[[np.random.Generator, int, _Instance], np.ndarray]:
    def render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
        f_low = _detune(rng, p["f_low"], 1.0)
        octaves = p["octaves"] + rng.normal(0.0, 0.15)
        f_high = min(f_low * 2.0**octaves, _frequency_cap(sample_rate))
        n = _n_samples(_vary(rng, p["length"], 0.12), sample_rate)
        progress = np.arange(n) / n if rising else 1.0 - np.arange(n) / n
        frequency = f_low * (f_high / f_low) ** progress
        phase = 2.0 * np.pi * np.cumsum(frequency) / sample_rate
        out = np.sin(phase)
        if 2.0 * f_high < _frequency_cap(sample_rate):
            out += p["harmonic"] * np.sin(2.0 * phase)
        return out * _envelope(n, sample_rate, rng.uniform(0.005, 0.02), rng.uniform(0.01, 0.04))

    return render


def _noise_draw(centre_range: tuple[float, float]) -> Callable[[np.random.Generator], _Instance]:
    def draw(rng: np.random.Generator) -> _Instance:
        return {
            "centre": _log_uniform(rng, *centre_range),
            "octaves": rng.uniform(0.6, 1.4),
            "length": rng.uniform(0.15, 0.7),
            "attack": rng.uniform(0.005, 0.08),
        }

    return draw


def _noise_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    centre = _detune(rng, p["centre"], 1.0)
    half_band = 2.0 ** (0.5 * p["octaves"])
    n = _n_samples(_vary(rng, p["length"], 0.2), sample_rate)
    burst = _bandpass(rng.standard_normal(n), centre / half_band, centre * half_band, sample_rate)
    release = rng.uniform(0.2, 0.6) * n / sample_rate
    return burst * _envelope(n, sample_rate, _vary(rng, p["attack"], 0.2), release)


def _footsteps_draw(rng: np.random.Generator) -> _Instance:
    return {
        "step_rate": rng.uniform(1.5, 2.3),
        "centre": _log_uniform(rng, 300.0, 1200.0),
        "decay": rng.uniform(0.012, 0.04),
        "heel_toe": rng.uniform(0.04, 0.09),
        "toe_gain": rng.uniform(0.3, 0.8),
    }


def _footsteps_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    n_steps = int(rng.integers(2, 7))
    intervals = rng.normal(1.0, 0.04, n_steps) / p["step_rate"]
    heels = np.cumsum(intervals) - intervals[0]
    toes = heels + p["heel_toe"] * rng.lognormal(0.0, 0.1, n_steps)
    heel_gain = rng.lognormal(0.0, 0.25, n_steps)
    toe_gain = heel_gain * p["toe_gain"] * rng.lognormal(0.0, 0.2, n_steps)
    decay = _vary(rng, p["decay"], 0.1)
    n = _n_samples(toes[-1] + 10.0 * decay, sample_rate)
    onsets = np.round(np.concatenate([heels, toes]) * sample_rate).astype(np.int64)
    bursts = _decaying_noise_bursts(rng, n, sample_rate, onsets, np.concatenate([heel_gain, toe_gain]), decay)
    centre = _detune(rng, p["centre"], 0.5)
    return _bandpass(bursts, centre / 2.0, centre * 2.0, sample_rate)


def _engine_draw(rng: np.random.Generator) -> _Instance:
    return {
        "f0": _log_uniform(rng, 22.0, 55.0),
        "tilt": rng.uniform(0.7, 1.5),
        "wander": rng.uniform(0.01, 0.05),
        "am_rate": _log_uniform(rng, 0.15, 1.2),
        "am_depth": rng.uniform(0.15, 0.5),
        "rumble": rng.uniform(0.05, 0.2),
        "length": rng.uniform(2.5, 5.0),
    }


def _engine_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    f0 = _detune(rng, p["f0"], 0.5)
    n = _n_samples(_vary(rng, p["length"], 0.15), sample_rate)
    frequency = f0 * (1.0 + p["wander"] * _smooth_noise(rng, n, sample_rate, 1.0))
    amplitudes = _harmonic_amplitudes(float(frequency.max()), sample_rate, p["tilt"], 40)
    table = _harmonic_wavetable(amplitudes, rng.uniform(0.0, 2.0 * np.pi, amplitudes.size))
    hum = _play_wavetable(table, frequency, sample_rate) / np.abs(table).max()
    lowpass = signal.butter(2, 200.0, fs=sample_rate, output="sos")
    rumble = signal.sosfilt(lowpass, rng.standard_normal(n))
    rumble *= p["rumble"] / (np.abs(rumble).max() + 1e-12)
    t = _time(n, sample_rate)
    modulation = 1.0 + p["am_depth"] * np.sin(
        2.0 * np.pi * _vary(rng, p["am_rate"], 0.1) * t + rng.uniform(0.0, 2.0 * np.pi)
    )
    return (hum + rumble) * modulation * _envelope(n, sample_rate, 0.3, 0.3)


def _crackle_draw(rng: np.random.Generator) -> _Instance:
    return {
        "click_rate": _log_uniform(rng, 10.0, 60.0),
        "cutoff": _log_uniform(rng, 1500.0, 4000.0),
        "click_decay": rng.uniform(0.0003, 0.0012),
        "length": rng.uniform(0.6, 2.0),
    }


def _crackle_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    length = _vary(rng, p["length"], 0.2)
    n = _n_samples(length, sample_rate)
    n_clicks = max(1, int(rng.poisson(_vary(rng, p["click_rate"], 0.15) * length)))
    onsets = rng.integers(0, n, n_clicks)
    strengths = np.minimum(rng.pareto(2.5, n_clicks) + 0.2, 6.0)
    clicks = _decaying_noise_bursts(rng, n, sample_rate, onsets, strengths, p["click_decay"])
    cutoff = _vary(rng, p["cutoff"], 0.1)
    envelope = _envelope(n, sample_rate, 0.02, 0.02)
    return _bandpass(clicks, cutoff, 2.5 * cutoff, sample_rate) * envelope


def _whistle_draw(rng: np.random.Generator) -> _Instance:
    return {
        "f0": _log_uniform(rng, 900.0, 2600.0),
        "vibrato_rate": rng.uniform(4.0, 7.0),
        "vibrato_depth": rng.uniform(0.005, 0.025),
        "breath": rng.uniform(0.02, 0.08),
        "length": rng.uniform(0.25, 0.9),
    }


def _whistle_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    cap = _frequency_cap(sample_rate)
    f0 = min(_detune(rng, p["f0"], 1.5), cap / (1.0 + 2.0 * p["vibrato_depth"]))
    n = _n_samples(_vary(rng, p["length"], 0.2), sample_rate)
    t = _time(n, sample_rate)
    vibrato = p["vibrato_depth"] * np.sin(
        2.0 * np.pi * _vary(rng, p["vibrato_rate"], 0.05) * t + rng.uniform(0.0, 2.0 * np.pi)
    )
    glide = -rng.uniform(0.0, 0.03) * np.exp(-t / 0.04)
    frequency = f0 * (1.0 + vibrato + glide)
    tone = _sine_from_frequency(frequency, sample_rate, rng.uniform(0.0, 2.0 * np.pi))
    breath = _bandpass(rng.standard_normal(n), f0 / 1.3, f0 * 1.3, sample_rate)
    tone += p["breath"] * breath / (np.abs(breath).max() + 1e-12)
    return tone * _envelope(n, sample_rate, rng.uniform(0.02, 0.06), rng.uniform(0.04, 0.1))


def _drum_draw(rng: np.random.Generator) -> _Instance:
    return {
        "f_end": _log_uniform(rng, 55.0, 170.0),
        "drop_ratio": rng.uniform(1.5, 3.0),
        "drop_time": rng.uniform(0.015, 0.06),
        "t60": rng.uniform(0.2, 0.7),
        "noise_gain": rng.uniform(0.2, 0.6),
        "noise_decay": rng.uniform(0.004, 0.015),
        "noise_centre": _log_uniform(rng, 1500.0, 5000.0),
    }


def _drum_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    f_end = _detune(rng, p["f_end"], 0.8)
    t60 = _vary(rng, p["t60"], 0.15)
    drop_ratio = 1.0 + _vary(rng, p["drop_ratio"] - 1.0, 0.15)
    n = _n_samples(t60, sample_rate)
    t = _time(n, sample_rate)
    frequency = f_end * (1.0 + (drop_ratio - 1.0) * np.exp(-t / _vary(rng, p["drop_time"], 0.15)))
    body = _sine_from_frequency(frequency, sample_rate, 0.0) * np.exp(-_LN_1000 * t / t60)
    hit = _decaying_noise_bursts(
        rng, n, sample_rate, np.zeros(1, np.int64), np.ones(1), _vary(rng, p["noise_decay"], 0.15)
    )
    centre = _detune(rng, p["noise_centre"], 1.0)
    hit = _bandpass(hit, centre / 2.0, centre * 2.0, sample_rate)
    return body + _vary(rng, p["noise_gain"], 0.3) * hit / (np.abs(hit).max() + 1e-12)


def _buzz_draw(rng: np.random.Generator) -> _Instance:
    return {
        "f0": _log_uniform(rng, 100.0, 260.0),
        "f1": rng.uniform(300.0, 800.0),
        "f2": rng.uniform(900.0, 2300.0),
        "f3": rng.uniform(2400.0, 3300.0),
        "tilt": rng.uniform(0.9, 1.3),
        "length": rng.uniform(0.2, 0.6),
    }


def _buzz_render(rng: np.random.Generator, sample_rate: int, p: _Instance) -> np.ndarray:
    f0 = _detune(rng, p["f0"], 1.5)
    n = _n_samples(_vary(rng, p["length"], 0.2), sample_rate)
    glide = rng.normal(0.0, 2.0) * (np.arange(n) / n - 0.5)
    frequency = f0 * 2.0 ** (glide / 12.0) * (1.0 + 0.01 * _smooth_noise(rng, n, sample_rate, 8.0))
    amplitudes = _harmonic_amplitudes(float(frequency.max()), sample_rate, p["tilt"], 100)
    table = _harmonic_wavetable(amplitudes, np.zeros(amplitudes.size))
    source = _play_wavetable(table, frequency, sample_rate)
    sections = []
    for key in ("f1", "f2", "f3"):
        formant = min(_vary(rng, p[key], 0.04), 0.9 * _frequency_cap(sample_rate))
        radius = math.exp(-math.pi * (40.0 + 0.04 * formant) / sample_rate)
        feedback = -2.0 * radius * math.cos(2.0 * math.pi * formant / sample_rate)
        sections.append([1.0 - radius, 0.0, 0.0, 1.0, feedback, radius**2])
    vowel = signal.sosfilt(np.array(sections), source)
    return vowel * _envelope(n, sample_rate, rng.uniform(0.02, 0.05), rng.uniform(0.04, 0.1))


@dataclass(frozen=True)
class _EventClass:
    """How a class draws its clip parameters, renders one event and spaces events in a clip.

    ``event_rate`` is the range of the per-clip mean event rate (events per second); ``None``
    marks a sustained class whose events are cross-faded segments that cover the whole clip.
    """

    draw: Callable[[np.random.Generator], _Instance]
    render: Callable[[np.random.Generator, int, _Instance], np.ndarray]
    event_rate: tuple[float, float] | None


_EVENT_CLASSES: dict[str, _EventClass] = {
    "pluck_low": _EventClass(_pluck_draw((65.0, 160.0), (1.0, 2.2)), _pluck_render, (1.0, 2.0)),
    "pluck_high": _EventClass(_pluck_draw((350.0, 1000.0), (0.35, 0.9)), _pluck_render, (1.5, 3.5)),
    "bell": _EventClass(_bell_draw, _bell_render, (0.6, 1.2)),
    "chirp_up": _EventClass(_chirp_draw, _chirp_render(rising=True), (1.0, 2.5)),
    "chirp_down": _EventClass(_chirp_draw, _chirp_render(rising=False), (1.0, 2.5)),
    "noise_low": _EventClass(_noise_draw((120.0, 300.0)), _noise_render, (0.8, 2.0)),
    "noise_mid": _EventClass(_noise_draw((700.0, 1600.0)), _noise_render, (0.8, 2.0)),
    "noise_high": _EventClass(_noise_draw((3000.0, 5500.0)), _noise_render, (0.8, 2.0)),
    "footsteps": _EventClass(_footsteps_draw, _footsteps_render, (0.4, 0.8)),
    "engine": _EventClass(_engine_draw, _engine_render, None),
    "crackle": _EventClass(_crackle_draw, _crackle_render, (0.7, 1.4)),
    "whistle": _EventClass(_whistle_draw, _whistle_render, (0.9, 2.0)),
    "drum": _EventClass(_drum_draw, _drum_render, (1.5, 3.5)),
    "buzz": _EventClass(_buzz_draw, _buzz_render, (1.0, 2.2)),
}

CLASSES: tuple[str, ...] = tuple(_EVENT_CLASSES)
"""Names of the synthetic sound event classes, in a fixed order."""


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


_VARIANT = re.compile(r"^(?P<base>[a-z_]+?)_(?P<k>[1-9][0-9]*)of(?P<n>[1-9][0-9]*)$")
#: Draws of a class's instance parameters that fix the quantile bands of its near-neighbour variants.
_VARIANT_REFERENCE_DRAWS = 4096


def variant_label(base: str, k: int, n: int) -> str:
    """The label of near-neighbour variant ``k`` (1-based) of ``n`` of class ``base``: ``"<base>_<k>of<n>"``."""
    _event_class(base)
    if not 1 <= k <= n:
        raise ValueError(f"variant {k} of {n} does not exist (need 1 <= k <= n)")
    return base if n == 1 else f"{base}_{k}of{n}"


def variant_labels(classes: tuple[str, ...], variants_per_class: int) -> tuple[str, ...]:
    """Every class of ``classes`` split into ``variants_per_class`` near-neighbour variants."""
    if variants_per_class < 1:
        raise ValueError(f"corpus.synthetic.variants_per_class must be >= 1, got {variants_per_class}")
    return tuple(variant_label(c, k, variants_per_class) for c in classes for k in range(1, variants_per_class + 1))


def parse_label(label: str) -> tuple[str, int, int]:
    """``(base class, k, n)`` of a label: ``"bell"`` -> ``("bell", 1, 1)``, ``"bell_2of3"`` -> ``("bell", 2, 3)``."""
    if isinstance(label, str) and label not in _EVENT_CLASSES:
        match = _VARIANT.match(label)
        if match and match["base"] in _EVENT_CLASSES and 1 <= int(match["k"]) <= int(match["n"]):
            return match["base"], int(match["k"]), int(match["n"])
    _event_class(label)
    return label, 1, 1


@functools.cache
def _variant_edges(base: str, n: int) -> np.ndarray:
    """Quantiles splitting the first instance parameter of ``base`` into ``n`` bands of equal probability."""
    rng = np.random.default_rng([_VARIANT_REFERENCE_DRAWS, CLASSES.index(base)])
    spec = _EVENT_CLASSES[base]
    first = [next(iter(spec.draw(rng).values())) for _ in range(_VARIANT_REFERENCE_DRAWS)]
    return np.quantile(first, np.linspace(0.0, 1.0, n + 1)[1:-1])


def _event_class(label: str) -> _EventClass:
    try:
        return _EVENT_CLASSES[label]
    except (KeyError, TypeError):
        raise ValueError(
            f"label must be one of {', '.join(CLASSES)} (or a variant such as {CLASSES[0]}_1of2); got {label!r}"
        ) from None


def _check_sample_rate(sample_rate: int) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer number of Hz; got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive; got {sample_rate}")
    if sample_rate < _MIN_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be at least {_MIN_SAMPLE_RATE} Hz; got {sample_rate}")


def _add_at(clip: np.ndarray, event: np.ndarray, onset: int) -> None:
    """Add ``event`` to ``clip`` starting at sample ``onset`` (may be negative), truncated."""
    start = max(onset, 0)
    segment = event[start - onset : clip.size - onset]
    clip[start : start + segment.size] += segment


def _add_events(
    clip: np.ndarray,
    label: str,
    rng: np.random.Generator,
    sample_rate: int,
    instance: _Instance,
) -> None:
    """Add events whose inter-onset gaps follow a Gamma law around ``instance["event_rate"]``.

    The first onset falls within the first fifth of the clip and within half a mean gap.
    """
    mean_gap_s = 1.0 / instance["event_rate"]
    first_onset_s = rng.uniform(0.0, min(0.2 * clip.size / sample_rate, 0.5 * mean_gap_s))
    onset = int(first_onset_s * sample_rate)
    while onset < clip.size:
        _add_at(clip, synthesize_event(label, rng, sample_rate, instance), onset)
        gap_s = rng.gamma(_INTER_ONSET_GAMMA_SHAPE, mean_gap_s / _INTER_ONSET_GAMMA_SHAPE)
        onset += max(1, int(gap_s * sample_rate))


def _add_sustained_segments(
    clip: np.ndarray,
    label: str,
    rng: np.random.Generator,
    sample_rate: int,
    instance: _Instance,
) -> None:
    """Cover the clip with segments overlapping by 15-45 %, the first already under way."""
    event = synthesize_event(label, rng, sample_rate, instance)
    onset = -int(rng.uniform(0.1, 0.5) * event.size)
    while True:
        _add_at(clip, event, onset)
        onset += max(1, int(rng.uniform(0.55, 0.85) * event.size))
        if onset >= clip.size:
            return
        event = synthesize_event(label, rng, sample_rate, instance)


def instance_params(label: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw the clip-level parameters of one sound source of class ``label``.

    The returned dict (parameter name -> float; frequencies in Hz, times in seconds) describes the
    source heard throughout one clip, e.g. its base pitch, band, brightness or pace. It also holds
    ``level_std_db``, the spread of event levels, and, for non-sustained classes, ``event_rate``,
    the mean number of event onsets per second. Pass it to :func:`synthesize_event`.

    Raises:
        ValueError: if ``label`` is not one of :data:`CLASSES`.
    """
    base, k, n = parse_label(label)
    spec = _event_class(base)
    params = spec.draw(rng)
    if n > 1:  # a near-neighbour variant: the first parameter (pitch, band, rate) in its band
        edges = np.concatenate([[-np.inf], _variant_edges(base, n), [np.inf]])
        while not edges[k - 1] <= next(iter(params.values())) < edges[k]:
            params = spec.draw(rng)
    params["level_std_db"] = rng.uniform(1.0, 4.0)
    if spec.event_rate is not None:
        params["event_rate"] = _log_uniform(rng, *spec.event_rate)
    return params


def synthesize_event(label: str, rng: np.random.Generator, sample_rate: int, instance: dict[str, float]) -> np.ndarray:
    """Render one event of class ``label`` around the clip parameters ``instance``.

    The event jitters around ``instance`` (as drawn by :func:`instance_params` for the same label)
    in pitch, band, envelope and length as described in the module docstring. It is returned as a
    float64 mono array at ``sample_rate`` whose peak is a level drawn around 1 with spread
    ``instance["level_std_db"]`` dB; its length is the natural length of the event.

    Raises:
        ValueError: if ``label`` is unknown or ``sample_rate`` is not an integer >= 8000 Hz.
    """
    spec = _event_class(parse_label(label)[0])
    _check_sample_rate(sample_rate)
    event = spec.render(rng, sample_rate, instance)
    level = 10.0 ** (rng.normal(0.0, instance["level_std_db"]) / 20.0)
    return event * (level / (np.abs(event).max() + 1e-12))


def synthesize_clip(
    label: str,
    duration_s: float,
    sample_rate: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
) -> np.ndarray:
    """Synthesize a mono clip of ``duration_s`` seconds holding several events of class ``label``.

    One set of :func:`instance_params` is drawn for the clip; events are rendered with
    :func:`synthesize_event` and placed at onsets whose gaps follow a Gamma(2) law around the
    clip's ``event_rate``, so gaps and overlaps vary over time and two crops of a long clip hear
    different events of the same source. The first onset falls within the first fifth of the clip
    (within half a mean gap), so even a 0.3 s clip holds at least one, possibly truncated, event.
    Sustained classes (``engine``) are cross-faded segments that cover the whole clip. A noise
    floor 60 dB below the peak is added and the clip is peak-normalised to a level drawn
    uniformly in [0.3, 0.9].

    Args:
        label: one of :data:`CLASSES`.
        duration_s: clip length in seconds; the clip has ``round(duration_s * sample_rate)``
            samples.
        sample_rate: in Hz, an integer of at least 8000 (e.g. 16000 or 44100).
        seed: anything :func:`numpy.random.default_rng` accepts; the clip is a deterministic
            function of it. A ``Generator`` is used (and advanced) in place.

    Returns:
        A finite float32 array of shape ``(round(duration_s * sample_rate),)``.

    Raises:
        ValueError: if ``label`` is unknown, ``duration_s`` is not a positive finite number that
            gives at least one sample, or ``sample_rate`` is not an integer >= 8000 Hz.
    """
    spec = _event_class(parse_label(label)[0])
    _check_sample_rate(sample_rate)
    is_number = isinstance(duration_s, (int, float, np.integer, np.floating))
    if isinstance(duration_s, bool) or not is_number or not 0.0 < duration_s < math.inf:
        raise ValueError(f"duration_s must be a positive finite number of seconds; got {duration_s!r}")
    n = int(round(duration_s * sample_rate))
    if n < 1:
        raise ValueError(f"duration_s={duration_s!r} gives no sample at sample_rate={sample_rate}")

    rng = np.random.default_rng(seed)
    instance = instance_params(label, rng)
    clip = np.zeros(n)
    if spec.event_rate is None:
        _add_sustained_segments(clip, label, rng, sample_rate, instance)
    else:
        _add_events(clip, label, rng, sample_rate, instance)

    peak = np.abs(clip).max()
    floor = 10.0 ** (_NOISE_FLOOR_DB / 20.0) * (peak if peak > 0.0 else 1.0)
    clip += floor * rng.standard_normal(n)
    clip *= rng.uniform(*_PEAK_LEVEL_RANGE) / np.abs(clip).max()
    return clip.astype(np.float32)
