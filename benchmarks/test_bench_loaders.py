"""Images/s delivered to the training device by each loader, one epoch per round: the PyTorch DataLoader with
PIL decoding (the reference, one worker per core), DALI on the CPU, DALI with the GPU ("mixed") decoder, and
the resident set. On the CIFAR-10 JPEGs in ../shared/data and on 128x128 JPEGs made from them. And an epoch
streamed through DALI with a training step on every batch, the batches made ahead of the step or not."""

import io
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import CIFAR, DEVICE, FULL, sync
from PIL import Image

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.dali_pipeline import DaliLoader, dali_available
from fastacgan.data import open_catalog
from fastacgan.decode import decode_all
from fastacgan.loaders import MemoryLoader, StreamLoader
from fastacgan.step import ACGANStep, set_cuda_flags
from fastacgan.workers import default_workers

SHARED = CIFAR / "train.tar.gz"
COUNT = 50_000 if FULL else 512
WORKERS = default_workers(-1)
BATCH = 256 if FULL else 64


@pytest.fixture(scope="session")
def jpeg_sets(tmp_path_factory):
    """{"cifar32": folder of COUNT CIFAR-10 JPEGs, "big128": the first COUNT // 4 upscaled to 128x128}."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not found")
    root = tmp_path_factory.mktemp("jpegs")
    n = 0
    with tarfile.open(SHARED, "r:gz") as tf:
        for m in tf:
            if m.isfile() and m.name.endswith(".jpg") and n < COUNT:
                cls, name = Path(m.name).parts[-2:]
                data = tf.extractfile(m).read()
                for sub, blob in (("cifar32", data), ("big128", _upscale(data) if n < COUNT // 4 else None)):
                    if blob is not None:
                        (root / sub / cls).mkdir(parents=True, exist_ok=True)
                        (root / sub / cls / name).write_bytes(blob)
                n += 1
    return {k: root / k for k in ("cifar32", "big128")}


def _upscale(data: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).resize((128, 128), Image.BICUBIC).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


PROVIDERS = ["torch_pil", "dali_cpu", "dali_gpu", "resident"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dataset,size", [("cifar32", 32), ("big128", 128)])
def test_loader_epoch(run_bench, benchmark, jpeg_sets, dataset, size, provider):
    benchmark.group = f"loader {dataset}"
    if provider.startswith("dali") and not dali_available():
        pytest.skip("DALI is not installed")
    if provider == "dali_gpu" and DEVICE.type != "cuda":
        pytest.skip("needs CUDA")
    cat = open_catalog(str(jpeg_sets[dataset]))
    if provider == "torch_pil":
        loader = StreamLoader(cat, size, 3, BATCH, 0, DEVICE, True, WORKERS, "skip")
    elif provider == "resident":
        images, labels = decode_all(cat, size, 3, WORKERS, log=lambda m: None)
        loader = MemoryLoader(images, labels, BATCH, 0, DEVICE, True)
    else:
        dev = DEVICE if provider == "dali_gpu" else torch.device("cpu")
        loader = DaliLoader(cat, size, 3, BATCH, 0, dev, True, WORKERS, "skip")

    def epoch():
        n = 0
        for x, _ in loader.epoch(0):
            x = x.to(DEVICE, non_blocking=True)
            n += len(x)
        sync()
        return n

    n = run_bench(epoch, work=loader.steps_per_epoch * BATCH, unit="images/s", rounds=3)
    assert n == loader.steps_per_epoch * BATCH


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_streamed_epoch_with_training(run_bench, benchmark, jpeg_sets, read_ahead):
    """One epoch of the 128x128 JPEGs streamed through DALI (what a set too large to keep resident gets: ISIC,
    ImageNet) into fastacgan's isic64 step (the fast path on a GPU): each batch made in the step's thread
    (read_ahead 0) or made ahead of the step in a thread of its own (2, the default on a GPU)."""
    if not dali_available():
        pytest.skip("DALI is not installed")
    benchmark.group = "streamed epoch isic64 (DALI)"
    spec = resolve_spec(TrainConfig(width=1.0 if FULL else 0.125), "isic64", 3, 10)
    torch.manual_seed(0)
    if DEVICE.type == "cuda":  # what a training run sets
        set_cuda_flags()
    step = ACGANStep(spec, DEVICE, amp_dtype=torch.bfloat16 if FULL else None, channels_last=FULL, compile=FULL)
    loader = DaliLoader(open_catalog(str(jpeg_sets["big128"])), spec.image_size, 3, BATCH, 0, DEVICE, True, WORKERS,
                        "skip", read_ahead=read_ahead)  # fmt: skip

    def epoch():
        n = 0
        for x, y in loader.epoch(0):
            step(x, y)
            n += len(y)
        sync()
        return n

    n = run_bench(epoch, work=loader.steps_per_epoch * BATCH, unit="images/s", rounds=3)
    assert n == loader.steps_per_epoch * BATCH
