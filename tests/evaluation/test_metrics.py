"""Metrics against hand-computed values, scikit-image and an independent scipy SSIM."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage.metrics import structural_similarity

from dive_pyro.evaluation.metrics import (
    FRAME_METRIC_KEYS,
    PSNR_CAP,
    bce,
    frame_metrics,
    mae,
    mse,
    psnr,
    psnr_sequence,
    ssim,
    ssim_dive,
    ssim_openstl,
)

# one 2x2 frame, shape (1, 1, 1, 2, 2)
PRED = torch.tensor([[0.5, 1.0], [0.0, 0.25]], dtype=torch.float64).view(1, 1, 1, 2, 2)
TARGET = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64).view(1, 1, 1, 2, 2)
TOP_ROW = torch.tensor([[True, True], [False, False]]).view(1, 1, 1, 2, 2)


def _smooth_scene(shape, seed, blur=1.0):
    """Structured frames in [0, 1]: random strokes smoothed, numpy float64 (..., H, W)."""
    rng = np.random.default_rng(seed)
    x = (rng.random(shape) > 0.85).astype(np.float64)
    x = ndi.gaussian_filter(x, sigma=(0,) * (len(shape) - 2) + (blur, blur))
    return np.clip(x / x.max(), 0.0, 1.0)


def _blur(x, sigma):
    return ndi.gaussian_filter(x, sigma=(0,) * (x.ndim - 2) + (sigma, sigma))


def _skimage(pred, target, kind):
    """Per-frame reference from scikit-image for a (B, T, 1, H, W) float64 tensor pair."""
    kwargs = {
        "ssim": dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0),
        "ssim_openstl": dict(win_size=7, gaussian_weights=False, use_sample_covariance=True, data_range=2.0),
    }[kind]
    B, T = pred.shape[:2]
    return np.array(
        [
            [structural_similarity(pred[b, t, 0].numpy(), target[b, t, 0].numpy(), **kwargs) for t in range(T)]
            for b in range(B)
        ]
    )


def _dive_ssim_scipy(x, y):
    """Independent DIVE SSIM of two (H, W) arrays: 2-D 11x11 Gaussian, zero padding, full-map mean."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    w = np.outer(g, g)

    def filt(a):
        return ndi.convolve(a, w, mode="constant", cval=0.0)

    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean()


# --------------------------------------------------------------------------- pixel sums
def test_hand_computed_sums_on_2x2_frame():
    assert mse(PRED, TARGET).item() == pytest.approx(0.25 + 0.0625)
    assert mae(PRED, TARGET).item() == pytest.approx(0.5 + 0.25)
    expected_bce = math.log(2) - 2 * math.log(1 - 1e-4) + math.log(4 / 3)  # 1.0 and 0.0 are clamped
    assert bce(PRED, TARGET).item() == pytest.approx(expected_bce, rel=1e-12)
    assert psnr(PRED, TARGET).item() == pytest.approx(10 * math.log10(4 / 0.3125), rel=1e-12)


def test_bce_matches_torch_on_clamped_predictions():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(2, 3, 1, 5, 4, generator=g, dtype=torch.float64)
    p[0, 0, 0, 0] = 0.0
    p[1, 2, 0, 1] = 1.0
    t = torch.rand(2, 3, 1, 5, 4, generator=g, dtype=torch.float64)
    ref = torch.nn.functional.binary_cross_entropy(p.clamp(1e-4, 1 - 1e-4), t, reduction="none").sum((2, 3, 4))
    torch.testing.assert_close(bce(p, t), ref, rtol=1e-12, atol=0)


def test_masked_sums_count_only_scored_pixels():
    assert mse(PRED, TARGET, TOP_ROW).item() == pytest.approx(0.25)
    assert mae(PRED, TARGET, TOP_ROW).item() == pytest.approx(0.5)
    assert bce(PRED, TARGET, TOP_ROW).item() == pytest.approx(math.log(2) - math.log(1 - 1e-4), rel=1e-12)
    assert psnr(PRED, TARGET, TOP_ROW).item() == pytest.approx(10 * math.log10(2 / 0.25), rel=1e-12)
    # the unscored bottom row may hold anything
    other = PRED.clone()
    other[..., 1, :] = 0.9
    assert mse(other, TARGET, TOP_ROW).item() == pytest.approx(0.25)
    x = torch.rand(1, 2, 1, 16, 16, dtype=torch.float64)
    bottom = torch.zeros(x.shape, dtype=torch.bool)
    bottom[..., 5:, :] = True
    fm = frame_metrics(x, torch.zeros_like(x), bottom)
    assert fm["pixels"].tolist() == [[176, 176]]
    torch.testing.assert_close(fm["mse"], (x[..., 5:, :] ** 2).sum((2, 3, 4)), rtol=1e-12, atol=0)


