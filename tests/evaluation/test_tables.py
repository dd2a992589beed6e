"""Rec / Pred evaluation, Table-1 markdown and the published reference numbers."""

import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dive_pyro.data import generate
from dive_pyro.data.batch import SceneBatch
from dive_pyro.evaluation.baselines import baseline_predict
from dive_pyro.evaluation.published import TABLE1, protocol_differences, published
from dive_pyro.evaluation.tables import GROUPS, evaluate_baseline, evaluate_frames, markdown_table

B, T, K, N, H, W = 3, 6, 3, 2, 24, 24
HIDDEN_ROWS = 8  # top rows occluded; the protocol scores the bottom 16 x 24 = 384 pixels


def _batch(with_missing: bool = True) -> SceneBatch:
    g = torch.Generator().manual_seed(3)
    complete = (torch.rand(B, T, 1, H, W, generator=g, dtype=torch.float64) > 0.8).double()
    visible = torch.ones(B, T, 1, H, W, dtype=torch.bool)
    visible[..., :HIDDEN_ROWS, :] = False
    missing = torch.zeros(B, N, T, dtype=torch.bool)
    if with_missing:
        missing[0, 1, 1] = True  # input frame (0, 1)
        missing[2, 0, 0] = True  # input frame (2, 0)
        missing[2, 1, 0] = True  # same frame, second object: still one frame
        missing[2, 0, 4] = True  # a future frame: not part of rec_missing
    return SceneBatch(
        observed=complete * visible,
        visible=visible,
        complete=complete,
        missing=missing,
        positions=torch.zeros(B, N, T, 2),
        objects=torch.zeros(B, N, T, 1, H, W),
        num_observed=K,
        scenario="occlusion",
        scored=visible.clone(),
    )


def _sse(pred, target, rows=slice(None)):
    return ((pred - target)[..., rows, :] ** 2).sum(dim=(-3, -2, -1))


