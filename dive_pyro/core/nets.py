"""Neural building blocks shared by the DIVE model and guide (paper §3, docs/official_code.md §2).

* :class:`ConvEncoder` / :class:`ConvDecoder`: DCGAN-style image encoder and sprite decoder
  (official sizes: frame encoder 64² → 256, object encoder 32² → 128, decoder 128 → 32²);
* the spatial transformer: :func:`place_sprites` (``T`` in Eq. 10) and :func:`crop_objects`
  (``T⁻¹`` in Eq. 6), both driven by a pose ``(s, x, y)`` (defined in :mod:`dive_pyro.core.stn`);
* :func:`constrain_pose`, the official pose constraint, and :func:`pose_to_pixels`;
* :class:`NormalHead` (features → ``(loc, scale)``) and :class:`MLP`;
* :func:`dcgan_init`, the official weight initialisation.

Everything is batched over arbitrary leading dimensions and device-agnostic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dive_pyro.core.fastconv import conv_s2, conv_transpose_s2
from dive_pyro.core.stn import ALIGN_CORNERS, crop_objects, place_sprites

__all__ = [
    "ALIGN_CORNERS",
    "ConvEncoder",
    "ConvDecoder",
    "MLP",
    "NormalHead",
    "constrain_pose",
    "crop_objects",
    "dcgan_init",
    "place_sprites",
    "pose_to_pixels",
]


def _num_halvings(size: int, name: str) -> int:
    """Number of stride-2 stages between ``size`` and the 4×4 bottleneck (size = 4·2^k)."""
    k = math.log2(size / 4) if size >= 4 else -1
    if size < 4 or k != int(k):
        raise ValueError(f"{name} must be 4 times a power of two (4, 8, 16, 32, 64, ...), got {size}")
    return int(k)


#: the sub-pixel form pays off for stride-2 layers with at most this many channels on the thin side
#: (measured on CPU: 1.5-3x at 1 and 8 channels, none at 16)
SUBPIXEL_CHANNELS = 8


def _subpixel_layer(layer: nn.Module, channels: int) -> bool:
    """True for a bias-free 4×4 stride-2 padding-1 (transposed) convolution with ``1 <= channels
    <= SUBPIXEL_CHANNELS``, the shape :mod:`dive_pyro.core.fastconv` computes."""
    return (
        isinstance(layer, nn.Conv2d | nn.ConvTranspose2d)
        and 1 <= channels <= SUBPIXEL_CHANNELS
        and layer.kernel_size == (4, 4)
        and layer.stride == (2, 2)
        and layer.padding == (1, 1)
        and layer.bias is None
        and layer.groups == 1
        and layer.dilation == (1, 1)
    )


class ConvEncoder(nn.Module):
    """DCGAN encoder: image ``(M, C, S, S)`` → features ``(M, out_dim)`` (docs/official_code.md §2).

    Stride-2 4×4 convolutions halve the image down to 4×4 (channels ``ngf, 2·ngf, ...``; the first
    without BatchNorm, LeakyReLU 0.2 throughout), then a 4×4 valid convolution gives a 1×1 map with
    ``out_dim`` channels. No biases, as in the official code. For S = 64 the channels are
    8/16/32/64 → 256 (frame encoder); for S = 32, 8/16/32 → 128 (object encoder).
    """

    def __init__(self, size: int, out_dim: int, ngf: int = 8, in_channels: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        n = _num_halvings(size, "size")
        layers: list[nn.Module] = []
        c_in = in_channels
        for k in range(n):
            c_out = ngf * 2**k
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
            if k > 0 and batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, out_dim, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.size = size
        self.out_dim = out_dim
        self.channels_last = False  # numerics only: run the convolutions in channels_last memory format
        # numerics only: stride-2 layers with <= SUBPIXEL_CHANNELS input channels take their input
        # gradient in the sub-pixel form (dive_pyro.core.fastconv), 1.5-3x faster on CPU
        self.subpixel = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.size, self.size):
            raise ValueError(
                f"ConvEncoder expects images of size {self.size}x{self.size}, got {tuple(images.shape[-2:])}"
            )
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if not self.subpixel or torch.is_autocast_enabled(images.device.type):  # (autocast: torch's dtypes)
            return self.net(images).flatten(1)
        x = images
        for layer in self.net:
            thin = _subpixel_layer(layer, layer.in_channels if isinstance(layer, nn.Conv2d) else 0)
            if thin and x.requires_grad and type(x) is torch.Tensor:  # (subclasses: see fastconv)
                x = conv_s2(x, layer.weight)
            else:
                x = layer(x)
        return x.flatten(1)


class ConvDecoder(nn.Module):
    """DCGAN decoder: latent ``(M, in_dim)`` → sprite ``(M, C, S, S)`` in (0, 1) (paper Eq. 10).

    A 4×4 transposed convolution from the 1×1 latent, then stride-2 transposed convolutions halving
    the channels (BatchNorm + ReLU), and a final one to ``out_channels`` with a sigmoid. For S = 32
    and ngf = 8: 128 → 32 (4²) → 16 (8²) → 8 (16²) → 1 (32²), as in the official code.
    """

    def __init__(self, in_dim: int, size: int, ngf: int = 8, out_channels: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        n = _num_halvings(size, "size")
        layers: list[nn.Module] = []
        if n == 0:
            layers.append(nn.ConvTranspose2d(in_dim, out_channels, 4, 1, 0, bias=False))
        else:
            c = ngf * 2 ** (n - 1)
            layers += [nn.ConvTranspose2d(in_dim, c, 4, 1, 0, bias=False)]
            layers += [nn.BatchNorm2d(c)] if batch_norm else []
            layers += [nn.ReLU()]
            for _ in range(n - 1):
                layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False)]
                layers += [nn.BatchNorm2d(c // 2)] if batch_norm else []
                layers += [nn.ReLU()]
                c //= 2
            layers.append(nn.ConvTranspose2d(c, out_channels, 4, 2, 1, bias=False))
        layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim
        # numerics only: stride-2 layers with <= SUBPIXEL_CHANNELS output channels run in the
        # sub-pixel form (dive_pyro.core.fastconv), 1.5-2.5x faster on CPU
        self.subpixel = False

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = latent.reshape(-1, self.in_dim, 1, 1)
        if not self.subpixel or torch.is_autocast_enabled(x.device.type):  # (autocast: torch's dtypes)
            return self.net(x)
        for layer in self.net:
            thin = _subpixel_layer(layer, layer.out_channels if isinstance(layer, nn.ConvTranspose2d) else 0)
            if thin and type(x) is torch.Tensor:  # (subclasses: see fastconv)
                x = conv_transpose_s2(x, layer.weight)
            else:
                x = layer(x)
        return x


class MLP(nn.Sequential):
    """Linear → LeakyReLU (slope 0.01, PyTorch default as in the official code) → Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, out_dim))


