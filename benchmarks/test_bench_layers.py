"""G's upsample convolutions, forward + backward: nn.Upsample(x2 nearest) + 3x3 nn.Conv2d (`reference`, what the
reference implementations run) against UpsampleConv2d (`fused`: the same layer as one stride-2 transposed
convolution of the small map with folded 4x4 kernels, 16 instead of 36 multiply-adds per output value and input
channel; see fastacgan/models.py). Shapes: every such layer of the isic128 generator (isic64's are its last four).

On a GPU as the trainer runs them (bf16 autocast, channels-last, batch 256, cuDNN autotuned), replayed from a
CUDA graph (device time); on a CPU at small sizes. `work_tflops` counts the reference layer's FLOPs, so the two
providers' figures compare directly; the fused layer executes 16/36 of them."""

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, FULL, launched

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.models import Generator, UpsampleConv2d

BATCH = 256 if FULL else 2
WIDTH = 1.0 if FULL else 0.125
DTYPE = torch.bfloat16 if FULL else None


def upsample_layers(preset: str = "isic128") -> list[tuple[int, int, int]]:
    """(in_channels, out_channels, input size) of each upsample convolution of the preset's generator."""
    spec = resolve_spec(TrainConfig(width=WIDTH), preset, 3, 10)
    g = Generator(spec)
    found = []
    for m in g.modules():
        if isinstance(m, UpsampleConv2d):
            m.register_forward_hook(lambda mod, inp, out: found.append((mod.in_channels, mod.out_channels,
                                                                         inp[0].shape[-1])))  # fmt: skip
    with torch.no_grad():
        g(torch.randn(1, spec.nz), torch.zeros(1, dtype=torch.long))
    return found if FULL else found[-1:]


LAYERS = upsample_layers()


@pytest.mark.parametrize("provider", ["reference", "fused"])
@pytest.mark.parametrize("ci,co,size", LAYERS, ids=[f"{a}to{b}@{s}" for a, b, s in LAYERS])
def test_upsample_conv_fwd_bwd(run_bench, benchmark, provider, ci, co, size):
    benchmark.group = f"upsample conv {ci}->{co} {size}x{size} B={BATCH} {'graph' if FULL else 'eager'}"
    if FULL:
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    fast = UpsampleConv2d(ci, co, 3, 1, 1, bias=False).to(DEVICE, memory_format=torch.channels_last)
    fmt = torch.channels_last if FULL else torch.contiguous_format
    x = torch.randn(BATCH, ci, size, size, device=DEVICE).contiguous(memory_format=fmt).requires_grad_()
    up = torch.nn.Upsample(scale_factor=2, mode="nearest")
    autocast = torch.autocast(DEVICE.type, DTYPE, enabled=DTYPE is not None)
    grad_out = torch.randn(BATCH, co, 2 * size, 2 * size, device=DEVICE, dtype=DTYPE or torch.float32)
    grad_out = grad_out.contiguous(memory_format=fmt)

    def layer():
        with autocast:
            return fast(x) if provider == "fused" else F.conv2d(up(x), fast.weight, None, padding=1)

    def body():
        y = layer()
        torch.autograd.grad(y, (x, fast.weight), grad_out)
        return y

    run, calls = launched(body, "graph" if FULL else "eager")
    y = run_bench(run, work=BATCH * calls, unit="images/s")
    with torch.no_grad():  # a fast wrong answer is no answer: the other form of the same layer
        with autocast:
            other = F.conv2d(up(x), fast.weight, None, padding=1) if provider == "fused" else fast(x)
    tol = 2e-2 if FULL else 1e-4  # bf16: the two forms round the folded taps differently
    torch.testing.assert_close(y.float(), other.float(), atol=tol, rtol=tol)
    flops = 3 * 2 * BATCH * co * ci * 9 * (2 * size) ** 2  # forward, input gradient, weight gradient
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["work_tflops"] = flops * calls / benchmark.stats.stats.median / 1e12