def test_psnr_cap_on_zero_error_and_nan_without_pixels():
    x = torch.rand(2, 3, 1, 4, 4, dtype=torch.float64)
    assert torch.all(psnr(x, x) == PSNR_CAP) and PSNR_CAP == 100.0
    assert torch.all(psnr_sequence(x, x) == PSNR_CAP)
    none = torch.zeros(x.shape, dtype=torch.bool)
    assert torch.isnan(psnr(x, x.flip(-1), none)).all()
    assert torch.all(mse(x, x.flip(-1), none) == 0)


def test_psnr_sequence_uses_mean_pixel_error_over_the_sequence():
    p = torch.zeros(1, 2, 1, 2, 2, dtype=torch.float64)
    t = torch.zeros(1, 2, 1, 2, 2, dtype=torch.float64)
    t[0, 0, 0, 0, 0] = 1.0  # frame 0: sse 1; frame 1: zero error (capped per frame)
    assert psnr_sequence(p, t).item() == pytest.approx(10 * math.log10(8 / 1), rel=1e-12)
    assert psnr(p, t).tolist() == [[pytest.approx(10 * math.log10(4)), PSNR_CAP]]


# --------------------------------------------------------------------------- SSIM
def test_ssim_equals_scikit_image_gaussian_convention():
    p = torch.from_numpy(_smooth_scene((2, 3, 1, 20, 24), seed=0))
    t = torch.from_numpy(_smooth_scene((2, 3, 1, 20, 24), seed=1))
    np.testing.assert_allclose(ssim(p, t).numpy(), _skimage(p, t, "ssim"), rtol=0, atol=1e-12)
    blurred = torch.from_numpy(_blur(t.numpy(), 1.0))
    np.testing.assert_allclose(ssim(blurred, t).numpy(), _skimage(blurred, t, "ssim"), rtol=0, atol=1e-12)


def test_ssim_openstl_equals_scikit_image_uniform_range_2():
    p = torch.from_numpy(_smooth_scene((2, 2, 1, 16, 13), seed=2))
    t = torch.from_numpy(_smooth_scene((2, 2, 1, 16, 13), seed=3))
    np.testing.assert_allclose(ssim_openstl(p, t).numpy(), _skimage(p, t, "ssim_openstl"), atol=1e-12)


def test_ssim_dive_zero_padding_matches_scipy_constant_convolution():
    p = torch.from_numpy(_smooth_scene((1, 3, 1, 12, 17), seed=4))
    t = torch.from_numpy(_smooth_scene((1, 3, 1, 12, 17), seed=5))
    ref = [_dive_ssim_scipy(p[0, i, 0].numpy(), t[0, i, 0].numpy()) for i in range(3)]
    np.testing.assert_allclose(ssim_dive(p, t)[0].numpy(), ref, rtol=0, atol=1e-12)
    # zero padding really matters: a bright border pixel differs from the reflect-padded skimage value
    x = torch.zeros(1, 1, 1, 12, 12, dtype=torch.float64)
    x[..., 0, 0] = 1.0
    y = x.clone()
    y[..., 0, 0] = 0.5
    assert ssim_dive(x, y).item() == pytest.approx(_dive_ssim_scipy(x[0, 0, 0].numpy(), y[0, 0, 0].numpy()))
    assert ssim_dive(x, y).item() != pytest.approx(ssim(x, y).item(), abs=1e-3)


