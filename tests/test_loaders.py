"""The loaders (resident, DALI on the CPU, PyTorch/PIL) serve the same images in the same order."""

import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import float_grey, make_awkward_folder, make_folder
from PIL import Image

from fastacgan.dali_pipeline import DaliLoader, dali_available, looks_truncated
from fastacgan.data import DataError, open_catalog, pil_reads
from fastacgan.decode import decode_all
from fastacgan.loaders import (
    MemoryLoader,
    StreamLoader,
    choose_loader,
    epoch_indices,
    make_loader,
    read_ahead,
    resident_decoder,
)
from fastacgan.train import main

# ../shared/data beside the checkout, or $FASTACGAN_DATA (where a GPU machine is given a copy)
DATA = os.environ.get("FASTACGAN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED = Path(DATA) / "cifar10-jpeg" / "test.tar.gz"
needs_dali = pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not installed")
CPU = torch.device("cpu")
# DALI's CPU pipeline everywhere; its GPU one (the `mixed` decoder, output on the device) where there is CUDA
DALI_DEVICES = [CPU, pytest.param(torch.device("cuda"), marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                                reason="needs CUDA"))]  # fmt: skip


@pytest.fixture(scope="module")
def cifar_slice(tmp_path_factory):
    """60 real CIFAR-10 JPEGs (3 classes x 20) from the shared data, as an image folder."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not found")
    root = tmp_path_factory.mktemp("cifar")
    wanted = {"airplane": 0, "cat": 0, "ship": 0}
    with tarfile.open(SHARED, "r:gz") as tf:
        for m in tf:
            parts = Path(m.name).parts
            if m.isfile() and len(parts) >= 2 and parts[-2] in wanted and wanted[parts[-2]] < 20:
                wanted[parts[-2]] += 1
                (root / parts[-2]).mkdir(exist_ok=True)
                (root / parts[-2] / parts[-1]).write_bytes(tf.extractfile(m).read())
            if all(v == 20 for v in wanted.values()):
                break
    return root


def collect(loader, epoch=0):
    xs, ys = zip(*loader.epoch(epoch))
    x = torch.cat(xs).cpu()
    assert x.dtype == torch.uint8  # every loader serves uint8 [B, H, W, C]
    return x.float(), torch.cat(ys).cpu()


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
@pytest.mark.parametrize("size,max_mad", [(32, 2.0), (24, 6.0)])
def test_dali_matches_pil(cifar_slice, size, max_mad, device):
    cat = open_catalog(str(cifar_slice))
    pil = StreamLoader(cat, size, 3, 10, seed=4, device=CPU, hflip=True, workers=0, policy="error")
    dali = DaliLoader(cat, size, 3, 10, seed=4, device=device, hflip=True, workers=2, policy="error")
    assert next(iter(dali.epoch(0)))[0].device.type == device.type
    (xp, yp), (xd, yd) = collect(pil), collect(dali)
    assert torch.equal(yp, yd) and xp.shape == xd.shape == (60, size, size, 3)
    mad = (xp - xd).abs().mean().item()
    # native size: only the JPEG decoders differ (< 2/255); resized: the resampling filters differ too
    print(f"DALI vs PIL at {size}x{size}: mean absolute difference {mad:.3f}/255")
    assert mad < max_mad, f"mean absolute difference {mad:.2f}/255"


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
@pytest.mark.parametrize("size", [48, 32])
def test_dali_and_pil_agree_on_exif_turns_and_16_bit_greyscale(tmp_path, device, size):
    """The files decoders are known to treat differently: JPEGs with each EXIF orientation (DALI turns them
    upright by default) and 16-bit greyscale PNGs (DALI scales them to 8 bits). PIL's path does the same, so the
    resident set (decoded by PIL on a CPU, by DALI on a GPU) and every loader show a run the same images."""
    cat = open_catalog(str(make_awkward_folder(tmp_path / "awkward")))
    pil = StreamLoader(cat, size, 3, 8, seed=1, device=CPU, hflip=False, workers=0, policy="error")
    dali = DaliLoader(cat, size, 3, 8, seed=1, device=device, hflip=False, workers=1, policy="error")
    (xp, yp), (xd, yd) = collect(pil), collect(dali)
    assert torch.equal(yp, yd) and xp.shape == xd.shape == (16, size, size, 3)
    per_image = (xp - xd).abs().flatten(1).mean(1)
    # a wrong turn moves the red block (~130 levels on a sixth of the image), unscaled 16 bits turn white (~127)
    assert per_image.max() < 4.0, per_image.tolist()
    assert (xp[yp == 0].mean((1, 2, 3)) - xp[yp == 0].mean()).abs().max() < 3  # every 16-bit ramp mid-grey


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
def test_dali_and_pil_crop_the_same_pixels(tmp_path, device):
    """The centre crop of an image wider or taller than square: with an odd margin the half pixel goes the same
    way in both (DALI rounds it up), so lossless images at the model's height or width come out bit for bit equal."""
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 11):
        for name, shape in ((f"wide{m}", (16, 16 + m, 3)), (f"tall{m}", (16 + m, 16, 3))):
            (tmp_path / "c" / name).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / "c" / name / "x.png")
    cat = open_catalog(str(tmp_path / "c"))
    pil = StreamLoader(cat, 16, 3, 8, seed=0, device=CPU, hflip=False, workers=0, policy="error")
    dali = DaliLoader(cat, 16, 3, 8, seed=0, device=device, hflip=False, workers=1, policy="error")
    (xp, yp), (xd, yd) = collect(pil), collect(dali)
    assert torch.equal(yp, yd) and torch.equal(xp, xd)


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
def test_dali_and_pil_read_float_images_alike(tmp_path, device):
    """32-bit float greyscale TIFFs: DALI reads them as [0, 1] (round(v * 255), clipped) and so does PIL's path,
    bit for bit at their own size, the rounding boundaries included; out-of-range values clip the same way."""
    for k in range(4):
        (tmp_path / "f" / f"c{k}").mkdir(parents=True)
        v = float_grey(16, 16 + 2 * k, seed=k)
        Image.fromarray(v if k < 2 else v * 1.4 - 0.2, "F").save(tmp_path / "f" / f"c{k}" / "x.tif")
    cat = open_catalog(str(tmp_path / "f"))
    pil = StreamLoader(cat, 16, 1, 4, seed=0, device=CPU, hflip=False, workers=0, policy="error")
    dali = DaliLoader(cat, 16, 1, 4, seed=0, device=device, hflip=False, workers=1, policy="error")
    (xp, yp), (xd, yd) = collect(pil), collect(dali)
    assert torch.equal(yp, yd) and torch.equal(xp, xd.cpu())
    assert xp[yp == 0].float().mean() > 100 and not dali.host  # mid-grey on average, and decoded by DALI itself


