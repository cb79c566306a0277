"""PNG figures for reports: spectrograms side by side, quality against bitrate, speed bars.

matplotlib is an optional extra (`pip install -e ".[eval]"`), imported only here and only when a
figure is drawn; without it `plots_available()` is False and reports say how to get the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

MISSING = "figures need matplotlib: pip install -e \".[eval]\""


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def log_mel(audio: np.ndarray, sample_rate: int, n_mels: int = 80) -> np.ndarray:
    """Log-mel spectrogram [n_mels, frames] (torchaudio), for display."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=n_mels)
    spec = mel(torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, -1))[0]
    return (10 * torch.log10(spec + 1e-8)).numpy()


def spectrograms(panels: Sequence[tuple[str, np.ndarray, int]], path: str | Path) -> Path:
    """One log-mel spectrogram per (title, audio, rate), stacked, on one colour scale."""
    plt = _pyplot()
    specs = [(title, log_mel(audio, rate)) for title, audio, rate in panels]
    top = max(float(s.max()) for _, s in specs)
    fig, axes = plt.subplots(len(specs), 1, figsize=(10, 2.2 * len(specs)), squeeze=False)
    for ax, (title, spec) in zip(axes[:, 0], specs, strict=True):
        ax.imshow(spec, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("mel bin")
    axes[-1, 0].set_xlabel("frame (hop of 256 samples)")
    return _save(plt, fig, path)


def quality_vs_bitrate(kbps: Sequence[float], metrics: dict[str, Sequence[float | None]], path: str | Path,
                       title: str = "") -> Path:
    """One panel per metric (PESQ, STOI, mel distance, SI-SDR...) against bitrate; None values are left out."""
    plt = _pyplot()
    shown = {name: values for name, values in metrics.items() if any(v is not None for v in values)}
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3), squeeze=False)
    for ax, (name, values) in zip(axes[0], shown.items(), strict=True):
        points = [(k, v) for k, v in zip(kbps, values, strict=True) if v is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        ax.set_xlabel("kbps")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def speed_bars(names: Sequence[str], groups: dict[str, Sequence[float | None]], path: str | Path,
               unit: str = "x real time") -> Path:
    """Grouped horizontal bars, one group per name (e.g. encode / decode speed of each codec)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(names) * len(groups)))
    height = 0.8 / len(groups)
    y = np.arange(len(names))
    for i, (label, values) in enumerate(groups.items()):
        ax.barh(y + i * height, [v or 0.0 for v in values], height, label=label)
    ax.set_yticks(y + height * (len(groups) - 1) / 2, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)


def metric_bars(names: Sequence[str], metrics: dict[str, Sequence[float | None]], path: str | Path) -> Path:
    """One small bar chart per metric, the same names in each (None values are left out)."""
    plt = _pyplot()
    shown = {name: values for name, values in metrics.items() if any(v is not None for v in values)}
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 0.8 + 0.45 * len(names)), squeeze=False)
    y = np.arange(len(names))
    for ax, (title, values) in zip(axes[0], shown.items(), strict=True):
        ax.barh(y, [v if v is not None else 0.0 for v in values])
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)
