"""The race: a training step (and one CIFAR-10 epoch from the JPEG files, data loading included) of the plain
eager reference (benchmarks/reference.py) against fastacgan's fast path (torch.compile with CUDA graphs,
bf16, channels-last, fused kernels, resident data), same preset, batch size, data and optimizer settings.
Beside images/s: peak GPU memory and the fraction of the GPU's dense bf16 peak, from a FLOP count of the step.
The epoch: the reference's DataLoader decodes every JPEG in every epoch; fastacgan's loader is made once (on a
GPU: the whole set decoded into GPU memory, its time reported as one_time_setup_s) and each epoch timed after."""

import functools
import itertools
import tarfile
import time

import pytest
import torch
from conftest import CIFAR, DEVICE, FULL, sync
from reference import ReferenceACGAN, reference_loader
from torch.utils.flop_counter import FlopCounterMode

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.data import open_catalog
from fastacgan.loaders import make_loader, to_model_input
from fastacgan.step import ACGANStep, set_cuda_flags
from fastacgan.workers import default_workers

PRESETS = ["cifar10", "isic64", "isic128"] if FULL else ["cifar10"]
BATCHES = [64, 256, 1024] if FULL else [16]
WIDTH = 1.0 if FULL else 0.25
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}  # dense TFLOP/s, datasheets
SHARED = CIFAR / "train.tar.gz"


def peak_flops():
    if DEVICE.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def make_runner(provider, spec):
    torch.manual_seed(0)
    if provider == "reference":
        ref = ReferenceACGAN(spec, DEVICE)
        return lambda x_u8, y: ref.step(to_model_input(x_u8, channels_last=False), y)
    if DEVICE.type == "cuda":  # what a training run sets (the reference sets cudnn.benchmark too)
        set_cuda_flags()
    gan = ACGANStep(spec, DEVICE, amp_dtype=torch.bfloat16 if FULL else None, channels_last=FULL, compile=FULL,
                    fused_kernels=True, graph_step=provider == "fastacgan_graph")  # fmt: skip
    return gan  # takes the loader's uint8 batch, converted inside the step (as the trainer gives it)


@functools.cache  # one count per (spec, batch, implementation): each runs a whole eager fp32 step
def step_flops(spec, batch, impl):
    """FLOPs of one AC-GAN step as `impl` ("reference" or "fastacgan") runs it, counted by PyTorch (convolutions
    and matrix products). The reference's count is the work itself; fastacgan does the same maths with fewer
    (G's upsample convolutions as transposed convolutions of the small map, no D weight gradients in the G step)."""
    x = torch.randint(0, 256, (batch, spec.image_size, spec.image_size, spec.channels), dtype=torch.uint8,
                      device=DEVICE)  # fmt: skip
    y = torch.randint(0, spec.num_classes, (batch,), device=DEVICE)
    if impl == "reference":
        ref = ReferenceACGAN(spec, DEVICE)
        run = lambda: ref.step(to_model_input(x, False), y)  # noqa: E731
    else:  # eager fp32 (the fused kernels' few FLOPs are not counted either way)
        gan = ACGANStep(spec, DEVICE, fused_kernels=False)
        run = lambda: gan(x, y)  # noqa: E731
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


# fastacgan_graph: the same with --graph-step (the whole step captured in one CUDA graph; CUDA only)
STEP_PROVIDERS = ["reference", "fastacgan"] + (["fastacgan_graph"] if FULL else [])


@pytest.mark.parametrize("provider", STEP_PROVIDERS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("preset", PRESETS)
def test_training_step(run_bench, benchmark, preset, batch, provider):
    benchmark.group = f"step {preset} x{WIDTH:g} batch {batch}"
    spec = resolve_spec(TrainConfig(width=WIDTH), preset, 3, 10)
    step = make_runner(provider, spec)
    x = torch.randint(0, 256, (batch, spec.image_size, spec.image_size, 3), dtype=torch.uint8, device=DEVICE)
    y = torch.randint(0, 10, (batch,), device=DEVICE)

    def run():
        step(x, y)
        sync()

    for _ in range(3):  # compilation and CUDA-graph capture
        run()
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run_bench(run, work=batch, unit="images/s")
    if benchmark.stats is None:  # --benchmark-disable: the step ran, nothing was timed
        return
    if DEVICE.type == "cuda":  # before the FLOP counts, whose eager fp32 steps would add their own peak
        benchmark.extra_info["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    flops = step_flops(spec, batch, "reference" if provider == "reference" else "fastacgan")
    work = step_flops(spec, batch, "reference")
    median = benchmark.stats.stats.median
    benchmark.extra_info["tflops"] = flops / median / 1e12  # executed
    benchmark.extra_info["work_tflops"] = work / median / 1e12  # the reference's FLOPs for the same step
    peak = peak_flops()
    if peak:
        benchmark.extra_info["fraction_of_bf16_peak"] = flops / median / peak
    if DEVICE.type == "cuda":
        # the host's share: how long the step takes to return without waiting for the GPU (median of 20). Near
        # the step's time, the step is host-bound (launch costs); far below it, the GPU is the limit
        host = []
        for _ in range(20):
            sync()
            t0 = time.perf_counter()
            step(x, y)
            host.append(time.perf_counter() - t0)
        sync()
        benchmark.extra_info["host_ms"] = 1e3 * sorted(host)[len(host) // 2]


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory):
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not found")
    root = tmp_path_factory.mktemp("cifar-train")
    limit = None if FULL else 256
    with tarfile.open(SHARED, "r:gz") as tf:
        members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")][:limit]
        tf.extractall(root, members=members, filter="data")
    return next(p for p in root.rglob("*") if p.is_dir() and p.name == "train")


@pytest.mark.parametrize("provider", STEP_PROVIDERS)
def test_cifar10_epoch_with_data_loading(run_bench, benchmark, cifar_folder, provider):
    benchmark.group = f"cifar10 epoch from JPEG x{WIDTH:g}"
    spec = resolve_spec(TrainConfig(width=WIDTH), "cifar10", 3, 10)
    batch = 256 if FULL else 16
    workers = default_workers(-1)
    if provider == "reference":
        torch.manual_seed(0)
        ref = ReferenceACGAN(spec, DEVICE)
        loader = reference_loader(str(cifar_folder), 32, batch, workers)

        def epoch():
            n = 0
            for x, y in loader:
                ref.step(x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True))
                n += len(y)
            sync()
            return n
    else:
        step = make_runner(provider, spec)
        # the loader fastacgan picks (auto: the resident set on a GPU) is made once, as in a training run: its
        # one-time decode of every JPEG is reported beside the epoch (the reference decodes in every epoch)
        t0 = time.perf_counter()
        loader = make_loader(open_catalog(str(cifar_folder)), 32, 3, batch, 0, DEVICE, False, workers, "skip", 4.0,
                             "auto", log=lambda m: None)  # fmt: skip
        sync()
        benchmark.extra_info["one_time_setup_s"] = time.perf_counter() - t0
        epochs = itertools.count()

        def epoch():
            n = 0
            for x, y in loader.epoch(next(epochs)):
                step(x, y)
                n += len(y)
            sync()
            return n

    n = run_bench(epoch, work=(len(list(cifar_folder.rglob("*.jpg"))) // batch) * batch, unit="images/s", rounds=2)
    assert n > 0