def _gif_folder(root, kind="gif"):
    """16x16 images, half of them GIFs (or AVIFs: DALI decodes neither), half PNGs, in two classes."""
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            ext = (kind, "png")[i % 2]
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / c / f"{i}.{ext}")
    return root


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
@pytest.mark.parametrize("how", ["gif", "found", "avif"])
def test_dali_hands_files_it_cannot_decode_to_pil(tmp_path, device, how, monkeypatch):
    """GIFs (DALI has no GIF decoder) among DALI's files: PIL decodes them in their places in the batch, flipped as
    the rest, and the batches are those of the PIL loader bit for bit (lossless files at their own size). `found`:
    a format DALI refuses that the loader does not know beforehand: found file by file when the batch fails. AVIFs
    (read where Pillow reads them; DALI's decoder fails on them) the same way as GIFs."""
    import fastacgan.dali_pipeline as dp

    kind = "avif" if how == "avif" else "gif"
    if kind == "avif" and not pil_reads("avif"):
        pytest.skip("this Pillow reads no AVIF (11.3 and newer do)")
    if how == "found":
        monkeypatch.setattr(dp, "dali_cannot_decode", lambda blob: None)
    cat = open_catalog(str(_gif_folder(tmp_path / "g", kind)))
    pil = StreamLoader(cat, 16, 3, 4, seed=2, device=CPU, hflip=True, workers=0, policy="error")
    dali = DaliLoader(cat, 16, 3, 4, seed=2, device=device, hflip=True, workers=1, policy="error")
    why = {"gif": "GIF: DALI has no GIF decoder", "found": "DALI refused it", "avif": "AVIF: DALI has no AVIF decoder"}
    with pytest.warns(
        UserWarning, match=rf"\.{kind} and any like it are decoded with PIL on the host \({why[how]}\)"
    ) as caught:
        (xd, yd) = collect(dali)
    assert sum("decoded with PIL on the host" in str(w.message) for w in caught) == 1  # said once
    (xp, yp) = collect(pil)
    assert torch.equal(yp, yd) and torch.equal(xp, xd)
    gifs = {i for i, n in enumerate(cat.names) if n.endswith(f".{kind}")}
    assert dali.host == (gifs if how == "found" else set())  # known GIFs are never sent to DALI
    images, labels = dali.decode_all(log=lambda m: None)  # the resident set, as decoded on a GPU
    ref, ref_labels = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    assert torch.equal(images.cpu(), ref) and torch.equal(labels.cpu(), ref_labels)


@needs_dali
@pytest.mark.filterwarnings("ignore:.*decoded with PIL on the host")  # (the other test's business)
def test_dali_rejects_a_bad_gif_by_name(tmp_path):
    folder = _gif_folder(tmp_path / "g")
    (folder / "a" / "2.gif").write_bytes((folder / "a" / "2.gif").read_bytes()[:40])  # cut short
    cat = open_catalog(str(folder))
    with pytest.raises(DataError, match=r"2.gif: cannot decode.*--bad-images skip"):
        collect(DaliLoader(cat, 16, 3, 4, 0, CPU, False, 1, "error"))
    with pytest.warns(UserWarning, match=r"skipped .*2.gif: cannot decode"):
        x, _ = collect(DaliLoader(cat, 16, 3, 4, 0, CPU, False, 1, "skip"))
    assert len(x) == 12 and len(cat.skipped) == 1  # 3 batches of 4, one filled back


@needs_dali
def test_dali_failing_only_on_whole_batches_says_so(tmp_path, monkeypatch):
    cat = open_catalog(str(make_folder(tmp_path / "f", ext=".png", n_per_class=4)))
    dali = DaliLoader(cat, 16, 3, 4, seed=0, device=CPU, hflip=False, workers=1, policy="error")
    real_run = dali._run

    def run(blobs, flips):
        if len(blobs) > 1:
            raise RuntimeError("Critical error in pipeline: (a test)")
        return real_run(blobs, flips)

    monkeypatch.setattr(dali, "_run", run)
    whole = r"DALI failed on a batch that PIL decodes \(.*_00\d.png, .* \.\.\.\) and on none of its files alone: "
    with pytest.raises(DataError, match=whole + r".*a test.*--loader torch decodes with PIL"):
        collect(dali)


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
def test_dali_greyscale_and_resident_decode(tmp_path, device):
    folder = make_folder(tmp_path / "g", grey=True, ext=".jpg", size=(20, 20))
    cat = open_catalog(str(folder))
    dali = DaliLoader(cat, 16, 1, 8, seed=0, device=device, hflip=False, workers=1, policy="error")
    images, labels = dali.decode_all(log=lambda m: None)
    images, labels = images.cpu(), labels.cpu()
    ref, ref_labels = decode_all(cat, 16, 1, workers=0, log=lambda m: None)
    assert images.shape == ref.shape == (24, 16, 16, 1) and torch.equal(labels, ref_labels)
    assert (images.float() - ref.float()).abs().mean() < 3.0


