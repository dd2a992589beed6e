"""Table-1 evaluation: Rec / Pred metrics of a predicted video against a ``SceneBatch``.

Groups (K = ``batch.num_observed``), each averaged over its frames and sequences:

* ``rec``: input frames 0..K−1 vs ``batch.complete`` (imputation quality, paper Table 1 "Rec");
* ``rec_observed``: input frames vs ``batch.observed`` on visible pixels only (reconstruction of
  what was seen; its SSIM uses the protocol region with unseen pixels zeroed in both videos);
* ``rec_missing``: ``rec`` restricted to the frames (b, t) in which some object is missing;
* ``pred``: future frames K..T−1 vs ``batch.complete`` (paper Table 1 "Pred").

Protocols: ``"dive"`` scores ``batch.scored`` (Scenario 1: the bottom 32 rows, as DIVE's
``eval.py``); ``"full"`` scores every pixel. Metric conventions: ``dive_pyro.evaluation.metrics``.
"""

from __future__ import annotations

import math

import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.moving_mnist import MISSING_DATA_SCENARIOS
from dive_pyro.evaluation.baselines import baseline_predict
from dive_pyro.evaluation.metrics import PSNR_CAP, frame_metrics
from dive_pyro.evaluation.published import TABLE1, protocol_differences

__all__ = ["GROUPS", "METRICS", "PROTOCOLS", "evaluate_baseline", "evaluate_frames", "markdown_table"]

PROTOCOLS = ("dive", "full")
GROUPS = ("rec", "rec_observed", "rec_missing", "pred")
METRICS = ("bce", "mse", "mae", "psnr", "ssim", "ssim_dive", "ssim_openstl")


