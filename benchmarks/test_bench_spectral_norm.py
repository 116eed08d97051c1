"""Spectral norm, forward + backward of the normalised weights: PyTorch's parametrization, the older
torch.nn.utils.spectral_norm hook, torch.compile of the reference, and the fused grouped kernels.

Timed work: one power iteration and W / sigma for every SN layer of a discriminator (what one D call costs),
then the backward from given gradients of all normalised weights to the raw weights (autograd.grad, so no
loss's own ops and no gradient accumulation are timed: only spectral norm's work). `fused_channels_last` is the
fused kernels on channels-last conv weights, the layout the trainer gives them on a GPU; `fused_compiled` is
torch.compile of spectral_normalize_fused (as inside the trainer's compiled D). `test_sn_update` times sigma
alone (power iteration, sigma, the backward through sigma). Each is timed launched from Python and, on a GPU,
from a CUDA graph (device time; conftest.LAUNCHES). On a GPU, a sweep of the kernels' tile shapes (`_WV`,
`_WTU` in kernels/spectral_norm_fused.py) for the largest model shows which is best."""

import copy
import dataclasses
import importlib

import pytest
import torch
from conftest import DEVICE, FULL, LAUNCHES, launched
from torch import nn

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.kernels import (
    SpectralNormGroup,
    spectral_norm,
    spectral_norm_sigma_fused,
    spectral_norm_sigma_reference,
    spectral_normalize_fused,
    spectral_normalize_reference,
)
from fastacgan.models import Discriminator

PRESETS = ["isic64", "isic128"] if FULL else ["isic64"]
WIDTH = 1.0 if FULL else 0.125
PROVIDERS = ["parametrization", "hook", "compiled", "fused", "fused_channels_last", "fused_compiled"]
SN = importlib.import_module("fastacgan.kernels.spectral_norm")
SN_FUSED = importlib.import_module("fastacgan.kernels.spectral_norm_fused")  # the launchers, which read the tiles


def sn_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def build(preset, provider, monkeypatch, layer_index=None):
    """(callable that runs the timed work, number of weight bytes it reads per power iteration)."""
    torch.manual_seed(0)
    spec = dataclasses.replace(resolve_spec(TrainConfig(width=WIDTH), preset, 3, 10), d_sn=False)
    layers = sn_layers(Discriminator(spec).to(DEVICE))
    if layer_index is not None:
        layers = [layers[layer_index]]
    layers = [copy.deepcopy(m) for m in layers]
    if provider == "fused_channels_last":
        layers = [m.to(memory_format=torch.channels_last) for m in layers]
    probes = [torch.randn_like(m.weight) for m in layers]  # the gradients of the normalised weights
    nbytes = sum(m.weight.numel() * 4 for m in layers)
    if provider == "parametrization":
        for m in layers:
            nn.utils.parametrizations.spectral_norm(m)
        weights = lambda: [m.weight for m in layers]  # noqa: E731
    elif provider == "hook":
        for m in layers:
            nn.utils.spectral_norm(m)
        hooks = [next(iter(m._forward_pre_hooks.values())) for m in layers]

        def weights():
            for m, h in zip(layers, hooks):
                h(m, None)  # what the pre-forward hook does on each call: power iteration, W / sigma
            return [m.weight for m in layers]
    elif provider in ("compiled", "fused_compiled"):
        # torch.compile of the whole update: by the reference (PyTorch ops, all of it Inductor's) or the fused
        # kernels (what the trainer's compiled D runs)
        if provider == "fused_compiled" and DEVICE.type == "cpu":
            pytest.skip("the fused kernels under torch.compile on CPU: tests/test_compiled_fused.py")
        for m in layers:
            spectral_norm(m)
        sns = [m.parametrizations.weight[0] for m in layers]
        fn = torch.compile(spectral_normalize_reference if provider == "compiled" else spectral_normalize_fused)
        originals = [m.parametrizations.weight.original for m in layers]
        weights = lambda: fn(originals, [p._u for p in sns], [p._v for p in sns], [0] * len(layers), 1, 1e-12)  # noqa: E731
    else:
        holder = nn.ModuleList(layers)
        for m in layers:
            spectral_norm(m)
        group = SpectralNormGroup(holder)
        if DEVICE.type == "cpu":  # force the kernel, under the Triton interpreter
            monkeypatch.setattr(SN, "_use_fused", lambda *a: True)

        def weights():
            group.update(True)
            return [m.weight for m in layers]

    raw = [p for m in layers for n, p in m.named_parameters() if n.endswith(("original", "weight_orig"))]
    assert len(raw) == len(layers)

    def step():
        return torch.autograd.grad(weights(), raw, probes)

    return step, nbytes