@needs_dali
def test_dali_reports_bad_files_by_name(tmp_path):
    folder = make_folder(tmp_path / "b", ext=".jpg", n_per_class=4)
    victim = folder / "square" / "square_001.jpg"
    victim.write_bytes(victim.read_bytes()[:-200])  # truncated
    (folder / "circle" / "circle_009.jpg").write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    cat = open_catalog(str(folder))
    with pytest.raises(DataError, match=r"(square_001|circle_009).jpg: cannot decode"):
        collect(DaliLoader(cat, 16, 3, 13, 0, CPU, False, 1, "error"))
    with pytest.warns(UserWarning, match="skipped"):
        x, y = collect(DaliLoader(cat, 16, 3, 13, 0, CPU, False, 1, "skip"))
    # 13 in the batch, less the two bad files, filled back to 13 by repeating the first two readable ones
    assert len(x) == 13 and len(cat.skipped) == 2
    assert torch.equal(x[11:], x[:2]) and torch.equal(y[11:], y[:2])
    # a file gone since it was listed is named and skipped like an undecodable one
    (folder / "stripes" / "stripes_000.jpg").unlink()
    with pytest.warns(UserWarning, match="stripes_000.jpg: cannot read \\(FileNotFoundError"):
        x, _ = collect(DaliLoader(cat, 16, 3, 13, 0, CPU, False, 1, "skip"))
    assert len(x) == 13 and sum("stripes_000.jpg: cannot read" in m for m in cat.skipped) == 1
    assert any("square_001.jpg" in s for s in cat.skipped) and any("circle_009.jpg" in s for s in cat.skipped)


@needs_dali
@pytest.mark.parametrize("device", DALI_DEVICES)
@pytest.mark.parametrize("after", [0, 3])
def test_dali_reads_ahead_the_batches_it_would_make_in_the_callers_thread(cifar_slice, device, after, monkeypatch):
    """The epoch's batches made in a thread of their own, ahead of the consumer: the same batches, bit for bit and
    in order, as made in the caller's thread; also from a step part-way through the epoch (a resume). The loader's
    first READ_AHEAD_AFTER batches (the steps that capture CUDA graphs) are made in the caller's thread."""
    import threading

    import fastacgan.dali_pipeline as dp

    monkeypatch.setattr(dp, "READ_AHEAD_AFTER", after)
    made_in = []
    batch = DaliLoader._batch
    monkeypatch.setattr(DaliLoader, "_batch", lambda self, *a: made_in.append(threading.current_thread().name)
                        or batch(self, *a))  # fmt: skip
    cat = open_catalog(str(cifar_slice))
    ahead, inline = (DaliLoader(cat, 24, 3, 8, seed=2, device=device, hflip=True, workers=2, policy="error",
                                read_ahead=depth) for depth in (2, 0))  # fmt: skip
    for start in (0, 3):
        made_in.clear()
        got = list(ahead.epoch(1, start))
        if start == 0:  # the loader's first batches
            assert made_in == ["MainThread"] * after + ["fastacgan-read-ahead"] * (len(got) - after)
        else:
            assert set(made_in) == {"fastacgan-read-ahead"}
        want = list(inline.epoch(1, start))
        assert len(got) == len(want) == ahead.steps_per_epoch - start
        for (xa, ya), (xb, yb) in zip(got, want):
            assert xa.dtype == torch.uint8 and xa.shape == (8, 24, 24, 3) and xa.device.type == device.type
            assert torch.equal(xa.cpu(), xb.cpu()) and torch.equal(ya.cpu(), yb.cpu())


