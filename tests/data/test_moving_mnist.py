"""Tests for the batched Moving-MNIST scenario generator and the elastic deformation."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from dive_pyro.data.elastic import alpha_schedule, gaussian_smoothing_matrix, smooth_fields, warp_patches
from dive_pyro.data.mnist import load_digits
from dive_pyro.data.moving_mnist import SCENARIOS, bounce_trajectory, generate

T, K = 20, 10


def random_digits(count: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 28, 28), generator=g, dtype=torch.uint8)


def stripes(vertical: bool) -> torch.Tensor:
    """One digit whose value depends only on the column (vertical stripes) or only on the row."""
    ramp = torch.arange(28, dtype=torch.float32) / 27 * 255
    img = ramp[None, :].expand(28, 28) if vertical else ramp[:, None].expand(28, 28)
    return img.round().to(torch.uint8)[None].contiguous()


def batch_tensors(batch):
    names = ("observed", "visible", "complete", "missing", "positions", "objects", "scored")
    return {name: getattr(batch, name) for name in names}


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_identical_different_seed_differs(scenario):
    digits = random_digits()
    a = batch_tensors(generate(scenario, 3, seed=7, digits=digits))
    b = batch_tensors(generate(scenario, 3, seed=7, digits=digits))
    c = batch_tensors(generate(scenario, 3, seed=8, digits=digits))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["complete"], c["complete"])
    assert not torch.equal(a["positions"], c["positions"])


def test_documented_draw_order_reproduces_positions():
    """digit indices, start, direction are the first draws of a CPU Generator(seed)."""
    seed, B, N = 11, 5, 3
    batch = generate("complete", B, seed=seed, num_objects=N, digits=random_digits(7))
    g = torch.Generator().manual_seed(seed)
    torch.randint(7, (B, N), generator=g)
    start = torch.rand(B, N, 2, dtype=torch.float64, generator=g)
    theta = 2 * math.pi * torch.rand(B, N, dtype=torch.float64, generator=g)
    top_left = (36 * bounce_trajectory(start, theta, 0.15, T)).to(torch.int64)
    assert torch.equal(batch.positions, top_left.float() + 13.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cpu_and_cuda_agree(scenario):
    digits = random_digits()
    cpu = generate(scenario, 4, seed=3, digits=digits)
    gpu = generate(scenario, 4, seed=3, digits=digits, device="cuda").to("cpu")
    assert torch.equal(cpu.missing, gpu.missing) and torch.equal(cpu.positions, gpu.positions)
    atol = 1e-5 if scenario == "elastic" else 0.0
    torch.testing.assert_close(gpu.complete, cpu.complete, atol=atol, rtol=0)
    torch.testing.assert_close(gpu.observed, cpu.observed, atol=atol, rtol=0)


# --------------------------------------------------------------------------- dynamics
def test_bounce_trajectory_hand_computed():
    # moving right from x = 0.9: overshoots to 1.05 -> clamped to 1, flips, then steps back by 0.15
    start = torch.tensor([[0.9, 0.5], [0.05, 0.95]], dtype=torch.float64)
    theta = torch.tensor([0.0, 3 * math.pi / 4], dtype=torch.float64)
    traj = bounce_trajectory(start, theta, 0.15, 4)
    expected_right = [[1.0, 0.5], [0.85, 0.5], [0.70, 0.5], [0.55, 0.5]]
    torch.testing.assert_close(traj[0], torch.tensor(expected_right, dtype=torch.float64), atol=1e-12, rtol=0)
    # up-left diagonal from a corner region: both axes clamp at the first step and flip
    d = 0.15 / math.sqrt(2)
    expected_diag = [[0.0, 1.0], [d, 1 - d], [2 * d, 1 - 2 * d], [3 * d, 1 - 3 * d]]
    torch.testing.assert_close(traj[1], torch.tensor(expected_diag, dtype=torch.float64), atol=1e-12, rtol=0)


def test_step_length_in_canvas_units_and_pixels():
    g = torch.Generator().manual_seed(0)
    start = torch.rand(200, 2, dtype=torch.float64, generator=g)
    theta = 2 * math.pi * torch.rand(200, dtype=torch.float64, generator=g)
    traj = bounce_trajectory(start, theta, 0.1, 30)
    step = (traj[:, 1:] - traj[:, :-1]).norm(dim=-1)
    free = ((traj[:, 1:] > 0) & (traj[:, 1:] < 1) & (traj[:, :-1] > 0) & (traj[:, :-1] < 1)).all(-1)
    torch.testing.assert_close(step[free], torch.full_like(step[free], 0.1), atol=1e-12, rtol=0)
    # in pixels: 0.15 * 36 = 5.4 px per frame, up to 1 px of truncation per axis
    batch = generate("complete", 64, seed=1, num_objects=1, digits=random_digits())
    pix = batch.positions[:, 0]
    delta = (pix[:, 1:] - pix[:, :-1]).abs()
    assert delta.max() <= 6  # never more than ceil(5.4) per axis
    lo, hi = 13.5, 36 + 13.5
    inside = ((pix > lo) & (pix < hi)).all(-1)
    both = inside[:, 1:] & inside[:, :-1]
    speed = (pix[:, 1:] - pix[:, :-1]).norm(dim=-1)[both]
    assert abs(speed.mean().item() - 5.4) < 0.3


def test_positions_are_patch_centres():
    """Full 28x28 squares: ink bounding box = centre -/+ 13.5 and centre of mass = position."""
    square = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    batch = generate("complete", 4, seed=2, digits=square, frame_size=50)
    obj = batch.objects[:, :, :, 0]  # (B, N, T, H, W)
    ys, xs = torch.arange(50.0), torch.arange(50.0)
    mass = obj.sum((-1, -2))
    cx = (obj.sum(-2) * xs).sum(-1) / mass
    cy = (obj.sum(-1) * ys).sum(-1) / mass
    torch.testing.assert_close(torch.stack((cx, cy), -1), batch.positions, atol=1e-4, rtol=0)
    assert torch.equal(mass, torch.full_like(mass, 28 * 28))
    assert batch.positions.min() >= 13.5 and batch.positions.max() <= 50 - 28 + 13.5


# --------------------------------------------------------------------------- compositing
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_complete_is_max_of_objects_and_observed_is_max_of_present(scenario):
    batch = generate(scenario, 6, seed=4, num_objects=3, digits=random_digits())
    assert torch.equal(batch.complete, batch.objects.amax(1))
    present = ~batch.missing if scenario != "occlusion" else torch.ones_like(batch.missing)
    expected = (batch.objects * present[..., None, None, None]).amax(1) * batch.visible
    assert torch.equal(batch.observed, expected)
    assert batch.meta["seed"] == 4 and batch.meta["scenario"] == scenario


def test_complete_scenario_observes_everything():
    batch = generate("complete", 3, seed=0, digits=random_digits())
    assert torch.equal(batch.observed, batch.complete)
    assert not batch.missing.any() and batch.visible.all() and batch.scored.all()
    assert batch.num_observed == K and batch.observed.shape == (3, T, 1, 64, 64)


def test_digits_come_from_the_split_pool():
    pool, _ = load_digits("test")
    batch = generate("complete", 2, seed=5, split="test")
    assert batch.meta["digit_source"] == "mnist:test"
    top = (batch.positions[:, :, 0] - 13.5).long()
    for b in range(2):
        for i in range(2):
            x, y = top[b, i].tolist()
            patch = (batch.objects[b, i, 0, 0, y : y + 28, x : x + 28] * 255).round().to(torch.uint8)
            assert (pool == patch).flatten(1).all(1).any()


# --------------------------------------------------------------------------- scenarios
def test_out_of_scene_gaps_two_consecutive_input_steps():
    batch = generate("out_of_scene", 100, seed=6, digits=random_digits())
    miss = batch.missing
    assert torch.equal(miss.sum(-1), torch.full(miss.shape[:2], 2))
    t0 = miss.float().argmax(-1)
    assert torch.equal(miss[torch.arange(100)[:, None], torch.arange(2), t0 + 1], torch.ones(100, 2, dtype=bool))
    assert set(t0.unique().tolist()) == set(range(2, 9))  # paper: t0 in [3, 9] counted from 1
    assert not miss[..., K:].any()
    # the removed object's own pixels vanish where the other one is not drawn
    only = (batch.objects[:, 0] > 0) & (batch.objects[:, 1] == 0)
    gone = miss[:, 0, :, None, None, None] & only
    assert gone.any() and (batch.observed[gone] == 0).all()
    assert batch.visible.all()
    official = generate("out_of_scene", 100, seed=6, digits=random_digits(), start_range="official")
    t0 = official.missing.float().argmax(-1)
    assert set(t0.unique().tolist()) == set(range(2, 7))
    assert official.meta["options"]["start_range"] == "official"


def test_occlusion_top_rows_hidden_and_bottom_scored():
    batch = generate("occlusion", 20, seed=7, digits=random_digits())
    assert not batch.visible[..., :32, :].any() and batch.visible[..., 32:, :].all()
    assert (batch.observed[..., :32, :] == 0).all()
    assert torch.equal(batch.scored, batch.visible)
    assert torch.equal(batch.observed[..., 32:, :], batch.complete[..., 32:, :])
    hidden = ~(batch.objects[..., 32:, :] > 0).flatten(3).any(-1)
    assert torch.equal(batch.missing, hidden) and hidden.any()
    assert batch.meta["options"]["occluded_rows"] == 32


def test_occlusion_official_recipe_removes_one_step():
    batch = generate(
        "occlusion",
        100,
        seed=8,
        digits=random_digits(),
        occluded_rows=10,
        num_missing=1,
        start_range="official",
    )
    assert not batch.visible[..., :10, :].any() and batch.visible[..., 10:, :].all()
    hidden = ~(batch.objects[..., 10:, :] > 0).flatten(3).any(-1)
    removed = batch.missing & ~hidden
    assert (removed.sum(-1) == 1).all()
    assert set(removed.float().argmax(-1).unique().tolist()) == set(range(2, 8))  # official {2..7}


def test_elastic_last_frame_undeformed_and_one_missing_step():
    digit = random_digits(1)
    batch = generate("elastic", 8, seed=9, digits=digit)
    top = (batch.positions[:, :, -1] - 13.5).long()
    for b in range(8):
        for i in range(2):
            x, y = top[b, i].tolist()
            last = batch.objects[b, i, -1, 0, y : y + 28, x : x + 28]
            torch.testing.assert_close(last, digit[0].float() / 255, atol=1e-5, rtol=0)
            first = batch.objects[b, i, 0, 0]
            assert first.sum() > 0
    assert (batch.missing.sum(-1) == 1).all() and not batch.missing[..., K:].any()


def test_elastic_displaces_both_axes_by_default_and_rows_only_with_official_bug():
    for vertical in (True, False):
        digit = stripes(vertical)
        paper = generate("elastic", 2, seed=1, digits=digit)
        bug = generate("elastic", 2, seed=1, digits=digit, official_axis_bug=True)
        top = (paper.positions - 13.5).long()
        undeformed_paper = undeformed_bug = True
        for i in range(2):
            for t in range(T):
                x, y = top[0, i, t].tolist()
                ref = digit[0].float() / 255
                undeformed_paper &= torch.allclose(paper.objects[0, i, t, 0, y : y + 28, x : x + 28], ref, atol=1e-5)
                x, y = (bug.positions[0, i, t] - 13.5).long().tolist()
                undeformed_bug &= torch.allclose(bug.objects[0, i, t, 0, y : y + 28, x : x + 28], ref, atol=1e-5)
        assert not undeformed_paper  # paper: columns move too, so even vertical stripes change
        # official bug: rows move within each column -> column-only images are untouched
        assert undeformed_bug == vertical


def test_alpha_schedules():
    torch.testing.assert_close(alpha_schedule(100.0, 5), torch.tensor([100.0, 75, 50, 25, 0], dtype=torch.float64))
    official = alpha_schedule(100.0, 20, official=True)
    assert (
        official[0] == 100 and official[-1] == 5 and torch.allclose(official.diff(), torch.full((19,), -5.0).double())
    )


def test_smoothing_and_warp_match_scipy():
    g = torch.Generator().manual_seed(0)
    u = torch.rand(2, 2, 28, 28, dtype=torch.float64, generator=g)
    field = smooth_fields(u, 4.0)
    ref = np.stack([[ndimage.gaussian_filter(2 * f - 1, 4.0) for f in pair] for pair in u.numpy()])
    np.testing.assert_allclose(field.numpy(), ref, atol=1e-12)
    assert gaussian_smoothing_matrix(28, 4.0).sum(1).allclose(torch.ones(28, dtype=torch.float64))
    img = torch.rand(2, 28, 28, dtype=torch.float64, generator=g)
    scale = torch.tensor([100.0, 37.5, 0.0], dtype=torch.float64)
    out = warp_patches(img, field, scale)
    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    for m in range(2):
        for t, a in enumerate(scale.tolist()):
            coords = [rows + a * field[m, 1].numpy(), cols + a * field[m, 0].numpy()]
            expected = ndimage.map_coordinates(img[m].numpy(), coords, order=1, mode="reflect")
            np.testing.assert_allclose(out[m, t].numpy(), expected, atol=1e-10)
    torch.testing.assert_close(out[:, 2], img)  # alpha = 0 is the identity


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scenario": "sc1"}, ValueError, "scenario"),
        ({"num_sequences": 0}, ValueError, "num_sequences"),
        ({"num_objects": 0}, ValueError, "num_objects"),
        ({"num_frames": 10}, ValueError, "num_frames"),
        ({"step_length": 0.0}, ValueError, "step_length"),
        ({"frame_size": 28}, ValueError, "frame_size"),
        ({"digits": torch.zeros(3, 28, 28)}, TypeError, "digits.*uint8"),
        ({"digits": torch.zeros(3, 28, 27, dtype=torch.uint8)}, ValueError, "digits.*shape"),
        ({"split": "val"}, ValueError, "split"),
        (
            {"alpha": 1.0},
            TypeError,
            r"unknown option.*alpha.*valid options: \['num_missing', 'start_range'\]",
        ),
        ({"scenario": "elastic", "sigma": 0.0}, ValueError, "sigma"),
        ({"start_range": (0, 9)}, ValueError, "start_range"),
        ({"scenario": "occlusion", "occluded_rows": 64}, ValueError, "occluded_rows"),
    ],
)
def test_bad_input_names_parameter(kwargs, error, match):
    args = {"scenario": "out_of_scene", "num_sequences": 2, "seed": 0, "digits": random_digits(2)} | kwargs
    with pytest.raises(error, match=match):
        generate(**args)


def test_bounce_trajectory_numpy_loop_equals_the_torch_loop_bit_for_bit():
    from dive_pyro.data.moving_mnist import bounce_trajectory

    g = torch.Generator().manual_seed(0)
    start = torch.rand(64, 2, 2, dtype=torch.float64, generator=g)
    theta = 2 * torch.pi * torch.rand(64, 2, dtype=torch.float64, generator=g)
    fast = bounce_trajectory(start, theta, 0.15, 40)  # numpy on CPU
    ref = bounce_trajectory(start.clone().requires_grad_(), theta, 0.15, 40).detach()  # the torch loop
    assert fast.dtype == ref.dtype and torch.equal(fast, ref)
    assert ((fast == 0) | (fast == 1)).any()  # the walls were hit