class _Accumulator:
    """Running float64 sums of per-frame metrics over selected frames, plus per-sequence PSNR."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(METRICS, 0.0)
        self.frames = 0
        self.pixels = 0.0
        self.psnr_seq_sum = 0.0
        self.sequences = 0
        self.capped = 0

    def add(self, fm: dict[str, torch.Tensor], select: torch.Tensor) -> None:
        fm = {k: v.detach().to("cpu", torch.float64) for k, v in fm.items()}
        pixels = fm["pixels"]
        use = select.cpu() & (pixels > 0)
        for k in METRICS:
            self.sums[k] += float(fm[k][use].sum())
        self.frames += int(use.sum())
        self.capped += int((use & (fm["psnr"] >= PSNR_CAP)).sum())
        self.pixels += float(pixels[use].sum())
        sse = torch.where(use, fm["mse"], 0.0).sum(1)
        pix = torch.where(use, pixels, 0.0).sum(1)
        has = pix > 0
        psnr_seq = (10.0 * torch.log10(pix[has] / sse[has])).clamp(max=PSNR_CAP)
        self.psnr_seq_sum += float(psnr_seq.sum())
        self.sequences += int(has.sum())

    def result(self) -> dict:
        if self.frames == 0:  # e.g. rec_missing when nothing is missing: no numbers, not NaN (JSON)
            out: dict = dict.fromkeys((*METRICS, "psnr_seq", "scored_pixels"))
        else:
            out = {k: self.sums[k] / self.frames for k in METRICS}
            out["psnr_seq"] = self.psnr_seq_sum / self.sequences
            out["scored_pixels"] = self.pixels / self.frames
        out["frames"] = self.frames
        out["psnr_capped_frames"] = self.capped  # exact frames (infinite PSNR) counted at PSNR_CAP
        return out


def evaluate_frames(pred: torch.Tensor, batch: SceneBatch, protocol: str = "dive", chunk_size: int = 32) -> dict:
    """Table-1 metrics of ``pred`` ``(B, T, 1, H, W)`` against ``batch``, as Python floats.

    Returns ``{"rec", "rec_observed", "rec_missing", "pred"}`` → ``{bce, mse, mae, psnr, psnr_seq,
    ssim, ssim_dive, ssim_openstl, frames, scored_pixels}`` (means over frames; ``psnr`` is the mean
    of capped per-frame PSNRs, ``psnr_seq`` the mean of per-sequence PSNRs over the group's frames;
    all ``None`` for a group with no frames; ``psnr_capped_frames`` counts the frames at the cap),
    plus ``num_sequences``, ``scored_pixels`` (protocol pixels per frame), ``protocol``, ``psnr_cap``,
    ``scenario``, ``num_observed`` and the setting that decides whether published numbers are
    comparable: ``frame_size``, ``num_frames``, ``num_objects``, ``step_length``. Sequences are
    processed ``chunk_size`` at a time, so memory does not grow with B.
    """
    if not isinstance(batch, SceneBatch):
        raise TypeError(f"batch must be a SceneBatch, got {type(batch).__name__}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"pred must be a torch.Tensor, got {type(pred).__name__}")
    if pred.shape != batch.complete.shape:
        raise ValueError(
            f"pred must have the batch's frame shape {tuple(batch.complete.shape)}, got {tuple(pred.shape)}"
        )
    K = batch.num_observed
    acc = {g: _Accumulator() for g in GROUPS}
    region_pixels = 0.0
    for start in range(0, batch.batch_size, chunk_size):
        sub = batch[start : start + chunk_size]
        p = pred[start : start + chunk_size].to(sub.device)
        region = sub.scored if protocol == "dive" else torch.ones_like(sub.scored)
        region_pixels += float(region.sum())
        fm = frame_metrics(p, sub.complete, region)
        is_input = torch.zeros(fm["pixels"].shape, dtype=torch.bool)
        is_input[:, :K] = True
        acc["rec"].add(fm, is_input)
        acc["pred"].add(fm, ~is_input)
        acc["rec_missing"].add(fm, is_input & sub.missing.any(dim=1).cpu())
        visible = sub.visible[:, :K]
        fo = frame_metrics(p[:, :K] * visible, sub.observed[:, :K], region[:, :K] & visible, ssim_region=region[:, :K])
        acc["rec_observed"].add(fo, torch.ones(fo["pixels"].shape, dtype=torch.bool))
    out: dict = {g: acc[g].result() for g in GROUPS}
    out.update(
        num_sequences=batch.batch_size,
        scored_pixels=region_pixels / (batch.batch_size * batch.num_frames),
        protocol=protocol,
        psnr_cap=PSNR_CAP,
        scenario=batch.scenario,
        num_observed=K,
        frame_size=tuple(batch.frame_size),
        num_frames=batch.num_frames,
        num_objects=batch.missing.shape[1],
        step_length=batch.meta.get("step_length"),
    )
    return out


def evaluate_baseline(name: str, batch: SceneBatch, protocol: str = "dive", chunk_size: int = 32) -> dict:
    """``evaluate_frames`` of baseline ``name`` (see ``dive_pyro.evaluation.baselines.BASELINES``)."""
    return evaluate_frames(baseline_predict(name, batch), batch, protocol=protocol, chunk_size=chunk_size)


# --------------------------------------------------------------------------- markdown
_COLUMNS = (
    ("bce", "BCE", 2),
    ("mse", "MSE", 2),
    ("mae", "MAE", 2),
    ("psnr", "PSNR", 2),
    ("psnr_seq", "PSNR-seq", 2),
    ("ssim", "SSIM", 4),
    ("ssim_dive", "SSIM-DIVE", 4),
    ("ssim_openstl", "SSIM-OpenSTL", 4),
)
# published metric -> our column with the same convention (see dive_pyro.evaluation.published)
_PUBLISHED_AS = {"bce": "bce", "mse": "mse", "psnr": "psnr_seq", "ssim": "ssim_dive"}


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _published_group(row: dict, group: str) -> dict:
    values = row.get(group) or {}
    return {ours: values.get(theirs) for theirs, ours in _PUBLISHED_AS.items()}


def markdown_table(results: dict[str, dict], scenario: str | None = None, include_reference: bool = True) -> str:
    """Table-1 layout: one row per method, Rec / Pred × BCE, MSE, MAE, PSNR, PSNR-seq, SSIM,
    SSIM-DIVE, SSIM-OpenSTL, then Rec-missing MSE (Rec on the input frames where an object is missing:
    the imputation), NELBO when a result has ``"nelbo"``, then a caption and footnotes.

    ``results`` maps method name → ``evaluate_frames`` output. With ``include_reference`` and a
    ``scenario`` in ``dive_pyro.evaluation.published.TABLE1`` (occlusion, out_of_scene, elastic), the
    published DIVE and DDPAE rows are appended (their PSNR is per sequence, their SSIM DIVE's) when
    every result was scored in the published setting (``protocol_differences``); otherwise the
    caption says which settings differ and the rows stay hidden.
    """
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict of method name -> evaluate_frames output, got {type(results)}")
    for name, res in results.items():
        if not isinstance(res, dict) or "rec" not in res or "pred" not in res:
            raise ValueError(f"results[{name!r}] must be an evaluate_frames output with 'rec' and 'pred' groups")
    reference, hidden = {}, []
    if include_reference and scenario in MISSING_DATA_SCENARIOS:
        hidden = sorted({d for res in results.values() for d in protocol_differences(res)})
        if not hidden:
            reference = {f"{m} (published)": TABLE1[scenario][m] for m in ("DIVE", "DDPAE")}
    with_nelbo = any("nelbo" in res for res in results.values())
    capped = {name: res for name, res in results.items() if any(_capped(res, g) for g in ("rec", "pred"))}

    header = ["Method"] + [f"{g} {label}" for g in ("Rec", "Pred") for _, label, _ in _COLUMNS]
    header.append("Rec-missing MSE")
    if with_nelbo:
        header.append("NELBO")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def add_row(name: str, groups: dict[str, dict], nelbo, published: bool = False) -> None:
        cells = [name]
        for g in ("rec", "pred"):  # published numbers keep their printed precision (2 decimals)
            for key, _, digits in _COLUMNS:
                cell = _fmt(groups[g].get(key), 2 if published else digits)
                if key == "psnr" and not published and _capped(groups[g]):
                    cell += " ¹"
                cells.append(cell)
        cells.append(_fmt((groups.get("rec_missing") or {}).get("mse"), 2))
        if with_nelbo:
            cells.append(_fmt(nelbo, 2 if published else 3))
        lines.append("| " + " | ".join(cells) + " |")

    for name, res in results.items():
        add_row(name, {g: res[g] for g in ("rec", "pred", "rec_missing") if g in res}, res.get("nelbo"))
    for name, row in reference.items():
        add_row(name, {g: _published_group(row, g) for g in ("rec", "pred")}, row.get("nelbo"), True)

    settings = sorted(
        {(res.get("protocol", "?"), res.get("scored_pixels"), res.get("num_sequences")) for res in results.values()},
        key=str,
    )
    setting_text = "; ".join(
        f"protocol {proto!r}, {_fmt(pixels, 0)} scored px/frame, {n} sequences" for proto, pixels, n in settings
    )
    caption = (
        f"Scenario: {scenario or 'unspecified'}. {setting_text}. BCE (nats), MSE, MAE: per-frame sums "
        f"over the scored pixels (BCE preds clamped to [1e-4, 1-1e-4]); PSNR: mean of per-frame PSNR, "
        f"capped at {PSNR_CAP:g} dB; PSNR-seq: per-sequence PSNR (DIVE); SSIM: 11x11 Gaussian sigma=1.5, "
        "range 1, interior (Wang 2004 / scikit-image); SSIM-DIVE: same window, zero padding, full map; "
        "SSIM-OpenSTL: 7x7 uniform, sample covariance, range 2. Rec-missing MSE: Rec MSE on the input "
        "frames in which an object is missing (how well it is imputed)."
    )
    if reference:
        caption += (
            " Published rows: DIVE paper Table 1 (DIVE's protocol, Sc.1 on the bottom 32 rows); "
            "their PSNR is per sequence and their SSIM is DIVE's convention."
        )
    elif hidden:
        caption += (
            " Published DIVE/DDPAE rows hidden: not the paper's setting (" + "; ".join(hidden) + "), so the "
            "numbers are not comparable (BCE and MSE are sums over a frame's pixels)."
        )
    notes = []
    if capped:
        parts = [
            f"{name}: {sum(res[g]['psnr_capped_frames'] for g in ('rec', 'pred'))} of "
            f"{sum(res[g]['frames'] for g in ('rec', 'pred'))} frames"
            for name, res in capped.items()
        ]
        notes.append(
            f"¹ Some frames are reproduced exactly (zero error, infinite PSNR) and count at the {PSNR_CAP:g} dB "
            f"cap, which inflates the mean per-frame PSNR ({', '.join(parts)}); PSNR-seq, from errors summed over "
            "each sequence, is the comparable number."
        )
    return "\n".join([*lines, "", caption, *(["", *notes] if notes else [])])


def _capped(res: dict, group: str | None = None) -> bool:
    values = res if group is None else (res.get(group) or {})
    return bool(values.get("psnr_capped_frames"))