class NormalHead(nn.Module):
    """Features → ``(loc, scale)`` of a diagonal Normal: ``loc = Linear(h) + offset``,
    ``scale = softplus(Linear(h))`` (the official µ/σ heads, docs/official_code.md §2), floored at
    ``1e-6`` so that a saturated softplus cannot produce an invalid zero scale."""

    def __init__(self, in_dim: int, out_dim: int, loc_offset: torch.Tensor | None = None) -> None:
        super().__init__()
        self.loc = nn.Linear(in_dim, out_dim)
        self.scale = nn.Linear(in_dim, out_dim)
        offset = torch.zeros(out_dim) if loc_offset is None else torch.as_tensor(loc_offset).float()
        self.register_buffer("loc_offset", offset)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc(h) + self.loc_offset, F.softplus(self.scale(h)).clamp_min(1e-6)


def dcgan_init(module: nn.Module, std: float = 0.02) -> None:
    """Official initialisation (docs/official_code.md §4): conv/linear weights ~ N(0, std), biases 0,
    BatchNorm weights ~ N(1, std); LSTMs keep PyTorch's defaults."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------- poses
def constrain_pose(raw: torch.Tensor, s0: float, scale_range: float = 1.0) -> torch.Tensor:
    """Official pose constraint (docs/official_code.md §3) on ``raw = (s, x, y)`` in the last dim:
    ``s ← clamp(s, s0 − r, s0 + r)`` (zero gradient outside, as official) and
    ``(x, y) ← tanh(x, y) · (s − 0.5)``, which keeps the object centre inside the frame."""
    s = raw[..., :1].clamp(s0 - scale_range, s0 + scale_range)
    return torch.cat([s, torch.tanh(raw[..., 1:]) * (s - 0.5)], dim=-1)


def pose_to_pixels(pose: torch.Tensor, frame_size: int) -> torch.Tensor:
    """Object centre in pixels ``(..., 2)`` as ``(x, y)`` (x = column, same convention as
    ``SceneBatch.positions``) for poses ``(..., 3)``; pixel ``j`` has its centre at ``j``."""
    centre = -pose[..., 1:] / pose[..., :1]  # normalised coordinates in [-1, 1]
    return ((centre + 1) * frame_size - 1) / 2  # valid for ALIGN_CORNERS = False
