"""Shared nets: DCGAN sizes, spatial transformer geometry, pose constraint."""

import math

import pytest
import torch
from torch import nn

from dive_pyro.core.nets import (
    ConvDecoder,
    ConvEncoder,
    NormalHead,
    constrain_pose,
    crop_objects,
    dcgan_init,
    place_sprites,
    pose_to_pixels,
)


def _conv_channels(module: nn.Module) -> list[int]:
    return [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


def test_official_encoder_and_decoder_widths():
    # docs/official_code.md §2 (official models/conv_encoder.py:11-20): frame encoder 8/16/32/64 -> 256,
    # object encoder 8/16/32 -> 128,
    # decoder 128 -> 32/16/8 -> 1 at 32x32
    assert _conv_channels(ConvEncoder(64, 256, ngf=8)) == [8, 16, 32, 64, 256]
    assert _conv_channels(ConvEncoder(32, 128, ngf=8)) == [8, 16, 32, 128]
    assert _conv_channels(ConvDecoder(128, 32, ngf=8)) == [32, 16, 8, 1]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in ConvEncoder(64, 256).modules()) == 3  # not the first
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ConvEncoder(64, 256, batch_norm=False).modules())


@pytest.mark.parametrize("size", [4, 8, 32])
def test_encoder_decoder_shapes_and_range(size):
    enc, dec = ConvEncoder(size, 5, ngf=2), ConvDecoder(5, size, ngf=2)
    feats = enc(torch.rand(3, 1, size, size))
    assert feats.shape == (3, 5)
    sprites = dec(torch.randn(3, 5) * 10)
    assert sprites.shape == (3, 1, size, size)
    assert (sprites > 0).all() and (sprites < 1).all()


@pytest.mark.parametrize("size", [0, 2, 6, 12, 48])
def test_bad_sizes_are_rejected(size):
    with pytest.raises(ValueError, match="size must be 4 times a power of two"):
        ConvEncoder(size, 4)


def test_encoder_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="expects images of size 8x8"):
        ConvEncoder(8, 4)(torch.zeros(1, 1, 16, 16))


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(400, 500), nn.BatchNorm2d(300))
    dcgan_init(lin, 0.02)
    w = lin[0].weight
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    assert (lin[0].bias == 0).all()
    assert abs(lin[1].weight.mean().item() - 1) < 5e-3 and (lin[1].bias == 0).all()


def test_normal_head_offset_and_positive_scale():
    head = NormalHead(2, 3, loc_offset=torch.tensor([3.0, 0.0, 0.0]))
    nn.init.zeros_(head.loc.weight), nn.init.zeros_(head.loc.bias)
    nn.init.zeros_(head.scale.weight), nn.init.constant_(head.scale.bias, -200.0)
    loc, scale = head(torch.ones(4, 2))
    assert torch.equal(loc, torch.tensor([3.0, 0.0, 0.0]).expand(4, 3))
    assert (scale == 1e-6).all()  # softplus underflow is floored, not zero


def test_constrain_pose_hand_values():
    raw = torch.tensor([[3.5, 0.0, 100.0], [10.0, -100.0, 0.5], [-5.0, 0.2, 0.0]])
    out = constrain_pose(raw, s0=3.0, scale_range=1.0)
    expected = torch.tensor(
        [
            [3.5, 0.0, 3.0],  # tanh(100) = 1, times s - 0.5 = 3
            [4.0, -3.5, math.tanh(0.5) * 3.5],  # s clamped to s0 + 1
            [2.0, math.tanh(0.2) * 1.5, 0.0],  # s clamped to s0 - 1
        ]
    )
    torch.testing.assert_close(out, expected)


def test_place_identity_and_exact_footprint():
    torch.manual_seed(0)
    sprite = torch.rand(2, 1, 8, 8)
    # scale 1, no shift, sprite as large as the frame: identity (align_corners=False)
    same = place_sprites(sprite, torch.tensor([[1.0, 0.0, 0.0]] * 2), frame_size=8)
    torch.testing.assert_close(same, sprite)
    # scale 2 in a 16-frame: the 8-pixel sprite lands exactly on rows/cols 4..11
    placed = place_sprites(sprite, torch.tensor([[2.0, 0.0, 0.0]] * 2), frame_size=16)
    torch.testing.assert_close(placed[..., 4:12, 4:12], sprite)
    assert placed.sum().item() == pytest.approx(sprite.sum().item(), rel=1e-5)


def test_crop_inverts_place_when_pixel_centres_align():
    torch.manual_seed(1)
    sprite = torch.rand(3, 1, 8, 8)
    # s = 2 in a 16-frame; shifts by whole pixels (1 pixel = 2/16 normalised, times s)
    pose = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.5, -0.25], [2.0, -0.75, 0.5]])
    frames = place_sprites(sprite, pose, frame_size=16)
    torch.testing.assert_close(crop_objects(frames, pose, object_size=8), sprite)


def test_pose_to_pixels_matches_rendered_centroid():
    blob = torch.ones(1, 1, 8, 8)
    pose = torch.tensor([[2.0, 0.5, -0.25]])
    frame = place_sprites(blob, pose, frame_size=16)[0, 0]
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centroid = torch.stack([(frame * xs).sum(), (frame * ys).sum()]) / frame.sum()
    torch.testing.assert_close(pose_to_pixels(pose, 16)[0], centroid)
    # by hand: centre = -(x, y)/s = (-0.25, 0.125) normalised -> ((c + 1) * 16 - 1) / 2 pixels
    torch.testing.assert_close(pose_to_pixels(pose, 16)[0], torch.tensor([5.5, 8.5]))


def test_transformer_batches_over_leading_dims():
    torch.manual_seed(2)
    sprites = torch.rand(2, 3, 4, 1, 4, 4)
    pose = torch.tensor([2.0, 0.1, -0.2]).expand(2, 3, 4, 3)
    out = place_sprites(sprites, pose, 8)
    assert out.shape == (2, 3, 4, 1, 8, 8)
    torch.testing.assert_close(out[1, 2, 3], place_sprites(sprites[1, 2, 3:4], pose[1, 2, 3:4], 8)[0])
