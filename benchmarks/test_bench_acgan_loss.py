"""The AC-GAN loss, forward + backward: eager reference vs torch.compile of it vs the fused Triton op, each
launched from Python (eager) and, on a GPU, replayed from a CUDA graph (device time; see conftest.LAUNCHES).

The backward is autograd.grad from a preallocated upstream gradient: only the loss's own work is timed, not
the fill of a seed gradient and the accumulation into .grad that loss.backward() adds to every provider alike."""

import importlib

import pytest
import torch
from conftest import DEVICE, FULL, LAUNCHES, launched

from fastacgan.kernels import acgan_loss_reference
from fastacgan.kernels.acgan_loss import acgan_loss_fused

SIZES = [(b, k) for b in (64, 256, 1024) for k in (10, 1000)] if FULL else [(64, 10)]
PROVIDERS = ["reference", "compiled", "fused"]
_compiled = torch.compile(acgan_loss_reference)
AL = importlib.import_module("fastacgan.kernels.acgan_loss")


def loss_fwd_bwd(fn, b: int, k: int):
    """(the timed body: the loss and its gradients from a preallocated upstream gradient, src, cls, labels)."""
    src = torch.randn(b, device=DEVICE, requires_grad=True)
    cls = torch.randn(b, k, device=DEVICE, requires_grad=True)
    labels = torch.randint(k, (b,), device=DEVICE)
    one = torch.ones((), device=DEVICE)

    def body():
        loss, stats = fn(src, cls, 0.9, labels, 1.0)
        torch.autograd.grad(loss, (src, cls), one)
        return loss

    return body, src, cls, labels


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("launch", LAUNCHES)
@pytest.mark.parametrize("b,k", SIZES)
def test_acgan_loss_fwd_bwd(run_bench, benchmark, provider, launch, b, k):
    benchmark.group = f"acgan_loss B={b} K={k} {launch}"
    fn = {"reference": acgan_loss_reference, "compiled": _compiled, "fused": acgan_loss_fused}[provider]
    body, src, cls, labels = loss_fwd_bwd(fn, b, k)
    run, calls = launched(body, launch)
    loss = run_bench(run, work=b * calls, unit="rows/s")
    ref, _ = acgan_loss_reference(src.detach(), cls.detach(), 0.9, labels)
    assert torch.allclose(loss.detach(), ref, rtol=1e-5, atol=1e-5)  # a fast wrong answer is no answer


@pytest.mark.skipif(not FULL, reason="warp counts are a GPU question")
@pytest.mark.parametrize("warps", [1, 2, 4, 8])
@pytest.mark.parametrize("b,k", [(64, 10), (64, 1000), (1024, 10)])
def test_acgan_loss_warps_sweep(run_bench, benchmark, monkeypatch, warps, b, k):
    """The fused op with every program at a fixed number of warps (kernels/acgan_loss.py `_NUM_WARPS`), device
    time: which count the launchers should pick, where B=64 loses to torch.compile of the reference."""
    monkeypatch.setattr(AL, "_NUM_WARPS", warps)
    benchmark.group = f"loss warps sweep B={b} K={k} graph"
    run, calls = launched(loss_fwd_bwd(acgan_loss_fused, b, k)[0], "graph")
    run_bench(run, work=b * calls, unit="rows/s")