def test_read_ahead_keeps_order_hands_on_errors_and_stops_when_left():
    import threading
    import time

    made = []

    def batches(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise DataError(f"image {i}: cannot decode")
            made.append(i)
            yield torch.full((2,), i), torch.tensor([i])

    assert [int(y) for _, y in read_ahead(batches(7), 2, CPU)] == list(range(7))
    # an error comes out after the batches before it, with its own message
    got = []
    with pytest.raises(DataError, match="image 3: cannot decode"):
        for _, y in read_ahead(batches(6, fail_at=3), 2, CPU):
            got.append(int(y))
    assert got == [0, 1, 2]
    # left after the first batch: the thread stops, at most `depth` (+1 in hand) batches ahead, and is gone
    made.clear()
    it = read_ahead(batches(1000), 2, CPU)
    next(it)
    time.sleep(0.2)
    it.close()
    assert len(made) <= 4
    assert not any(t.name == "fastacgan-read-ahead" for t in threading.enumerate())
    assert [int(y) for _, y in read_ahead(batches(3), 0, CPU)] == [0, 1, 2]  # depth 0: in the caller's thread


def test_truncation_check():
    assert looks_truncated(np.frombuffer(b"\xff\xd8\xff\xe0 data", np.uint8))
    assert not looks_truncated(np.frombuffer(b"\xff\xd8\xff\xe0 data \xff\xd9", np.uint8))
    assert looks_truncated(np.frombuffer(b"\x89PNG\r\n\x1a\n data", np.uint8))
    assert not looks_truncated(np.frombuffer(b"\x89PNG\r\n\x1a\n dataIEND\xaeB`\x82", np.uint8))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_and_cover_the_set(world):
    n = 101
    for epoch in range(3):
        parts = [epoch_indices(n, 7, epoch, (r, world))[0] for r in range(world)]
        allidx = torch.cat(parts)
        assert len(set(allidx.tolist())) == len(allidx) == world * (n // world)  # disjoint, equal lengths
    seen = set()
    for epoch in range(20):
        for r in range(world):
            seen |= set(epoch_indices(n, 7, epoch, (r, world))[0].tolist())
    assert seen == set(range(n))  # the few dropped by equal-length shards differ from epoch to epoch


def test_sharded_batches_make_up_the_global_batch(image_folder):
    cat = open_catalog(str(image_folder))
    x, y = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    whole = list(MemoryLoader(x, y, 8, 3, CPU, True).epoch(1))
    ranks = [list(MemoryLoader(x, y, 4, 3, CPU, True, shard=(r, 2)).epoch(1)) for r in range(2)]
    assert len(whole) == len(ranks[0]) == len(ranks[1]) == 3
    for s in range(3):
        union = torch.cat([ranks[0][s][0], ranks[1][s][0]])
        key = lambda t: sorted(tuple(r.flatten().tolist()) for r in t)  # noqa: E731
        assert key(union) == key(whole[s][0])


def test_a_batch_larger_than_the_data_names_the_largest_that_fits():
    """Six images and the default --batch-size 64: the error names the --batch-size that fits (it said only that
    64 was too large), per process where there are several."""
    x, y = torch.zeros(6, 4, 4, 3, dtype=torch.uint8), torch.arange(6) % 3
    with pytest.raises(DataError) as e:
        MemoryLoader(x, y, 64, 0, CPU, False)
    assert str(e.value) == "--batch-size 64 is larger than the data set (6 images): give --batch-size 6 or less, or " \
                           "more images"  # fmt: skip
    with pytest.raises(DataError) as e:
        MemoryLoader(x, y, 4, 0, CPU, False, shard=(1, 2))
    assert str(e.value) == "--batch-size 4 is larger than the data set (3 images per process): give --batch-size 3 " \
                           "or less, or more images"  # fmt: skip
    assert len(list(MemoryLoader(x, y, 3, 0, CPU, False, shard=(1, 2)).epoch(1))) == 1


def test_resident_batches_are_the_data_set(image_folder):
    cat = open_catalog(str(image_folder))
    x, y = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    loader = MemoryLoader(x, y, 6, 5, CPU, False)
    idx, _ = epoch_indices(len(y), 5, 0)
    for s, (xb, yb) in enumerate(loader.epoch(0)):
        assert torch.equal(xb, x[idx[s * 6 : (s + 1) * 6]]) and torch.equal(yb, y[idx[s * 6 : (s + 1) * 6]])


@pytest.mark.parametrize("on_host", [False, True])
@pytest.mark.parametrize("start_step", [0, 2])
def test_resident_and_pil_serve_the_same_batches(image_folder, start_step, on_host):
    """Same images, labels, order and flips from the resident set and the PIL loader (PNGs: lossless), also when
    an epoch is resumed part-way (start_step), and from a resident set kept in host memory (host_kept)."""
    cat = open_catalog(str(image_folder))
    x, y = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    resident = list(MemoryLoader(x, y, 5, 9, CPU, True, on_host=on_host).epoch(3, start_step))
    pil = list(StreamLoader(cat, 16, 3, 5, 9, CPU, True, 0, "error").epoch(3, start_step))
    assert len(resident) == len(pil) == 24 // 5 - start_step
    for (xr, yr), (xp, yp) in zip(resident, pil):
        assert torch.equal(xr, xp) and torch.equal(yr, yp)
    # flips did happen (else this would not test them): some served images are their source mirrored
    idx, flips = epoch_indices(len(y), 9, 3)
    served = torch.cat([xb for xb, _ in resident])
    src = x[idx[start_step * 5 : start_step * 5 + len(served)]]
    mirrored = flips[start_step * 5 : start_step * 5 + len(served)]
    assert 0 < int(mirrored.sum()) < len(served)
    assert torch.equal(served, torch.where(mirrored[:, None, None, None], src.flip(2), src))


def test_a_set_in_memory_over_half_the_gpus_free_memory_stays_on_the_host(monkeypatch):
    """A set already decoded in memory (CIFAR batches, SVHN, the Downsampled ImageNet) went to the GPU whole, however
    large: the 64x64 Downsampled ImageNet's half, 7.9 GB, took the memory that training needs on a smaller GPU.
    Over half the GPU's free memory it stays in host memory, and each batch is gathered there and copied."""
    import fastacgan.loaders as loaders_mod
    from fastacgan.loaders import host_kept

    gpu, gib = torch.device("cuda", 0), 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * gib, 16 * gib))
    assert host_kept(4 * gib, gpu) is None and host_kept(10**12, CPU) is None  # a CPU's set is in host memory
    assert host_kept(5 * gib, gpu) == "5.00 GiB exceeds half the GPU's free memory (4.00 GiB): kept in host memory"
    made = []
    monkeypatch.setattr(loaders_mod, "MemoryLoader", lambda *a: made.append(a))
    cat = open_catalog("builtin:digits:200", image_size=16)  # 200 images of 16 x 16 x 1: 50 KiB
    lines = []
    for free, on_host in [(2 * gib, False), (64 * 2**10, True)]:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 16 * gib))
        make_loader(cat, 16, 1, 4, 0, gpu, False, 0, "skip", 4.0, log=lines.append)
        assert made[-1][-1] is on_host
    assert lines[0].startswith("loader: resident (keep uint8 on cuda:0): the images are in memory already decoded")
    assert lines[1].startswith("loader: resident (keep uint8 on the host, copy each batch to cuda:0): the images are")
    assert lines[1].endswith("; 50 KiB exceeds half the GPU's free memory (32 KiB): kept in host memory")


