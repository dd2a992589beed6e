"""Sub-pixel stride-2 convolutions equal torch's, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from dive_pyro.core.fastconv import conv_s2, conv_transpose_s2
from dive_pyro.core.nets import ConvDecoder, ConvEncoder


def _grads(fn, x, w, weight):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = fn(x, w)
    (out * weight).sum().backward()
    return out, x.grad, w.grad


@pytest.mark.parametrize("channels", [(8, 1), (3, 2)])
def test_sub_pixel_transposed_convolution_equals_conv_transpose2d(channels):
    c_in, c_out = channels
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, c_in, 6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(c_in, c_out, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(5, c_out, 12, 14, generator=g, dtype=torch.float64)
    ref = _grads(lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1), x, w, weight)
    got = _grads(conv_transpose_s2, x, w, weight)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [(1, 8), (2, 3)])
def test_convolution_with_sub_pixel_input_gradient_equals_conv2d(channels):
    c_in, c_out = channels
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, c_in, 8, 10, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, c_in, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(4, c_out, 4, 5, generator=g, dtype=torch.float64)
    ref = _grads(lambda a, b: F.conv2d(a, b, stride=2, padding=1), x, w, weight)
    got = _grads(conv_s2, x, w, weight)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _net_grads(net, inputs):
    inputs = inputs.clone().requires_grad_()
    out = net(inputs)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grads = torch.cat([inputs.grad.flatten(), *(p.grad.flatten() for p in net.parameters())])
    net.zero_grad()
    return out, grads


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_subpixel_nets_give_the_same_outputs_and_gradients(kind, monkeypatch):
    import dive_pyro.core.nets as nets

    torch.manual_seed(0)
    net = ConvEncoder(16, 12, 4) if kind == "encoder" else ConvDecoder(12, 16, 4)
    inputs = torch.rand(6, 1, 16, 16) if kind == "encoder" else torch.randn(6, 12)
    ref = _net_grads(net, inputs)
    net.subpixel = True
    calls = []
    name = "conv_s2" if kind == "encoder" else "conv_transpose_s2"
    original = getattr(nets, name)
    monkeypatch.setattr(nets, name, lambda *a: calls.append(1) or original(*a))
    got = _net_grads(net, inputs)
    assert calls  # the sub-pixel layer ran
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    assert (got[1] - ref[1]).norm() <= 1e-5 * ref[1].norm()


def test_subpixel_nets_fall_back_to_torch_under_autocast():
    torch.manual_seed(0)
    dec, enc = ConvDecoder(12, 16, 4), ConvEncoder(16, 12, 4)
    dec.subpixel = enc.subpixel = True
    z = torch.randn(3, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(dec(z))
    out.float().sum().backward()  # the custom backward passes would mix bf16 and float32
    assert z.grad is not None and torch.isfinite(z.grad).all()
