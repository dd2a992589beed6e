"""The fast spatial-transformer paths equal the affine_grid + grid_sample reference, gradients included."""

import pytest
import torch

from dive_pyro.core.stn import crop_objects, place_and_sum, place_sprites


def _poses(n: int, dtype: torch.dtype, s0: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    s = s0 + (torch.rand(n, generator=g, dtype=dtype) - 0.5)
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) * 2 - 1) * (s[:, None] - 0.5)
    return torch.cat([s[:, None], xy], -1)


def _grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    (out * weights).sum().backward()
    return out.detach(), [x.grad for x in inputs]


@pytest.mark.parametrize("method", ["separable", "grid"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_place_equals_affine_grid_reference_with_gradients(method, dtype):
    torch.manual_seed(0)
    sprites = torch.rand(12, 1, 8, 8, dtype=dtype)
    pose = _poses(12, dtype)
    out, grads = _grads(lambda a, p: place_sprites(a, p, 16, method=method), sprites, pose)
    ref, ref_grads = _grads(lambda a, p: place_sprites(a, p, 16, method="affine_grid"), sprites, pose)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out, ref, **tol)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, **tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_crop_equals_affine_grid_reference_with_gradients(dtype):
    torch.manual_seed(1)
    frames = torch.rand(2, 3, 1, 16, 16, dtype=dtype)
    pose = _poses(6, dtype).reshape(2, 3, 3)
    out, grads = _grads(lambda f, p: crop_objects(f, p, 8, method="grid"), frames, pose)
    ref, ref_grads = _grads(lambda f, p: crop_objects(f, p, 8, method="affine_grid"), frames, pose)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out, ref, **tol)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, **tol)


def test_separable_matches_grid_sample_on_pixel_aligned_poses():
    # integer source coordinates (s = H/o, whole-pixel shifts) sit on the kinks of bilinear
    # interpolation: the pose gradient there is one-sided and grid_sample's floor convention picks
    # the side. Values and sprite gradients equal the reference; the pose gradient equals
    # grid_sample's on the same coordinates ("grid"; affine_grid's rounding may pick the other side).
    sprites = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    pose = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.5, -0.25], [2.0, -0.75, 0.5]], dtype=torch.float64)
    out, grads = _grads(lambda a, p: place_sprites(a, p, 16), sprites, pose)
    ref, ref_grads = _grads(lambda a, p: place_sprites(a, p, 16, method="affine_grid"), sprites, pose)
    _, grid_grads = _grads(lambda a, p: place_sprites(a, p, 16, method="grid"), sprites, pose)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], ref_grads[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1], grid_grads[1], rtol=1e-10, atol=1e-10)


def test_poses_outside_the_frame_give_zeros_in_every_method():
    sprites = torch.rand(2, 1, 4, 4)
    pose = torch.tensor([[2.0, 5.0, 0.0], [2.0, 0.0, -7.0]])  # sprite centred far outside
    for method in ("separable", "grid", "affine_grid"):
        assert place_sprites(sprites, pose, 8, method=method).abs().max() == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_place_and_sum_equals_sum_of_placed_sprites(weighted):
    torch.manual_seed(2)
    B, N, t, o, H = 2, 3, 4, 8, 16
    sprites = torch.rand(B, N, t, 1, o, o, dtype=torch.float64)
    pose = _poses(B * N * t, torch.float64).reshape(B, N, t, 3)
    weight = torch.rand(B, N, t, dtype=torch.float64) if weighted else None

    def ref_fn(a, p, *w):
        placed = place_sprites(a, p, H, method="affine_grid")
        if w:
            placed = w[0][..., None, None, None] * placed
        return placed.sum(1)

    inputs = (sprites, pose) + ((weight,) if weighted else ())
    out, grads = _grads(lambda a, p, *w: place_and_sum(a, p, w[0] if w else None, H), *inputs)
    ref, ref_grads = _grads(ref_fn, *inputs)
    assert out.shape == (B, t, 1, H, H)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_a_wrong_placement_is_caught():
    # the equality check can fail: a half-pixel shift is far outside the tolerance
    sprites = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    pose = _poses(4, torch.float64)
    shifted = pose + torch.tensor([0.0, 1 / 16, 0.0], dtype=torch.float64)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            place_sprites(sprites, shifted, 16), place_sprites(sprites, pose, 16, method="affine_grid")
        )


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        place_sprites(torch.rand(1, 1, 4, 4), torch.tensor([[2.0, 0.0, 0.0]]), 8, method="bicubic")
    with pytest.raises(ValueError, match="method must be one of"):
        crop_objects(torch.rand(1, 1, 8, 8), torch.tensor([[2.0, 0.0, 0.0]]), 4, method="separable")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_placement_and_crops_equal_the_reference():
    sprites = torch.rand(2, 3, 4, 1, 8, 8, device="cuda")
    pose = _poses(24, torch.float32).reshape(2, 3, 4, 3).cuda()
    ref = place_sprites(sprites, pose, 16, method="affine_grid")
    torch.testing.assert_close(place_sprites(sprites, pose, 16), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(place_and_sum(sprites, pose, None, 16), ref.sum(1), rtol=1e-4, atol=1e-5)
    frames = torch.rand(2, 3, 1, 16, 16, device="cuda")
    crops, ref_crops = (
        crop_objects(frames, pose[:, :, 0], 8),
        crop_objects(frames, pose[:, :, 0], 8, method="affine_grid"),
    )
    torch.testing.assert_close(crops, ref_crops, rtol=1e-4, atol=1e-5)


def test_interpolation_weights_are_the_one_hot_bilinear_formula_bit_for_bit():
    from dive_pyro.core.stn import _interpolation

    # corners inside, on the border, partly and far outside the sprite (u from -3 to size + 2)
    coords = torch.linspace(-1.6, 1.6, 37, dtype=torch.float64).reshape(1, 37).repeat(2, 1).requires_grad_()
    size = 8
    u = ((coords + 1) * size - 1) / 2
    u0 = u.detach().floor()
    frac = (u - u0)[..., None]
    idx = torch.arange(size, dtype=u.dtype)
    lower, upper = (idx == u0[..., None]).to(u.dtype), (idx == u0[..., None] + 1).to(u.dtype)
    expected = lower + frac * (upper - lower)
    got = _interpolation(coords, size)
    assert torch.equal(got, expected)
    g = torch.randn_like(got)
    assert torch.equal(*(torch.autograd.grad(w, coords, g, retain_graph=True)[0] for w in (got, expected)))
