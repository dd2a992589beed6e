"""One-channel stride-2 convolutions of the DCGAN nets, computed the fast way on CPU.

The decoder's last layer (``ConvTranspose2d(c, 1, 4, 2, 1)``, the sprite, paper Eq. 10) and the
gradient of the object encoder's first layer with respect to its crops (``Conv2d(1, c, 4, 2, 1)``,
Eq. 6, whose adjoint is the same transposed convolution) are transposed convolutions with one output
channel, which oneDNN runs at a few GFLOP/s. Such a transposed convolution equals a 3×3 convolution
with ``4·C_out`` channels followed by ``pixel_shuffle(2)``: output pixel ``(2m + a, 2n + b)`` reads
the inputs ``m + d − 1, n + e − 1`` with the kernel tap ``(a + 3 − 2d, b + 3 − 2e)`` (zero where
that leaves 0..3). :func:`conv_transpose_s2` and :func:`conv_s2` use it; both have hand-written
backward passes with the other formulation, so values and gradients equal ``F.conv_transpose2d`` /
``F.conv2d`` up to float rounding (``tests/core/test_fastconv.py``). The nets call them on plain
tensors only: a tensor subclass such as the provenance tensors of ``TraceGraph_ELBO`` would lose
its tracking through a custom ``autograd.Function``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["conv_s2", "conv_transpose_s2"]


@functools.lru_cache(maxsize=8)
def _taps(device: torch.device) -> torch.Tensor:
    """``(4, 9)`` flat index ``ky·4 + kx`` (16 = zero) of the 4×4 kernel tap used by sub-pixel
    ``a·2 + b`` at 3×3 offset ``d·3 + e``."""
    index = torch.full((4, 9), 16, dtype=torch.long)
    for a in range(2):
        for b in range(2):
            for d in range(3):
                for e in range(3):
                    ky, kx = a + 3 - 2 * d, b + 3 - 2 * e
                    if 0 <= ky <= 3 and 0 <= kx <= 3:
                        index[a * 2 + b, d * 3 + e] = ky * 4 + kx
    return index.to(device)


def _subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """Transposed-convolution weight ``(C_in, C_out, 4, 4)`` → 3×3 convolution weight
    ``(4·C_out, C_in, 3, 3)`` whose output, pixel-shuffled by 2, is the transposed convolution."""
    c_in, c_out = weight.shape[:2]
    flat = torch.cat([weight.reshape(c_in, c_out, 16), weight.new_zeros(c_in, c_out, 1)], -1)
    taps = flat[:, :, _taps(weight.device)]  # (C_in, C_out, 4, 9)
    return taps.permute(1, 2, 0, 3).reshape(4 * c_out, c_in, 3, 3)


def _transposed(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=2, padding=1)`` for a 4×4 kernel, sub-pixel form."""
    return F.pixel_shuffle(F.conv2d(x, _subpixel_weight(weight), padding=1), 2)


class _ConvTransposeS2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _transposed(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight, stride=2, padding=1)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(grad, weight.shape, x, stride=2, padding=1)
        return grad_x, grad_w


class _ConvS2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, stride=2, padding=1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _transposed(grad, weight)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad, stride=2, padding=1)
        return grad_x, grad_w


def conv_transpose_s2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=2, padding=1)``, 4×4 kernel, no bias, computed as a
    3×3 convolution + ``pixel_shuffle`` (fast when the output has few channels)."""
    return _ConvTransposeS2.apply(x, weight)


def conv_s2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=2, padding=1)``, 4×4 kernel, no bias, whose input gradient is
    computed in the sub-pixel form (fast when the input has few channels)."""
    return _ConvS2.apply(x, weight)