def test_choose_loader(image_folder):
    cat = open_catalog(str(image_folder))
    assert choose_loader("auto", cat, 16, 3, 4.0, CPU, True)[0] == "resident"
    name, why = choose_loader("auto", cat, 16, 3, 0.0, CPU, True)
    assert name == "torch" and "on a CPU, PIL workers" in why  # DALI streams on a GPU only (below)
    name, why = choose_loader("auto", cat, 16, 3, 0.0, CPU, False)
    assert name == "torch" and "DALI is not installed" in why
    assert choose_loader("torch", cat, 16, 3, 4.0, CPU, True)[0] == "torch"
    with pytest.raises(DataError, match="--loader dali: NVIDIA DALI is not installed"):
        choose_loader("dali", cat, 16, 3, 4.0, CPU, False)
    builtin = open_catalog("builtin:digits:100", image_size=16)
    assert choose_loader("torch", builtin, 16, 1, 4.0, CPU, True)[0] == "resident"
    # on a GPU: resident while half the free memory holds the set, then DALI when installed, else PIL
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 2**30, 80 * 2**30))
        gpu = torch.device("cuda", 0)
        assert choose_loader("auto", cat, 16, 3, 4.0, gpu, True)[0] == "resident"
        name, why = choose_loader("auto", cat, 16, 3, 0.0, gpu, True)
        assert name == "dali" and "decoding on the GPU" in why
        assert choose_loader("auto", cat, 16, 3, 0.0, gpu, False)[0] == "torch"
        assert resident_decoder(cat, gpu, True) == "DALI" and resident_decoder(cat, CPU, True) == "PIL"
        # a set of GIFs or AVIFs, which DALI has no decoder for (it handed them to PIL one by one, in its thread):
        # streamed and decoded by the PIL workers; more than half of them decides
        for k in range(len(cat) // 2 + 1):
            cat.names[k] = cat.names[k].rsplit(".", 1)[0] + (".gif", ".AVIF")[k % 2]
        name, why = choose_loader("auto", cat, 16, 3, 0.0, gpu, True)
        assert name == "torch" and why.endswith("most images are GIFs or AVIFs, which DALI has no decoder for: PIL "
                                                "workers decode them")  # fmt: skip
        assert (
            resident_decoder(cat, gpu, True) == "PIL" and choose_loader("dali", cat, 16, 3, 0.0, gpu, True)[0] == "dali"
        )
        cat.names[0] = cat.names[0].rsplit(".", 1)[0] + ".png"  # half of them only
        assert (
            choose_loader("auto", cat, 16, 3, 0.0, gpu, True)[0] == "dali"
            and resident_decoder(cat, gpu, True) == "DALI"
        )


@needs_dali
def test_dali_that_cannot_run_here_falls_back_or_says_why(image_folder, monkeypatch):
    """A DALI build that cannot run on the device (nvidia-dali-cuda130 under a driver for CUDA 12): auto streams
    with the PIL workers instead and says why; --loader dali stops with the reason and what to use."""
    import fastacgan.loaders as loaders_mod

    def broken(self):
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version\nmore detail")

    monkeypatch.setattr(DaliLoader, "_build", broken)
    cat = open_catalog(str(image_folder))
    with pytest.raises(
        DataError,
        match=r"--loader dali: DALI cannot run on cpu \(RuntimeError: CUDA driver "
        r"version is insufficient for CUDA runtime version\); use --loader torch",
    ):
        make_loader(cat, 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "dali", log=lambda m: None)
    # auto picks DALI to stream on a GPU; here the choice is made so on the CPU
    monkeypatch.setattr(loaders_mod, "choose_loader", lambda *a: ("dali", "too large to keep (test)"))
    lines = []
    loader = make_loader(cat, 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "auto", log=lines.append)
    assert isinstance(loader, StreamLoader)
    assert "DALI cannot run on cpu (RuntimeError: CUDA driver version is insufficient" in lines[-1]
    assert "streaming with PIL in 0 worker processes instead" in lines[-1]
    assert next(iter(loader.epoch(0)))[0].shape == (4, 16, 16, 3)


@needs_dali
@pytest.mark.parametrize("trouble", [None, "build", "batches"])
def test_resident_set_decoded_by_dali_or_by_pil_when_dali_fails(image_folder, monkeypatch, trouble):
    """The resident set as a GPU decodes it, with DALI (here its CPU pipeline stands in for the GPU's): the PIL
    decode's images to a resampling filter's rounding. When DALI cannot run (`build`: a driver too old for the
    build) or fails on batches whose files are fine (`batches`), PIL decodes the set instead and the log says why."""
    import fastacgan.loaders as loaders_mod

    monkeypatch.setattr(loaders_mod, "resident_decoder", lambda *a: "DALI")
    if trouble == "build":
        monkeypatch.setattr(DaliLoader, "_build", lambda self: (_ for _ in ()).throw(RuntimeError("driver too old")))
    if trouble == "batches":
        monkeypatch.setattr(DaliLoader, "_run", lambda self, blobs, flips: (_ for _ in ()).throw(RuntimeError("no")))
    cat = open_catalog(str(image_folder))
    lines = []
    loader = make_loader(cat, 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "resident", log=lines.append)
    assert lines[0].startswith("loader: resident (decode once with DALI, keep uint8 on cpu)")
    fell_back = [m for m in lines if "DALI could not decode on cpu" in m]
    assert len(fell_back) == (trouble is not None)
    if trouble:
        assert (
            "RuntimeError: driver too old" if trouble == "build" else "and on each of its files alone too: no"
        ) in fell_back[0]
        assert fell_back[0].endswith("decoding with PIL instead")
    ref, ref_labels = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    assert torch.equal(loader.labels, ref_labels) and loader.images.shape == ref.shape
    diff = (loader.images.float() - ref.float()).abs()
    assert diff.max() == 0 if trouble else diff.mean() < 3  # PIL's own decode, or DALI's to rounding


def test_make_loader_prints_its_choice(image_folder):
    lines = []
    cat = open_catalog(str(image_folder))
    make_loader(cat, 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "torch", log=lines.append)
    assert lines[0].startswith("loader: torch (PIL in 0 worker processes): asked for with --loader")


@pytest.mark.parametrize("loader", ["resident", "torch", pytest.param("dali", marks=needs_dali),
                                    pytest.param("dali-read-ahead", marks=needs_dali)])  # fmt: skip
def test_short_training_run_with_each_loader(image_folder, tmp_path, loader, capsys, monkeypatch):
    if loader == "dali-read-ahead":  # as on a GPU: batches made ahead in a thread, left part-way through the epoch
        import threading

        import fastacgan.dali_pipeline as dp

        monkeypatch.setattr(dp, "READ_AHEAD_CPU", 2)
        monkeypatch.setattr(dp, "READ_AHEAD_AFTER", 1)
        made = []
        monkeypatch.setattr(dp, "read_ahead", lambda *a: made.append(a[1]) or read_ahead(*a))
    args = [
        "--data",
        str(image_folder),
        "--image-size",
        "16",
        "--width",
        "0.25",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--steps",
        "4",
        "--log-every",
        "2",
        "--loader",
        loader.removesuffix("-read-ahead"),
        "--out",
        str(tmp_path / loader),
    ]
    assert main(args) == 0
    assert f"loader: {loader.removesuffix('-read-ahead')}" in capsys.readouterr().out
    if loader == "dali-read-ahead":
        assert made and set(made) == {2} and not any(t.name == "fastacgan-read-ahead" for t in threading.enumerate())


def test_decode_cache_saves_loads_and_notices_a_changed_file(image_folder, tmp_path, monkeypatch):
    import fastacgan.loaders as loaders_mod

    cache = tmp_path / "cache"

    def resident(policy="skip", data=image_folder):
        lines = []
        loader = make_loader(open_catalog(str(data)), 16, 3, 4, 0, CPU, False, 0, policy, 4.0, "resident",
                             log=lines.append, decode_cache=str(cache))  # fmt: skip
        return loader, "\n".join(lines)

    first, log = resident()
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("shapes-16px-3c-") and "saved the decoded set" in log

    def no_decoding(*a, **k):
        raise AssertionError("decoded although the cache holds the set")

    with monkeypatch.context() as m:
        m.setattr(loaders_mod, "decode_all", no_decoding)
        again, log = resident()
    assert "loaded the decoded set from" in log and "24 images" in log
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)

    # a changed image file: a new decode, which replaces the file and sees the new pixels
    victim = sorted((image_folder / "circle").iterdir())[0]
    victim.write_bytes((image_folder / "square" / "square_000.png").read_bytes())
    changed, log = resident()
    assert "made from other files" in log and "saved the decoded set" in log
    assert list(cache.iterdir()) == files and not torch.equal(changed.images, first.images)

    # an unreadable cache file is rebuilt, not an error
    files[0].write_bytes(b"not a cache")
    rebuilt, log = resident()
    assert "unreadable" in log and torch.equal(rebuilt.images, changed.images)

    # the files skipped when the set was decoded are reported again on every load, under --bad-images
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.warns(UserWarning, match=victim.name):
        skipped, _ = resident()
    assert len(skipped.labels) == 23
    with pytest.warns(UserWarning, match=victim.name), monkeypatch.context() as m:
        m.setattr(loaders_mod, "decode_all", no_decoding)
        assert len(resident()[0].labels) == 23
    with pytest.raises(DataError, match=f"{victim.name}: cannot decode.*--bad-images skip"):
        resident("error")

    # an archive is keyed by the archive file; the built-in set and streaming loaders use no cache
    archive = tmp_path / "shapes.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(image_folder, arcname="shapes")
    resident(data=archive)
    assert "loaded the decoded set" in resident(data=archive)[1]
    lines = []
    make_loader(open_catalog("builtin:digits:100", image_size=16), 16, 1, 4, 0, CPU, False, 0, "skip", 4.0,
                log=lines.append, decode_cache=str(cache))  # fmt: skip
    make_loader(open_catalog(str(image_folder)), 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "torch",
                log=lines.append, decode_cache=str(cache))  # fmt: skip
    assert [ln.split(": not used")[1] for ln in lines if "--decode-cache" in ln] == [
        f" ({loaders_mod.IN_MEMORY})", " (the torch loader streams)"]  # fmt: skip
    assert len(list(cache.iterdir())) == 2  # the folder's and the archive's