def test_copy_last_groups_against_hand_computation():
    batch = _batch()
    res = evaluate_baseline("copy-last", batch, protocol="dive")
    for g in GROUPS:
        assert set(res[g]) == {
            *("bce", "mse", "mae", "psnr", "psnr_seq", "ssim", "ssim_dive", "ssim_openstl"),
            *("frames", "scored_pixels", "psnr_capped_frames"),
        }
    assert (res["num_sequences"], res["scored_pixels"], res["protocol"], res["psnr_cap"]) == (
        B,
        384,
        "dive",
        100.0,
    )
    assert res["rec"]["frames"] == res["pred"]["frames"] == res["rec_observed"]["frames"] == B * K
    assert res["rec_missing"]["frames"] == 2
    assert (res["frame_size"], res["num_frames"], res["num_objects"], res["step_length"]) == ((H, W), T, N, None)
    # the protocol rows are all visible, so Rec of copy-last is exact there
    ro = res["rec_observed"]
    assert (ro["mse"], ro["mae"], ro["psnr"], ro["psnr_seq"]) == (0.0, 0.0, 100.0, 100.0)
    assert ro["psnr_capped_frames"] == ro["frames"]  # every frame exact: all at the cap
    assert ro["ssim"] == ro["ssim_dive"] == pytest.approx(1.0) and ro["ssim_openstl"] == pytest.approx(1.0)
    assert ro["bce"] == pytest.approx(-384 * math.log(1 - 1e-4), rel=1e-9)  # binary targets: clamp floor
    assert res["rec"]["mse"] == 0.0
    # Pred: frame K-1 repeated vs the complete future, bottom rows only
    rows = slice(HIDDEN_ROWS, None)
    sse = _sse(batch.complete[:, K - 1 : K], batch.complete[:, K:], rows)  # (B, T-K)
    assert res["pred"]["mse"] == pytest.approx(sse.mean().item(), rel=1e-12)
    assert res["pred"]["mae"] == pytest.approx(sse.mean().item(), rel=1e-12)  # binary frames: |e| = e^2
    assert res["pred"]["psnr"] == pytest.approx((10 * torch.log10(384 / sse)).mean().item(), rel=1e-12)
    psnr_seq = 10 * torch.log10(384 * (T - K) / sse.sum(1))
    assert res["pred"]["psnr_seq"] == pytest.approx(psnr_seq.mean().item(), rel=1e-12)
    ref_ssim = np.mean(
        [
            structural_similarity(
                batch.complete[b, K - 1, 0, rows].numpy(),
                batch.complete[b, t, 0, rows].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for b in range(B)
            for t in range(K, T)
        ]
    )
    assert res["pred"]["ssim"] == pytest.approx(ref_ssim, rel=1e-9)


def test_full_protocol_scores_the_hidden_rows_and_rec_missing_selects_frames():
    batch = _batch()
    res = evaluate_baseline("copy-last", batch, protocol="full")
    assert res["scored_pixels"] == H * W and res["rec"]["scored_pixels"] == H * W
    assert res["rec_observed"]["scored_pixels"] == 384  # visible pixels only
    hidden = _sse(torch.zeros_like(batch.complete[:, :K]), batch.complete[:, :K], slice(0, HIDDEN_ROWS))
    assert res["rec"]["mse"] == pytest.approx(hidden.mean().item(), rel=1e-12)
    assert res["rec_missing"]["mse"] == pytest.approx((hidden[0, 1] + hidden[2, 0]).item() / 2, rel=1e-12)
    # per-sequence PSNR of rec_missing: one frame in each of videos 0 and 2
    expected = np.mean([10 * math.log10(H * W / hidden[0, 1].item()), 10 * math.log10(H * W / hidden[2, 0].item())])
    assert res["rec_missing"]["psnr_seq"] == pytest.approx(expected, rel=1e-12)
    assert res["rec_observed"]["mse"] == 0.0


def test_chunked_equals_unchunked_and_baseline_wrapper():
    batch = _batch()
    pred = baseline_predict("mean", batch)
    whole = evaluate_frames(pred, batch, chunk_size=64)
    assert evaluate_baseline("mean", batch) == whole
    for chunk in (1, 2):
        parts = evaluate_frames(pred, batch, chunk_size=chunk)
        for g in GROUPS:
            assert parts[g] == pytest.approx(whole[g], rel=1e-12)


def test_nothing_missing_gives_empty_group_and_strict_json():
    res = evaluate_baseline("zeros", _batch(with_missing=False))
    assert res["rec_missing"]["frames"] == 0
    assert res["rec_missing"]["mse"] is None and res["rec_missing"]["ssim"] is None
    json.dumps(res, allow_nan=False)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(protocol="bottom"), ValueError, r"protocol must be one of \('dive', 'full'\)"),
        (dict(chunk_size=0), ValueError, "chunk_size must be a positive int"),
        (dict(chunk_size=2.5), ValueError, "chunk_size must be a positive int"),
        (dict(pred=torch.zeros(B, T, 1, H, W - 1)), ValueError, "pred must have the batch's frame shape"),
        (dict(pred=np.zeros((B, T, 1, H, W))), TypeError, "pred must be a torch.Tensor"),
        (dict(pred=torch.full((B, T, 1, H, W), 1.5)), ValueError, r"pred must lie in \[0, 1\]"),
        (dict(batch="batch"), TypeError, "batch must be a SceneBatch"),
    ],
)
def test_evaluate_frames_errors(kwargs, exc, match):
    args = dict(pred=torch.zeros(B, T, 1, H, W), batch=_batch())
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        evaluate_frames(**args)


