"""Training batches (no per-object buffer) equal generate(...).downsample(f)."""

import pytest
import torch

from dive_pyro.data import SCENARIOS, generate
from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.fast_render import generate_training_batch

EXACT = ("visible", "scored", "missing", "positions")


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("factor", [1, 2])
def test_training_batch_equals_generate_then_downsample(scenario, factor):
    ref = generate(scenario, 6, seed=11, num_frames=6, num_observed=4).downsample(factor)
    fast = generate_training_batch(scenario, 6, seed=11, num_frames=6, num_observed=4, downsample=factor)
    assert fast.objects is None and fast.meta == ref.meta
    for name in EXACT:
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    for name in ("observed", "complete"):
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.shape == b.shape and a.dtype == b.dtype
        if factor == 1 or scenario == "elastic":
            assert torch.equal(a, b), name  # bit-identical
        else:  # one rounding of the uint8 mean instead of the mean of float32 quotients
            torch.testing.assert_close(a, b, rtol=0, atol=1.2e-7)
    SceneBatch.validate(fast)  # what the public constructor would check holds


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_odd_occlusion_removals_and_blank_digits_equal_generate_then_downsample(factor):
    # occluded rows not a multiple of f (pooled rows straddle the boundary), removed objects inside
    # the occlusion, and a digit without ink (always missing, wherever it is)
    g = torch.Generator().manual_seed(3)
    digits = (torch.rand(5, 28, 28, generator=g) > 0.7).to(torch.uint8) * 200
    digits[0] = 0
    digits[1, :20] = 0  # ink only in the lowest rows
    kwargs = dict(num_frames=6, num_observed=4, digits=digits, occluded_rows=31, num_missing=1, start_range=(1, 2))
    ref = generate("occlusion", 12, seed=4, **kwargs).downsample(factor)
    fast = generate_training_batch("occlusion", 12, seed=4, downsample=factor, **kwargs)
    assert ref.missing.any() and not ref.missing.all()
    for name in EXACT:
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name
    for name in ("observed", "complete"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), rtol=0, atol=0 if factor == 1 else 1.2e-7)


def test_a_wrong_composite_is_caught():
    # the comparison above can fail: compositing by sum instead of max differs where digits overlap
    ref = generate("complete", 16, seed=2)
    fast = generate_training_batch("complete", 16, seed=2)
    summed = ref.objects.sum(1).clamp(max=1)
    assert not torch.equal(summed, ref.complete) and torch.equal(fast.complete, ref.complete)


def test_batches_without_objects_move_select_and_concatenate():
    fast = generate_training_batch("out_of_scene", 4, seed=0, downsample=2)
    assert fast.to("cpu") is fast
    both = SceneBatch.cat([fast[:2], fast[2:]])
    assert both.objects is None and torch.equal(both.observed, fast.observed)
    with pytest.raises(ValueError, match="objects is None in some batches"):
        SceneBatch.cat([generate("out_of_scene", 1, seed=0).downsample(2), fast[:1]])
    with pytest.raises(ValueError, match="downsample must be a positive integer"):
        generate_training_batch("complete", 1, seed=0, downsample=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scenario", ["occlusion", "out_of_scene"])
def test_cuda_training_batch_equals_cpu(scenario):
    cpu = generate_training_batch(scenario, 4, seed=5, downsample=2)
    gpu = generate_training_batch(scenario, 4, seed=5, downsample=2, device="cuda").to("cpu")
    for name in ("observed", "complete", *EXACT):
        assert torch.equal(getattr(gpu, name), getattr(cpu, name)), name


def test_two_by_two_pooling_of_uint8_frames_is_the_sum_over_1020_rounded_once():
    from dive_pyro.data.fast_render import _pool

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (5, 8, 12), generator=g, dtype=torch.uint8)
    frames[0] = 255  # the largest sums (1020) must not carry into the neighbouring pixel
    expected = frames.reshape(5, 4, 2, 6, 2).sum((2, 4)).float().div(1020.0).unsqueeze(1)
    assert torch.equal(_pool(frames, 2), expected)
    scratch = frames.clone()
    assert torch.equal(_pool(scratch, 2, overwrite=True), expected)  # without temporaries
    assert torch.equal(_pool(frames[:, :, :8], 2), expected[..., :4])  # not contiguous: the generic path