def test_a_decode_cache_write_cut_short_leaves_no_partial_file(image_folder, tmp_path, monkeypatch):
    """A Ctrl-C while the decoded set is written (gigabytes: tens of seconds) left its temporary file, as large as
    the set; now it is removed and the Ctrl-C goes on. One that SIGKILL left (unchanged for over an hour) is removed
    by the next save of that file; one being written now by another run (recent) is left to it."""
    import fastacgan.decode as decode_mod

    cache = tmp_path / "cache"

    def resident():
        make_loader(open_catalog(str(image_folder)), 16, 3, 4, 0, CPU, False, 0, "skip", 4.0, "resident",
                    log=lambda *a: None, decode_cache=str(cache))  # fmt: skip

    def interrupted(obj, f, *a, **k):
        f.write(b"x" * 1000)  # part of the set is on disk
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(decode_mod.torch, "save", interrupted)
        with pytest.raises(KeyboardInterrupt):
            resident()
    assert list(cache.iterdir()) == []  # no temporary file, no cache file

    resident()
    (made,) = cache.iterdir()
    stale, live = (cache / f".{made.name}.{pid}.tmp" for pid in (111, 222))
    for p in (stale, live):
        p.write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    made.write_bytes(b"not a cache")  # so the next run decodes and saves again
    resident()
    assert sorted(p.name for p in cache.iterdir()) == sorted([made.name, live.name])


def test_training_runs_share_the_decode_cache(image_folder, tmp_path, capsys):
    args = ["--data", str(image_folder), "--image-size", "16", "--width", "0.25", "--batch-size", "8", "--device",
            "cpu", "--workers", "0", "--steps", "2", "--decode-cache", str(tmp_path / "cache")]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "saved the decoded set" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "a"), "--steps", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "loaded the decoded set" in out and "decoding images" not in out and "differ from the checkpoint" not in out


def test_streamed_batches_keep_their_size_when_images_are_bad(tmp_path):
    """A batch that loses unreadable files is filled back to --batch-size with its readable images (one shape for
    every step: no recompilation, no second CUDA graph; the epoch keeps its steps). A batch with none readable
    repeats the previous batch; if the first batch has none, the run stops naming the problem."""
    folder = make_folder(tmp_path / "b", n_per_class=4)  # 12 images
    cat = open_catalog(str(folder))
    order = epoch_indices(12, 0, 0)[0].tolist()
    first, second = order[:4], order[4:8]
    for i in first[1:3]:  # two bad files in the first batch of 4
        Path(cat.names[i]).write_bytes(b"junk")
    clean = StreamLoader(open_catalog(str(make_folder(tmp_path / "c", n_per_class=4))), 16, 3, 4, 0, CPU, False, 0,
                         "skip")  # fmt: skip
    with pytest.warns(UserWarning, match="skipped"):
        batches = list(StreamLoader(cat, 16, 3, 4, 0, CPU, False, 0, "skip").epoch(0))
    ref = list(clean.epoch(0))
    assert [len(x) for x, _ in batches] == [4, 4, 4]
    x0, y0 = batches[0]  # readable: positions 0 and 3, served as 0, 3, 0, 3
    assert torch.equal(x0, ref[0][0][[0, 3, 0, 3]]) and torch.equal(y0, ref[0][1][[0, 3, 0, 3]])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[1:], ref[1:]))

    for i in second:  # a whole batch unreadable: the previous batch again
        Path(cat.names[i]).write_bytes(b"junk")
    with pytest.warns(UserWarning, match="skipped"):
        batches = list(StreamLoader(cat, 16, 3, 4, 0, CPU, False, 0, "skip").epoch(0))
    assert len(batches) == 3 and torch.equal(batches[1][0], batches[0][0])
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(DataError, match="none of the 4 images of a batch"):
        list(StreamLoader(cat, 16, 3, 4, 0, CPU, False, 0, "skip").epoch(0, start_step=1))


