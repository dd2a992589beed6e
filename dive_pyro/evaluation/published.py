"""Published numbers from the DIVE paper (Comas et al., NeurIPS 2020), for comparison tables.

Source: Table 1 (three Moving-MNIST scenarios) and Table 2 (MOTS pedestrians) of the paper, as
printed in the repository's poster ``NeurIPS_DIVE_Poster_v3.pdf`` (Rose-STL-Lab/DIVE); the
camera-ready text (``shared/seeds/dive_paper.txt``) gives the same values. Transcribed by hand from
those tables.

Metric conventions of these numbers (DIVE's ``eval.py``, see docs/official_code.md §5):

* BCE and MSE are per-frame SUMS over the scored pixels (Scenario 1: the bottom 32 rows,
  2048 pixels; otherwise all 4096), predictions clamped to [1e-4, 1 - 1e-4] for BCE;
* PSNR is 10·log10(1 / mean pixel MSE) over a whole sequence (our ``psnr_seq``), not a
  per-frame mean;
* SSIM is DIVE's vendored pytorch-ssim: 11×11 Gaussian, zero padding, range 1 (our
  ``ssim_dive``);
* NELBO is per pixel (ELBO / (B·T·H·W)) [unverified];
* "Rec" = the 10 input frames vs the complete ground truth, "Pred" = the 10 future frames; how the
  paper split its one 20-frame score into Rec / Pred is unverified. MOTS has one column.
* A missing entry is ``None`` ("/" in the paper: DRNET has no ELBO).
"""

from __future__ import annotations

__all__ = [
    "PUBLISHED_PROTOCOL",
    "REFERENCE_CONVENTIONS",
    "REFERENCE_SCENARIOS",
    "TABLE1",
    "protocol_differences",
    "published",
]

# published metric name -> our metric key with the same convention
REFERENCE_CONVENTIONS: dict[str, str] = {
    "bce": "bce",
    "mse": "mse",
    "psnr": "psnr_seq",
    "ssim": "ssim_dive",
}


def _row(rec: tuple[float, float, float, float], pred: tuple[float, float, float, float], nelbo):
    keys = ("bce", "mse", "psnr", "ssim")
    return {
        "rec": dict(zip(keys, rec, strict=True)),
        "pred": dict(zip(keys, pred, strict=True)),
        "nelbo": nelbo,
    }


# scenario -> model -> {"rec"|"pred"|"all": {bce, mse, psnr, ssim}, "nelbo": float | None}
TABLE1: dict[str, dict[str, dict]] = {
    "occlusion": {  # Scenario 1: partial occlusion (top 32 rows hidden)
        "DRNET": _row((482.07, 72.21, 7.99, 0.76), (852.59, 96.36, 6.89, 0.72), None),
        "SQAIR": _row((178.71, 21.84, 13.19, 0.90), (967.20, 84.73, 9.96, 0.73), -0.16),
        "DDPAE": _row((182.66, 39.09, 17.56, 0.77), (417.00, 67.41, 15.49, 0.72), -0.09),
        "DIVE": _row((119.25, 19.73, 20.64, 0.90), (459.10, 64.49, 15.85, 0.78), -0.18),
    },
    "out_of_scene": {  # Scenario 2: objects leave the scene for 2 steps
        "DRNET": _row((392.33, 90.64, 9.59, 0.80), (1402.45, 187.72, 9.88, 0.67), None),
        "SQAIR": _row((468.22, 73.13, 10.33, 0.84), (927.09, 137.04, 8.21, 0.69), -0.17),
        "DDPAE": _row((266.03, 58.37, 18.64, 0.87), (409.26, 89.57, 16.94, 0.77), -0.17),
        "DIVE": _row((165.42, 27.03, 22.15, 0.93), (321.29, 64.17, 18.56, 0.83), -0.21),
    },
    "elastic": {  # Scenario 3: elastic appearance + 1 missing step
        "DRNET": _row((421.72, 90.46, 9.91, 0.75), (1304.53, 176.28, 7.33, 0.70), None),
        "SQAIR": _row((560.51, 74.30, 10.80, 0.83), (1518.61, 163.25, 7.64, 0.62), -0.16),
        "DDPAE": _row((322.23, 63.63, 18.29, 0.81), (403.48, 82.71, 17.22, 0.78), -0.18),
        "DIVE": _row((272.74, 42.81, 20.08, 0.87), (374.59, 74.87, 17.61, 0.78), -0.19),
    },
    "mots": {  # paper Table 2: MOTSChallenge pedestrians, one column
        "DDPAE": {"all": {"bce": 2495.08, "mse": 560.37, "psnr": 22.22, "ssim": 0.90}, "nelbo": -0.24},
        "DIVE": {"all": {"bce": 1355.89, "mse": 328.96, "psnr": 24.82, "ssim": 0.96}, "nelbo": -0.26},
    },
}

REFERENCE_SCENARIOS: tuple[str, ...] = tuple(TABLE1)


def published(scenario: str, model: str) -> dict:
    """The published row of ``model`` in ``scenario`` (a copy; see ``TABLE1`` for the layout)."""
    if scenario not in TABLE1:
        raise ValueError(f"scenario must be one of {sorted(TABLE1)}, got {scenario!r}")
    if model not in TABLE1[scenario]:
        raise ValueError(f"model must be one of {sorted(TABLE1[scenario])} for {scenario!r}, got {model!r}")
    row = TABLE1[scenario][model]
    return {k: dict(v) if isinstance(v, dict) else v for k, v in row.items()}


# The setting of Table 1 (paper §4.2; DIVE's data generator and eval.py): 64x64 frames, 2 digits moving
# 0.15 canvas units per frame, 10 input + 10 future frames, DIVE's scoring region (Sc.1: bottom 32 rows).
PUBLISHED_PROTOCOL: dict[str, object] = {
    "frame_size": (64, 64),
    "protocol": "dive",
    "step_length": 0.15,
    "num_objects": 2,
    "num_frames": 20,
    "num_observed": 10,
}
_LABELS = {
    "frame_size": "frame size",
    "protocol": "scoring region (protocol)",
    "step_length": "step length",
    "num_objects": "objects",
    "num_frames": "frames",
    "num_observed": "input frames",
}


def _show(key: str, value) -> str:
    if key == "frame_size" and isinstance(value, tuple | list) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return "unknown" if value is None else repr(value) if isinstance(value, str) else f"{value:g}"


def protocol_differences(result: dict) -> list[str]:
    """Why the published Table-1 rows are not comparable with ``result`` (an ``evaluate_frames``
    output): one line per setting that differs from :data:`PUBLISHED_PROTOCOL` (a setting the
    result does not record counts as different); empty when the protocol matches.

    BCE and MSE are per-frame sums, so a 32x32 frame (1,024 pixels) cannot be compared with a 64x64
    one (4,096 pixels); other motion, frame counts or scoring regions change the task itself.
    """
    out = []
    for key, expected in PUBLISHED_PROTOCOL.items():
        value = result.get(key)
        if isinstance(value, list):
            value = tuple(value)  # after a JSON round trip
        same = value == expected if key != "step_length" else value is not None and abs(value - expected) < 1e-9
        if not same:
            out.append(f"{_LABELS[key]} {_show(key, value)} (published: {_show(key, expected)})")
    return out
