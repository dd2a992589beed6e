"""Matplotlib figures of videos: frame grids with missing steps marked, and loss curves (plus
``save_gif``, an animated GIF of videos side by side, written with Pillow).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show``; save it
with ``fig.savefig(path)``. The library never selects a matplotlib backend (Jupyter's inline
backend keeps working); the CLI picks ``Agg`` for its own process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dive_pyro.data.batch import SceneBatch

__all__ = ["plot_frame_grid", "plot_scene", "plot_loss_curve", "save_gif"]

_MISSING_COLOR = "tab:red"
_FUTURE_COLOR = "tab:blue"


def _as_numpy_video(video: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    arr = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"row {name!r} must have shape (T, 1, H, W) or (T, H, W), got {arr.shape}")
    return arr


def plot_frame_grid(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    *,
    num_observed: int | None = None,
    missing: Mapping[str, Sequence[bool]] | None = None,
    title: str | None = None,
    cell_inches: float = 0.9,
) -> Figure:
    """One row per video (``(T, 1, H, W)``), one column per frame.

    ``missing`` maps a row name to a per-frame flag; flagged frames get a red frame (e.g. steps
    where some object is missing).  With ``num_observed`` = K, future frames (t ≥ K) get a blue
    title and a separating line.
    """
    if not rows:
        raise ValueError("plot_frame_grid needs at least one row")
    videos = {name: _as_numpy_video(v, name) for name, v in rows.items()}
    lengths = {v.shape[0] for v in videos.values()}
    T = max(lengths)
    fig, axes = plt.subplots(
        len(videos), T, figsize=(cell_inches * T + 1.2, cell_inches * len(videos) + 0.5), squeeze=False
    )
    for r, (name, video) in enumerate(videos.items()):
        flags = list(missing.get(name, [])) if missing else []
        for t in range(T):
            ax = axes[r, t]
            ax.set_xticks([])
            ax.set_yticks([])
            if t >= video.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(video[t], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if t < len(flags) and flags[t]:
                h, w = video[t].shape
                ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor=_MISSING_COLOR, linewidth=2.5))
            if r == 0:
                future = num_observed is not None and t >= num_observed
                ax.set_title(f"t={t}", fontsize=7, color=_FUTURE_COLOR if future else "black")
            if t == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if num_observed is not None and 0 < num_observed < T:
        fig.canvas.draw()
        left = axes[0, num_observed - 1].get_position()
        right = axes[0, num_observed].get_position()
        x = (left.x1 + right.x0) / 2
        fig.add_artist(plt.Line2D([x, x], [0.02, 0.95], color=_FUTURE_COLOR, linewidth=1.5))
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_scene(
    batch: SceneBatch,
    index: int = 0,
    *,
    extra_rows: Mapping[str, torch.Tensor] | None = None,
    title: str | None = None,
) -> Figure:
    """Observed / ground truth / each object for video ``index`` of ``batch`` (missing steps in red).

    ``extra_rows`` adds rows such as a model's reconstruction (``(T, 1, H, W)`` each).
    """
    if not 0 <= index < batch.batch_size:
        raise IndexError(f"index must be in [0, {batch.batch_size}), got {index}")
    rows: dict[str, torch.Tensor] = {"observed": batch.observed[index], "ground truth": batch.complete[index]}
    flags: dict[str, list[bool]] = {"observed": batch.missing[index].any(0).tolist()}
    for i in range(batch.num_objects):
        rows[f"object {i}"] = batch.objects[index, i]
        flags[f"object {i}"] = batch.missing[index, i].tolist()
    for name, video in (extra_rows or {}).items():
        rows[name] = video
    return plot_frame_grid(rows, num_observed=batch.num_observed, missing=flags, title=title)


def plot_loss_curve(
    steps: Sequence[float],
    losses: Sequence[float],
    *,
    ylabel: str = "−ELBO per pixel",
    smooth: int = 0,
    title: str | None = None,
) -> Figure:
    """Loss against step, with an optional moving average of ``smooth`` steps."""
    if len(steps) != len(losses):
        raise ValueError(f"steps and losses differ in length: {len(steps)} != {len(losses)}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, lw=0.8, alpha=0.5 if smooth > 1 else 1.0, label="per step")
    if smooth > 1 and len(losses) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax.plot(steps[smooth - 1 :], np.convolve(losses, kernel, mode="valid"), lw=1.5, label=f"mean of {smooth}")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_gif(videos: Sequence[torch.Tensor | np.ndarray], path, *, scale: int = 4, ms_per_frame: int = 200) -> None:
    """Animated GIF of videos ``(T, 1, H, W)`` in [0, 1] side by side (a 2-px grey gap between),
    each pixel enlarged ``scale`` times; shorter videos hold their last frame."""
    from PIL import Image

    arrays = [_as_numpy_video(v, f"videos[{i}]") for i, v in enumerate(videos)]
    if not arrays:
        raise ValueError("save_gif needs at least one video")
    T, H = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    frames = []
    for t in range(T):
        tiles = []
        for a in arrays:
            tile = np.zeros((H, a.shape[2]))
            tile[: a.shape[1]] = a[min(t, a.shape[0] - 1)]
            tiles += [tile, np.full((H, 2), 0.5)]
        image = (np.clip(np.concatenate(tiles[:-1], 1), 0, 1) * 255).astype(np.uint8)
        frames.append(Image.fromarray(image).resize((image.shape[1] * scale, H * scale), Image.NEAREST))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