@needs_dali
def test_read_ahead_script_reports_both_ways(image_folder):
    """benchmarks/read_ahead.py (the figures in the README's Data loading section) runs and reports each way twice."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "read_ahead.py"
    out = subprocess.run([sys.executable, str(script), str(image_folder), "16", "1", "--batch", "4"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert [ln.split("read_ahead ")[1].split(":")[0] for ln in lines] == ["0", "2", "0", "2"]
    assert all(float(ln.split(": ")[1].split()[0]) > 0 for ln in lines)


def test_decoding_workers_started_by_spawn_or_forkserver(image_folder, tmp_path, monkeypatch):
    """Where workers are not forked (macOS's spawn; Python 3.14 made forkserver Linux's default) the data set
    travels to them by pickle: every form's reader pickles and reads the same bytes, and a spawned worker decodes
    what the main process does. Before, a folder's reader was a lambda: "Can't pickle local object". On Linux the
    workers are forked whatever the default (a compressed archive's bytes are shared, not copied to each)."""
    import pickle
    import sys
    import zipfile

    import fastacgan.decode as decode_mod
    import fastacgan.loaders as loaders_mod

    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as zf:
        for p in sorted(image_folder.rglob("*.png")):
            zf.write(p, f"shapes/{p.relative_to(image_folder)}")
    for mode, name in (("w:gz", "shapes.tar.gz"), ("w", "shapes.tar")):
        with tarfile.open(tmp_path / name, mode) as tf:
            tf.add(image_folder, arcname="shapes")
    (tmp_path / "isic" / "Images").mkdir(parents=True)
    rows = []
    for p in sorted(image_folder.rglob("*.png")):
        (tmp_path / "isic" / "Images" / p.name).write_bytes(p.read_bytes())
        rows.append(f"{p.stem},{p.parent.name}\n")
    (tmp_path / "isic" / "labels.csv").write_text("image,label\n" + "".join(rows))
    forms = [str(image_folder), *(str(tmp_path / n) for n in ("shapes.zip", "shapes.tar.gz", "shapes.tar", "isic"))]
    for data in forms:
        for cat in (open_catalog(data), open_catalog(data, max_images=7, seed=1)):
            read = pickle.loads(pickle.dumps(cat.read))
            assert all(read(i) == cat.read(i) for i in range(len(cat))), data
    if sys.platform.startswith("linux"):
        assert decode_mod.worker_context(2) == "fork"
    assert decode_mod.worker_context(0) is None  # DataLoader refuses a context without workers
    cat = open_catalog(str(tmp_path / "shapes.tar.gz"), max_images=9, seed=2)
    want = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    for module in (decode_mod, loaders_mod):
        monkeypatch.setattr(module, "worker_context", lambda workers: "spawn" if workers else None)
    got = decode_all(cat, 16, 3, workers=1, log=lambda m: None)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    stream = StreamLoader(cat, 16, 3, 3, seed=0, device=torch.device("cpu"), hflip=False, workers=1, policy="error")
    x, y = collect(stream)
    assert x.shape == (9, 16, 16, 3) and sorted(y.tolist()) == sorted(want[1].tolist())


def test_decoding_workers_send_their_pixels_by_pipe_where_shared_memory_is_short(image_folder, monkeypatch):
    """Tensors from worker processes travel through /dev/shm. Where it has too little room for the batches in
    flight (a Docker container's 64 MB), they go as numpy arrays through the workers' pipes, said once; the
    batches are the same."""
    import types

    from fastacgan.workers import collate_decoded, pixels_through_shared_memory

    cat = open_catalog(str(image_folder))
    want = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    want_stream = collect(StreamLoader(cat, 16, 3, 5, 9, CPU, True, 0, "error"))
    real_statvfs, room = os.statvfs, [64 << 20]
    monkeypatch.setattr(os, "statvfs", lambda p: types.SimpleNamespace(f_bavail=room[0] >> 12, f_frsize=4096)
                        if p == "/dev/shm" else real_statvfs(p))  # fmt: skip
    notes = []
    assert not pixels_through_shared_memory(8, 256, 128, 3, notes.append)  # 18 batches of 12 MB
    assert notes == ["note: /dev/shm has 64 MiB free, too little for the decoding workers' batches (216 MiB in "
                     "flight), which go through pipes instead, a copy or two more for this process (docker run "
                     "--shm-size 2g, or --ipc host, gives room)"]  # fmt: skip
    assert pixels_through_shared_memory(8, 256, 32, 3, notes.append) and len(notes) == 1  # 14 MB in flight
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's 4 processes on this machine: 4 x 14 MB
    assert not pixels_through_shared_memory(8, 256, 32, 3, notes.append) and "(54 MiB in flight)" in notes.pop()
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert pixels_through_shared_memory(0, 256, 128, 3, notes.append)  # no workers, nothing crosses
    items = [(0, np.zeros((4, 4, 3), np.uint8), ""), (5, None, "bad.png: truncated")]
    for shared, kind in ((True, torch.Tensor), (False, np.ndarray)):
        batch = collate_decoded(items, shared_memory=shared)
        assert isinstance(batch.x, kind)
        pos, idx, x, errors, n = batch
        assert pos.tolist() == [0] and idx.tolist() == [0] and x.shape == (1, 4, 4, 3) and errors[0].startswith("bad")
    room[0] = 1 << 20
    notes.clear()
    got = decode_all(cat, 16, 3, workers=2, log=notes.append)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert notes[0].startswith("note: /dev/shm has 1 MiB free")
    room[0] = 32 << 10  # the stream's 6 batches of 5 images take 23 KB
    stream = collect(StreamLoader(cat, 16, 3, 5, 9, CPU, True, 2, "error", log=notes.append))
    assert torch.equal(stream[0], want_stream[0]) and torch.equal(stream[1], want_stream[1])
    assert len(notes) == 3 and notes[2].startswith("note: /dev/shm has 32 KiB free")


@pytest.mark.parametrize("loader", ["resident", "torch"])
def test_a_run_in_a_container_with_little_shared_memory_trains(image_folder, tmp_path, loader):
    """A real /dev/shm of 1 MB (a mount namespace of its own; skipped where one cannot be made): the decoding
    workers' batches of 128x128 images do not fit it. Before, a worker's send failed ("unable to allocate shared
    memory"), the batch was lost, and the run waited for it forever."""
    import shlex
    import shutil
    import subprocess
    import sys

    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /dev/shm"],
                           capture_output=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("cannot mount a /dev/shm of its own here (needs root or user namespaces)")
    args = ["--data", image_folder, "--loader", loader, "--workers", "2", "--image-size", "128", "--width", "0.0625",
            "--batch-size", "8", "--steps", "4", "--device", "cpu", "--out", tmp_path / "run"]  # fmt: skip
    run = shlex.join([sys.executable, "-m", "fastacgan.train", *map(str, args)])
    try:
        proc = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {run}"],
                              capture_output=True, text=True, timeout=180)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the run did not end: {e.stdout}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: /dev/shm has 1 MiB free" in proc.stdout and "done: 4 steps" in proc.stdout
    assert "unable to allocate shared memory" not in proc.stderr


