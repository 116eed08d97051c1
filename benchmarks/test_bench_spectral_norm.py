"""Spectral norm, forward + backward of the normalised weights: PyTorch's parametrization, the older
torch.nn.utils.spectral_norm hook, torch.compile of the reference, and the fused grouped kernel.

Timed work: one power iteration and W / sigma for every SN layer of a discriminator (what one D call costs),
then the backward of a fixed linear function of all normalised weights."""

import copy
import dataclasses
import importlib

import pytest
import torch
from conftest import DEVICE, FULL, sync
from torch import nn

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.kernels import SpectralNormGroup, spectral_norm, spectral_norm_sigma_reference
from fastacgan.models import Discriminator

PRESETS = ["isic64", "isic128"] if FULL else ["isic64"]
WIDTH = 1.0 if FULL else 0.125
PROVIDERS = ["parametrization", "hook", "compiled", "fused"]


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
    probes = [torch.randn_like(m.weight) for m in layers]
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
    elif provider == "compiled":
        for m in layers:
            spectral_norm(m)
        sns = [m.parametrizations.weight[0] for m in layers]

        @torch.compile
        def normalised(ws, us, vs):
            sig = spectral_norm_sigma_reference(ws, us, vs, [0] * len(ws), 1, 1e-12)
            return [w / sig[i] for i, w in enumerate(ws)]

        weights = lambda: normalised(
            [m.parametrizations.weight.original for m in layers],  # noqa: E731
            [p._u for p in sns],
            [p._v for p in sns],
        )
    else:
        holder = nn.ModuleList(layers)
        for m in layers:
            spectral_norm(m)
        group = SpectralNormGroup(holder)
        if DEVICE.type == "cpu":  # force the kernel, under the Triton interpreter
            monkeypatch.setattr(importlib.import_module("fastacgan.kernels.spectral_norm"), "_use_fused",
                                lambda *a: True)  # fmt: skip

        def weights():
            group.update(True)
            return [m.weight for m in layers]

    def step():
        loss = sum((w * p).sum() for w, p in zip(weights(), probes))
        loss.backward()
        sync()
        return loss

    return step, nbytes


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("preset", PRESETS)
def test_sn_whole_model(run_bench, benchmark, monkeypatch, preset, provider):
    benchmark.group = f"spectral_norm model {preset} x{WIDTH:g}"
    step, nbytes = build(preset, provider, monkeypatch)
    run_bench(step, work=2 * nbytes / 1e9, unit="GB/s (2 weight passes)")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layer", [0, -3] if FULL else [0])
def test_sn_single_layer(run_bench, benchmark, monkeypatch, layer, provider):
    step, nbytes = build(PRESETS[-1], provider, monkeypatch, layer)
    benchmark.group = f"spectral_norm layer {PRESETS[-1]}[{layer}] {nbytes // 4} weights"
    run_bench(step, work=2 * nbytes / 1e9, unit="GB/s (2 weight passes)")