# --------------------------------------------------------------------------- markdown
def _cells(md: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    lines = md.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return header, rows


def test_markdown_table_rows_reference_and_caption():
    batch = generate("occlusion", 2, seed=0, split="test")  # the paper's setting: 64x64, step 0.15, DIVE region
    results = {"copy-last": evaluate_baseline("copy-last", batch), "zeros": evaluate_baseline("zeros", batch)}
    md = markdown_table(results, scenario="occlusion")
    header, rows = _cells(md)
    assert header[:3] == ["Method", "Rec BCE", "Rec MSE"] and "Pred SSIM-OpenSTL" in header
    assert header[-1] == "Rec-missing MSE" and "NELBO" not in header
    assert list(rows) == ["copy-last", "zeros", "DIVE (published)", "DDPAE (published)"]
    row = rows["DIVE (published)"]
    assert (row["Rec MSE"], row["Pred BCE"], row["Rec PSNR-seq"], row["Pred SSIM-DIVE"]) == (
        "19.73",
        "459.10",
        "20.64",
        "0.78",
    )
    assert row["Rec MAE"] == row["Rec PSNR"] == row["Rec SSIM"] == row["Rec-missing MSE"] == "—"
    mine = rows["copy-last"]
    assert mine["Pred MSE"] == f"{results['copy-last']['pred']['mse']:.2f}"
    assert mine["Rec-missing MSE"] == f"{results['copy-last']['rec_missing']['mse']:.2f}"
    assert "2048 scored px/frame" in md and "100 dB" in md and "7x7 uniform" in md and "hidden" not in md


def test_published_rows_hidden_outside_the_paper_setting_with_the_reason():
    batch = generate("out_of_scene", 2, seed=0, split="test")
    for other, reason in (
        (batch.downsample(2), "frame size 32x32 (published: 64x64)"),
        (generate("out_of_scene", 2, seed=0, split="test", step_length=0.1), "step length 0.1 (published: 0.15)"),
    ):
        md = markdown_table({"zeros": evaluate_baseline("zeros", other)}, scenario="out_of_scene")
        assert "(published) |" not in md and "rows hidden" in md and reason in md
    full = evaluate_baseline("zeros", batch, protocol="full")
    assert "scoring region (protocol) 'full' (published: 'dive')" in markdown_table({"z": full}, "out_of_scene")
    # one mismatching result hides the rows for all (they would sit beside it)
    mixed = {"zeros": evaluate_baseline("zeros", batch), "small": evaluate_baseline("zeros", batch.downsample(2))}
    assert "(published) |" not in markdown_table(mixed, scenario="out_of_scene")
    assert protocol_differences(evaluate_baseline("zeros", batch)) == []
    assert protocol_differences(json.loads(json.dumps(evaluate_baseline("zeros", batch)))) == []
    assert protocol_differences({}) and all("unknown" in d for d in protocol_differences({}))


def test_psnr_cap_footnote_marks_exact_copies():
    batch = _batch()
    copy = evaluate_baseline("copy-last", batch)
    assert copy["rec"]["psnr_capped_frames"] > 0  # copy-last repeats visible frames exactly
    md = markdown_table({"copy-last": copy, "zeros": evaluate_baseline("zeros", batch)}, scenario="occlusion")
    _, rows = _cells(md)
    assert rows["copy-last"]["Rec PSNR"].endswith(" ¹") and not rows["zeros"]["Rec PSNR"].endswith("¹")
    frames = copy["rec"]["frames"] + copy["pred"]["frames"]
    capped = copy["rec"]["psnr_capped_frames"] + copy["pred"]["psnr_capped_frames"]
    assert "¹ Some frames are reproduced exactly" in md and f"copy-last: {capped} of {frames} frames" in md
    assert "¹" not in markdown_table({"zeros": evaluate_baseline("zeros", batch)})


def test_markdown_table_without_reference_and_with_nelbo():
    batch = generate("elastic", 2, seed=0, split="test")
    res = evaluate_baseline("zeros", batch)
    assert "published" not in markdown_table({"zeros": res}, scenario="occlusion", include_reference=False)
    assert "published" not in markdown_table({"zeros": res}, scenario="complete")
    md = markdown_table({"model": {**res, "nelbo": -0.2123}, "zeros": res}, scenario="elastic")
    assert md.splitlines()[0].rstrip().endswith("| Rec-missing MSE | NELBO |")
    assert "| -0.212 |" in md and "| -0.19 |" in md  # ours, then the published DIVE NELBO
    with pytest.raises(ValueError, match=r"results\['x'\] must be an evaluate_frames output"):
        markdown_table({"x": {"rec": {}}})
    with pytest.raises(TypeError, match="results must be a dict"):
        markdown_table([res])


def test_reference_table():
    assert set(TABLE1) == {"occlusion", "out_of_scene", "elastic", "mots"}
    assert published("out_of_scene", "DIVE")["pred"]["mse"] == 64.17
    assert published("elastic", "DDPAE")["rec"] == {"bce": 322.23, "mse": 63.63, "psnr": 18.29, "ssim": 0.81}
    assert published("occlusion", "DRNET")["nelbo"] is None
    assert published("mots", "DIVE")["all"]["mse"] == 328.96
    row = published("occlusion", "DIVE")
    row["rec"]["mse"] = 0.0
    assert TABLE1["occlusion"]["DIVE"]["rec"]["mse"] == 19.73  # a copy
    with pytest.raises(ValueError, match="scenario must be one of"):
        published("complete", "DIVE")
    with pytest.raises(ValueError, match="model must be one of"):
        published("mots", "SQAIR")
