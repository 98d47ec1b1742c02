"""Reports of the ``scenes`` pipeline: one recording's tracks (reference, and predicted when given)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mc_simclr.audio.dcase import LABEL_FRAME_SECONDS, read_metadata


def plot_tracks(
    reference: pd.DataFrame,
    class_names: list[str],
    title: str = "",
    predicted: pd.DataFrame | None = None,
) -> plt.Figure:
    """Azimuth and elevation over time of every event, one colour per class: reference as lines of
    dots, predictions (when given) as open circles on top."""
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, height_ratios=[2, 1])
    cmap = plt.get_cmap("tab20", max(len(class_names), 1))
    shown = set()
    for (cls, _source), rows in reference.groupby(["class", "source"], sort=True):
        t = rows["frame"].to_numpy() * LABEL_FRAME_SECONDS
        label = class_names[int(cls)] if int(cls) not in shown else None
        shown.add(int(cls))
        for ax, column in zip(axes, ("azimuth", "elevation"), strict=True):
            ax.scatter(t, rows[column], s=6, color=cmap(int(cls)), label=label if ax is axes[0] else None)
    if predicted is not None and len(predicted):
        colors = [cmap(int(c)) for c in predicted["class"]]
        t = predicted["frame"].to_numpy() * LABEL_FRAME_SECONDS
        for ax, column in zip(axes, ("azimuth", "elevation"), strict=True):
            ax.scatter(t, predicted[column], s=18, facecolors="none", edgecolors=colors, linewidths=0.8)
    axes[0].set(ylabel="azimuth (°)", ylim=(-185, 185), yticks=np.arange(-180, 181, 90), title=title)
    axes[1].set(ylabel="elevation (°)", ylim=(-95, 95), xlabel="time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    if shown:
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="class")
    fig.tight_layout()
    return fig


def scene_tracks_figure(recordings: pd.DataFrame, class_names: list[str]) -> plt.Figure:
    """The reference tracks of the first test recording (else the first recording)."""
    if recordings.empty:
        raise ValueError("scene_recordings is empty: no recording to plot (scenes.recordings are all 0)")
    test = recordings[recordings["split"] == "test"]
    row = (test if len(test) else recordings).iloc[0]
    rows = read_metadata(row["metadata"], len(class_names))
    title = (
        f"{row['recording']}: reference tracks "
        f"(RT60 {row['rt60']:.2f} s, {row['n_moving']} of {row['n_events']} events moving)"
    )
    return plot_tracks(rows, class_names, title)