def test_identical_frames_have_ssim_one_in_all_conventions():
    x = torch.from_numpy(_smooth_scene((2, 2, 1, 16, 16), seed=6))
    x[0, 0] = 0.0  # constant frame: SSIM is still exactly 1
    fm = frame_metrics(x, x)
    for key in ("ssim", "ssim_dive", "ssim_openstl"):
        torch.testing.assert_close(fm[key], torch.ones(2, 2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_ssim_on_rectangular_mask_is_ssim_of_the_crop():
    p = torch.from_numpy(_smooth_scene((1, 2, 1, 24, 20), seed=7))
    t = torch.from_numpy(_smooth_scene((1, 2, 1, 24, 20), seed=8))
    bottom = torch.zeros(p.shape, dtype=torch.bool)
    bottom[..., 12:, :] = True
    crop = (p[..., 12:, :], t[..., 12:, :])
    fm = frame_metrics(p, t, bottom)
    for key, fn in (("ssim", ssim), ("ssim_dive", ssim_dive), ("ssim_openstl", ssim_openstl)):
        torch.testing.assert_close(fm[key], fn(*crop), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fm["ssim"].numpy(), _skimage(*crop, "ssim"), atol=1e-12)


def test_frames_with_different_boxes_are_each_cropped():
    p = torch.from_numpy(_smooth_scene((2, 2, 1, 16, 16), seed=9))
    t = torch.from_numpy(_smooth_scene((2, 2, 1, 16, 16), seed=10))
    region = torch.zeros(p.shape, dtype=torch.bool)
    boxes = {(0, 0): (0, 16, 0, 16), (0, 1): (2, 15, 1, 13), (1, 0): (4, 16, 3, 16), (1, 1): (0, 16, 0, 16)}
    expected = torch.empty(2, 2, dtype=torch.float64)
    for (b, i), (r0, r1, c0, c1) in boxes.items():
        region[b, i, 0, r0:r1, c0:c1] = True
        one = (p[b : b + 1, i : i + 1, :, r0:r1, c0:c1], t[b : b + 1, i : i + 1, :, r0:r1, c0:c1])
        expected[b, i] = ssim_dive(*one)[0, 0]
    torch.testing.assert_close(ssim_dive(p, t, region), expected, rtol=0, atol=1e-12)


def test_empty_region_gives_nan_ssim_and_zero_pixels():
    p = torch.from_numpy(_smooth_scene((1, 2, 1, 12, 12), seed=11))
    region = torch.ones(p.shape, dtype=torch.bool)
    region[0, 1] = False
    fm = frame_metrics(p, p.flip(-1), region)
    assert fm["pixels"].tolist() == [[144, 0]]
    assert not torch.isnan(fm["ssim"][0, 0]) and torch.isnan(fm["ssim"][0, 1])
    assert fm["mse"][0, 1].item() == 0.0


def test_blurred_prediction_convention_ordering():
    """Qualitatively: for a blurred, shifted prediction of digit-like frames with
    a black margin, range 2 (OpenSTL) and zero padding (DIVE) both read higher than Wang 2004."""
    rng = np.random.default_rng(12)
    t = np.zeros((1, 4, 1, 32, 32))
    t[..., 8:24, 8:24] = rng.random((1, 4, 1, 16, 16)) > 0.9
    t = np.clip(_blur(t, 0.8) / _blur(t, 0.8).max() * 1.5, 0, 1)
    p = np.clip(_blur(np.roll(t, 1, axis=-1), 1.0), 0, 1)
    fm = frame_metrics(torch.from_numpy(p), torch.from_numpy(t))
    assert torch.all(fm["ssim_openstl"] > fm["ssim"] + 0.05)
    assert torch.all(fm["ssim_dive"] > fm["ssim"] + 0.05)
    assert torch.all(fm["ssim"] < 0.9)


def test_frame_metrics_agrees_with_single_functions_and_float32():
    p = torch.from_numpy(_smooth_scene((2, 3, 1, 16, 16), seed=13))
    t = torch.from_numpy(_smooth_scene((2, 3, 1, 16, 16), seed=14))
    fm = frame_metrics(p, t)
    assert tuple(fm) == FRAME_METRIC_KEYS
    for key, fn in (("bce", bce), ("mse", mse), ("mae", mae), ("psnr", psnr), ("ssim", ssim)):
        torch.testing.assert_close(fm[key], fn(p, t), rtol=1e-12, atol=0)
    f32 = frame_metrics(p.float(), t.float())
    assert f32["ssim"].dtype == torch.float32
    for key in FRAME_METRIC_KEYS:
        torch.testing.assert_close(f32[key].double(), fm[key].double(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "pred, target, scored, exc, match",
    [
        (PRED, TARGET[..., :1], None, ValueError, "shape"),
        (PRED[0], TARGET[0], None, ValueError, r"pred must have shape \(B, T, 1, H, W\)"),
        ((PRED * 4).long(), TARGET, None, ValueError, "pred must be a floating-point"),
        (PRED, TARGET.masked_fill(TOP_ROW, math.nan), None, ValueError, "target contains NaN"),
        (PRED, TARGET * 2, None, ValueError, r"target must lie in \[0, 1\]"),
        (PRED - 0.5, TARGET, None, ValueError, r"pred must lie in \[0, 1\]"),
        (PRED.numpy(), TARGET, None, TypeError, "pred must be a torch.Tensor"),
        (PRED, TARGET, TOP_ROW.double(), TypeError, "scored must have dtype torch.bool"),
        (PRED, TARGET, TOP_ROW[..., :1], ValueError, "scored must have the frames' shape"),
        (PRED, TARGET, TOP_ROW.numpy(), TypeError, "scored must be a bool torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, target, scored, exc, match):
    for fn in (mse, frame_metrics):
        with pytest.raises(exc, match=match):
            fn(pred, target, scored)


def test_ssim_rejects_non_rectangular_or_too_small_regions():
    x = torch.from_numpy(_smooth_scene((1, 1, 1, 16, 16), seed=15))
    holes = torch.ones(x.shape, dtype=torch.bool)
    holes[..., 5, 5] = False
    with pytest.raises(ValueError, match="filled rectangle"):
        frame_metrics(x, x, holes)
    assert mse(x, x.flip(-1), holes).item() > 0  # pixel sums accept any mask
    small = torch.zeros(x.shape, dtype=torch.bool)
    small[..., 8:, :] = True  # 8 x 16 crop
    with pytest.raises(ValueError, match="ssim needs a scored region of at least 11x11"):
        ssim(x, x, small)
    assert ssim_openstl(x, x, small).item() == pytest.approx(1.0)
    assert ssim_dive(x, x, small).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ssim_region must have the frames' shape"):
        frame_metrics(x, x, None, ssim_region=small[..., :4])