def test_default_workers_follow_the_cores_the_job_has(monkeypatch):
    """--workers -1 is one worker per core this process may use (a Slurm job's 3 of a node's 128), at most 8."""
    from fastacgan.workers import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert default_workers(-1) == 3 and default_workers(5) == 5 and default_workers(0) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_workers(-1) == 8
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS
    assert default_workers(-1) == 8


def test_more_workers_than_cores_is_said_once_in_a_line_of_ours(image_folder, tmp_path, monkeypatch, capsys):
    """--workers above the cores the process may use: PyTorch's DataLoader warned twice (at its start and at its
    first batch), each time with its source path and line; now one note line, in the run's words."""
    import warnings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # one core (a Slurm job's share)
    args = ["--data", str(image_folder), "--image-size", "16", "--width", "0.25", "--batch-size", "4", "--workers", "2",
            "--device", "cpu", "--loader", "torch", "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(args) == 0
    out = capsys.readouterr().out
    said = "note: --workers 2 is more than the 1 CPU core(s) this process may use: the decoding workers share them"
    assert out.count(said) == 1 and "done: 1 steps" in out
    assert not [w for w in seen if "DataLoader will create" in str(w.message)]


def test_a_decode_cache_on_a_full_disk_costs_the_run_nothing(image_folder, tmp_path):
    """--decode-cache on a disk that fills up (a real 64 KB tmpfs, in a mount namespace of its own; skipped where
    one cannot be made): the run says so and trains on. torch.save given a path failed there with a RuntimeError
    ("unexpected pos 576 vs 534") that stopped the run after it had decoded the whole set."""
    import shlex
    import shutil
    import subprocess
    import sys

    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    small = tmp_path / "small"
    small.mkdir()
    mount = f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(small))}"
    if subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a file system of its own here (needs root or user namespaces)")
    args = ["--data", image_folder, "--image-size", "32", "--width", "0.25", "--batch-size", "8", "--steps", "2",
            "--device", "cpu", "--workers", "0", "--decode-cache", small / "cache",
            "--out", tmp_path / "run"]  # fmt: skip
    run = shlex.join([sys.executable, "-m", "fastacgan.train", *map(str, args)])
    proc = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && exec {run}"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"could not save the decoded set to {small / 'cache'}" in proc.stdout
    assert "No space left on device" in proc.stdout and "the run goes on without the cache" in proc.stdout
    assert "done: 2 steps" in proc.stdout


def test_the_resident_budget_keeps_to_the_memory_a_container_or_job_has(image_folder, tmp_path, monkeypatch):
    """On a CPU the resident set may take at most half the memory this process may still take: MemAvailable, and
    under a cgroup memory limit (a container's, a Slurm job's --mem) the limit less what the cgroup holds beyond
    its reclaimable file cache. Before, a 4 GB container took the default 4 GB budget whole, and the kernel killed
    the run while it decoded."""
    import fastacgan.loaders as loaders_mod
    from fastacgan.limits import host_memory_available
    from fastacgan.loaders import resident_budget_gb

    gib = 2**30
    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: {64 * gib >> 10} kB\nMemAvailable: {16 * gib >> 10} kB\n")
    (proc / "self" / "cgroup").write_text("0::/job_7/step_0\n")
    (cg / "job_7" / "step_0").mkdir(parents=True)
    (cg / "job_7" / "step_0" / "memory.max").write_text("max\n")
    (cg / "job_7" / "step_0" / "memory.current").write_text(f"{gib}\n")
    (cg / "job_7" / "memory.max").write_text(f"{4 * gib}\n")  # the job's --mem=4G
    (cg / "job_7" / "memory.current").write_text(f"{3 * gib // 2}\n")
    (cg / "job_7" / "memory.stat").write_text(f"anon 123\ninactive_file {gib // 2}\n")
    assert host_memory_available(proc, cg) == 3 * gib  # 4 GiB - (1.5 - 0.5 of file cache)
    (proc / "self" / "cgroup").write_text("4:memory:/docker/abc\n0::/\n")  # cgroup v1, no limit set
    (cg / "memory" / "docker" / "abc").mkdir(parents=True)
    (cg / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (cg / "memory" / "docker" / "abc" / "memory.usage_in_bytes").write_text(f"{gib}\n")
    assert host_memory_available(proc, cg) == 16 * gib
    assert host_memory_available(tmp_path / "none", cg) is None  # no /proc (macOS)

    monkeypatch.setattr(loaders_mod, "host_memory_available", lambda: 3 * gib)
    assert resident_budget_gb(4.0, CPU) == (1.5, "half the memory this process may still take")
    assert resident_budget_gb(1.0, CPU) == (1.0, "--cache-gb")
    cat = open_catalog(str(image_folder))
    monkeypatch.setattr(loaders_mod, "host_memory_available", lambda: 2048)  # 1 KB for 18 KB of 16x16 images
    name, why = choose_loader("auto", cat, 16, 3, 4.0, CPU, False)
    assert name == "torch" and "exceeds the 1 KiB resident budget (half the memory this process may still take)" in why
    monkeypatch.setattr(loaders_mod, "host_memory_available", lambda: None)
    assert choose_loader("auto", cat, 16, 3, 4.0, CPU, False) == ("resident", "18 KiB decoded fits the 4.00 GiB "
                                                                  "budget (--cache-gb)")  # fmt: skip
