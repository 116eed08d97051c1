"""fastacgan's training step against the race's opponent, benchmarks/reference.py, step for step.

The race and the quality check compare fastacgan with that plain eager AC-GAN; this pins down that the two train
the same thing: from the same weights, batches, noise and dropout draws, fastacgan's step (fp32, its fast G
layers, its fused kernels or their PyTorch references) leaves the weights, the spectral-norm vectors and the
BatchNorm statistics that the reference's step leaves. What may still differ between them in the race is
rounding (bf16, fused kernels) and the random draws, not the algorithm."""

import importlib

import pytest
import torch
from conftest import load_benchmark_module

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.kernels import acgan_loss_fused
from fastacgan.step import ACGANStep

sn_module = importlib.import_module("fastacgan.kernels.spectral_norm")

reference = load_benchmark_module("reference")


def _twins(preset: str, channels: int, device: torch.device, **step_kw):
    spec = resolve_spec(TrainConfig(width=0.25, image_size=16), preset, channels, 5)
    torch.manual_seed(0)
    gan = ACGANStep(spec, device, fast_dropout=False, **step_kw)  # nn.Dropout's masks, as the reference draws
    ref = reference.ReferenceACGAN(spec, device)
    ref.G.load_state_dict(gan.G.state_dict())  # the same keys: the fast G layers and the fused SN are drop-ins
    ref.D.load_state_dict(gan.D.state_dict())
    return spec, gan, ref


def _train_both(spec, gan, ref, steps: int, batch: int = 8):
    g = torch.Generator().manual_seed(1)
    device = gan.device
    for i in range(steps):
        real = (torch.rand(batch, spec.channels, 16, 16, generator=g) * 2 - 1).to(device)
        labels = torch.randint(spec.num_classes, (batch,), generator=g).to(device)
        z, c = gan._noise(batch)
        torch.manual_seed(100 + i)  # dropout: both draw their masks in the same order (D real, D fake, D fake)
        gan._step(real, labels, z, c)
        torch.manual_seed(100 + i)
        ref.step(real, labels, z.clone(), c.clone())


def _cancelled_by_batchnorm(model: torch.nn.Module) -> set[str]:
    """state_dict keys of the biases that feed a training-mode BatchNorm directly, and of that BatchNorm's running
    mean. BatchNorm subtracts the batch mean, so such a bias has a zero gradient: what autograd gives it is
    rounding noise (~1e-9), which Adam, dividing by its square root, turns into steps of about lr whose sign is
    the noise's. The two implementations' noise differs (another order of float operations), so these drift
    apart by design; nothing else depends on them in training."""
    keys = set()
    for prefix, mod in model.named_modules():
        if isinstance(mod, torch.nn.Sequential):
            for (i, a), b in zip(enumerate(mod), list(mod)[1:]):
                if getattr(a, "bias", None) is not None and isinstance(b, torch.nn.BatchNorm2d):
                    keys |= {f"{prefix}.{i}.bias", f"{prefix}.{i + 1}.running_mean"}
    return keys


def _assert_same_state(gan, ref, atol: float, rtol: float):
    for name, net, twin in (("G", gan.G, ref.G), ("D", gan.D, ref.D)):
        theirs = twin.state_dict()
        ours = net.state_dict()
        assert ours.keys() == theirs.keys()
        noise = _cancelled_by_batchnorm(twin)
        assert noise <= theirs.keys()
        for key, t in theirs.items():
            o = ours[key]
            assert torch.isfinite(o.float()).all(), f"{name}.{key}"
            if key in noise:
                continue
            torch.testing.assert_close(o, t, atol=atol, rtol=rtol, msg=lambda m, k=key: f"{name}.{k}: {m}")


@pytest.mark.parametrize(
    "preset, channels",
    [("cifar10", 3), ("isic64", 3), ("mnist", 1)],  # BN + dropout D; spectral-norm D; the conditioning of mnist
)
@pytest.mark.parametrize("kernels", [False, True], ids=["torch-ops", "triton-kernels"])
def test_step_for_step_as_the_reference(monkeypatch, preset, channels, kernels):
    """kernels: the step runs the fused loss and spectral-norm kernels (here under the Triton interpreter),
    which the trainer uses on CUDA tensors only; otherwise their PyTorch references."""
    spec, gan, ref = _twins(preset, channels, torch.device("cpu"), fused_kernels=kernels)
    if kernels:
        monkeypatch.setattr(sn_module, "_use_fused", lambda *a: True)
        gan.loss = acgan_loss_fused
    before = {k: v.clone() for k, v in ref.G.state_dict().items()}
    _train_both(spec, gan, ref, steps=4)
    moved = [k for k, v in ref.G.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert len(moved) > 0.5 * len(before), "the reference's G barely trained: nothing would be compared"
    # the same arithmetic up to the order of float operations (the loss is one function here, two modules there)
    _assert_same_state(gan, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset", ["cifar10", "isic64"])
def test_cuda_fused_kernels_step_as_the_reference(preset):
    """On a GPU the fused loss and spectral-norm kernels (fp32, eager, fused Adam) against the reference's
    PyTorch ops: the same training up to the kernels' summation order. cuDNN deterministic and without TF32
    (the reference's transposed stem is a cuDNN convolution, fastacgan's a matrix product)."""
    spec, gan, ref = _twins(preset, 3, torch.device("cuda"), fused_kernels=True)
    assert gan.fused_kernels, "the fused kernels failed their self-check"
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32  # set after the reference's set-up
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = True, False, False
    try:
        _train_both(spec, gan, ref, steps=4)
        _assert_same_state(gan, ref, atol=1e-4, rtol=1e-3)
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = saved