def bench(run_bench, step, nbytes, launch):
    run, calls = launched(step, launch)
    run_bench(run, work=2 * nbytes * calls / 1e9, unit="GB/s (2 weight passes)")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("launch", LAUNCHES)
@pytest.mark.parametrize("preset", PRESETS)
def test_sn_whole_model(run_bench, benchmark, monkeypatch, preset, launch, provider):
    benchmark.group = f"spectral_norm model {preset} x{WIDTH:g} {launch}"
    bench(run_bench, *build(preset, provider, monkeypatch), launch)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("launch", LAUNCHES)
@pytest.mark.parametrize("layer", [0, -3] if FULL else [0])
def test_sn_single_layer(run_bench, benchmark, monkeypatch, layer, launch, provider):
    step, nbytes = build(PRESETS[-1], provider, monkeypatch, layer)
    benchmark.group = f"spectral_norm layer {PRESETS[-1]}[{layer}] {nbytes // 4} weights {launch}"
    bench(run_bench, step, nbytes, launch)


_sigma_compiled = torch.compile(spectral_norm_sigma_reference)


@pytest.mark.parametrize("provider", ["reference", "compiled", "fused"])
@pytest.mark.parametrize("launch", LAUNCHES)
@pytest.mark.parametrize("preset", PRESETS)
def test_sn_update(run_bench, benchmark, preset, launch, provider):
    """The update alone, for every SN layer of the discriminator: one power iteration and sigma, and the
    backward through sigma (d sigma / dW = u v^T): PyTorch ops as the parametrization runs them (`reference`),
    torch.compile of them, the fused kernels. W / sigma and what follows are not in it (the groups above)."""
    torch.manual_seed(0)
    spec = dataclasses.replace(resolve_spec(TrainConfig(width=WIDTH), preset, 3, 10), d_sn=False)
    ws = [m.weight.detach().clone().requires_grad_() for m in sn_layers(Discriminator(spec).to(DEVICE))]
    mats = [w.flatten(1) for w in ws]
    us = [nn.functional.normalize(torch.randn(m.shape[0], device=DEVICE), dim=0) for m in mats]
    vs = [nn.functional.normalize(torch.randn(m.shape[1], device=DEVICE), dim=0) for m in mats]
    coef = torch.randn(len(ws), device=DEVICE)
    fn = {"reference": spectral_norm_sigma_reference, "compiled": _sigma_compiled,
          "fused": spectral_norm_sigma_fused}[provider]  # fmt: skip
    benchmark.group = f"spectral_norm update {preset} x{WIDTH:g} {launch}"

    def step():
        sig = fn(ws, us, vs, [0] * len(ws), 1, 1e-12)
        (sig * coef).sum().backward()
        return sig

    nbytes = sum(w.numel() * 4 for w in ws)
    bench(run_bench, step, nbytes, launch)


TILES = [((32, 512, 64), (128, 128, 32)), ((64, 256, 64), (128, 128, 32)), ((16, 1024, 128), (128, 128, 32)),
         ((32, 512, 64), (64, 256, 64)), ((32, 512, 64), (256, 64, 16)), ((64, 256, 32), (64, 256, 32))]  # fmt: skip


@pytest.mark.skipif(not FULL, reason="tile shapes are a GPU question")
@pytest.mark.parametrize("tiles", TILES, ids=lambda t: "wv={}x{}x{} wtu={}x{}x{}".format(*t[0], *t[1]))
def test_sn_tile_sweep(run_bench, benchmark, monkeypatch, tiles):
    """The fused update of the largest model (channels-last, as the trainer has it) under other tile shapes
    (rows, columns, columns per step) for pass 1 (W v) and pass 2 (W^T t); the first is the default."""
    monkeypatch.setattr(SN_FUSED, "_WV", tiles[0])
    monkeypatch.setattr(SN_FUSED, "_WTU", tiles[1])
    benchmark.group = f"spectral_norm tiles {PRESETS[-1]} x{WIDTH:g} graph"
    bench(run_bench, *build(PRESETS[-1], "fused_channels_last", monkeypatch), "graph")
