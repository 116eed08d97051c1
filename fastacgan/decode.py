"""Decoding: encoded image bytes -> uint8 [size, size, C] (short side resized bicubic, centre crop; large JPEGs
drafted by libjpeg), the whole set at once (`decode_all`, used whenever it fits in --cache-gb) or per batch in
worker processes (`DecodeSet`); decode_cache.py keeps a decoded set for later runs and resumes (--decode-cache).
"""

from __future__ import annotations

import atexit
import functools
import io
import multiprocessing
import os
import re
import signal
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import Catalog, DataError, Every
from .heap import byte_size
from .limits import cpus_within_limit

DRAFT_GAP = 3  # a JPEG is decoded at 1/2, 1/4 or 1/8 scale while it stays >= 3x the resize target


# EXIF orientation (tag 0x0112) -> the transpose that shows the image upright, as ImageOps.exif_transpose maps it
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}  # fmt: skip
_WIDE_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit greyscale (PIL's "I" holds 16-bit PNGs too)


def decode_image(data: bytes, name: str, size: int, channels: int) -> np.ndarray:
    """Encoded bytes -> uint8 [size, size, channels]: turned upright by its EXIF orientation, short side resized to
    `size` (bicubic), centre crop; what DALI's decoder, resize and crop make of the same file. A JPEG much larger
    than that is decoded at reduced scale by libjpeg (DCT scaling, `Image.draft`) while it stays at least DRAFT_GAP
    times the resize target: full-size photos (ISIC's are 1-24 megapixels) then decode 2-3x faster, and the result
    stays within a grey level or two of a full decode and resize. 16-bit greyscale is scaled to 8 bits
    (round(v * 255 / 65535), as DALI does; PIL's own conversion clips everything above 255 to white). A 32-bit
    float greyscale image (a float TIFF) holds [0, 1]: round(v * 255), clipped, as DALI reads it (PIL's own
    conversion would make such an image black).
    Raises DataError naming the file if it is unreadable or truncated."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            if im.format == "JPEG" and min(w, h) >= 2 * DRAFT_GAP * size:
                im.draft(mode, (nw * DRAFT_GAP, nh * DRAFT_GAP))
            im.load()  # decodes now, so truncated files fail here and not later
            turn = _orientation(im)
            if turn in _UPRIGHT:  # turned before the resize, as DALI does (a drafted JPEG is small by now)
                im = im.transpose(_UPRIGHT[turn])
                if turn >= 5:  # a quarter turn (5-8): width and height swap
                    nw, nh = nh, nw
            if im.mode in _WIDE_GREY:
                wide = np.asarray(im).astype(np.int64).clip(0, 65535)
                im = Image.fromarray(((wide + 128) // 257).astype(np.uint8), "L")
            elif im.mode == "F":
                im = Image.fromarray(_float_grey(np.asarray(im)), "L")
            im = im.convert(mode)
    except Exception as e:
        raise DataError(f"{name}: cannot decode image ({pil_words(e)})") from e
    return _fit(im, size, (nw, nh))


def pil_words(e: Exception) -> str:
    """PIL's error, without the in-memory file it names ("cannot identify image file <_io.BytesIO object at
    0x7f...>"), and what the one it gives for a file it cannot tell means."""
    text = re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))
    if isinstance(e, Image.DecompressionBombError):  # (a scan or an aerial photo of over 179 megapixels)
        return f"{text.removesuffix('.')}; PIL reads no larger image: scale it down first"
    return f"{text}: not an image, or of a format PIL does not read" if isinstance(e, UnidentifiedImageError) else text


def _float_grey(v: np.ndarray) -> np.ndarray:
    """float greyscale in [0, 1] -> uint8: round(v * 255), clipped to [0, 255], NaN -> 0 (how DALI reads it)."""
    v = np.nan_to_num(v.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0) * np.float32(255)
    return np.floor(v + np.float32(0.5)).clip(0, 255).astype(np.uint8)  # in float32, halves up, as DALI


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8; 1: as stored). A TIFF's is one of its tags; other formats carry it in an EXIF
    block, parsed only when there is one. Unreadable metadata counts as 1: an image whose pixels decode is kept."""
    if "exif" not in im.info and im.format != "TIFF":
        return 1
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - whatever a malformed EXIF block raises
        return 1


def _fit(im: Image.Image, size: int, resized: tuple[int, int] | None = None) -> np.ndarray:
    """A PIL image -> uint8 [size, size, C]: short side resized to `size` (bicubic), centre crop (placed as DALI's
    crop places it, so that both decoders cut the same pixels). resized: the
    (width, height) before the crop, when the caller computed it from the image's full size (a JPEG drafted)."""
    if im.size != (size, size):
        if resized is None:
            s = size / min(im.size)
            resized = max(size, round(im.size[0] * s)), max(size, round(im.size[1] * s))
        nw, nh = resized
        im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size + 1) // 2, (nh - size + 1) // 2  # an odd margin's half pixel rounds up, as in DALI
        im = im.crop((left, top, left + size, top + size))
    arr = np.array(im, dtype=np.uint8)  # a writable copy
    return arr[:, :, None] if arr.ndim == 2 else arr


def fit_images(images: torch.Tensor, size: int, channels: int, log=print) -> torch.Tensor:
    """Decoded uint8 [N, H, W, C] -> [N, size, size, channels], resized and cropped as decode_image does, and
    converted between greyscale and RGB as PIL converts; the same tensor when it already fits."""
    n, h, w, c = images.shape
    if (h, w, c) == (size, size, channels):
        return images
    mode = "L" if channels == 1 else "RGB"
    out = torch.empty(n, size, size, channels, dtype=torch.uint8)
    due = Every()
    for i in range(n):
        a = images[i].numpy()
        out[i] = torch.from_numpy(_fit(Image.fromarray(a[:, :, 0] if c == 1 else a).convert(mode), size))
        if due(i + 1 == n):
            log(f"resizing images {h}x{w}x{c} -> {size}x{size}x{channels}: {i + 1}/{n}")
    return out


def class_examples(cat: Catalog, size: int, channels: int, rows: int, per_row: int = 10) -> np.ndarray:
    """uint8 [rows * per_row, size, size, channels]: the first `per_row` readable images of each of the first `rows`
    classes, in catalog order, decoded as training decodes them (the layout of the trainer's sample grids: a
    row per class); a class with fewer images leaves black tiles. Unreadable images are passed over."""
    out = np.zeros((rows * per_row, size, size, channels), dtype=np.uint8)
    for k in range(rows):
        idx = np.flatnonzero(cat.labels == k)[: 3 * per_row]  # a few spares for unreadable ones
        if cat.images is not None:
            imgs = fit_images(cat.images[torch.as_tensor(idx[:per_row])], size, channels, log=lambda m: None)
            out[k * per_row : k * per_row + len(imgs)] = imgs.numpy()
            continue
        got = 0
        for i in idx:
            if got == per_row:
                break
            try:
                out[k * per_row + got] = decode_image(cat.read_bytes(int(i)), cat.names[i], size, channels)
                got += 1
            except DataError:
                continue
    return out


def probe(cat: Catalog, n: int = 32) -> tuple[int, int]:
    """(native size of the first readable image, channels: 1 if every probed image is greyscale else 3). Warns
    if a probed float image has values outside [0, 1], which every decoder clips (float images are read as
    [0, 1], as DALI reads them)."""
    if cat.images is not None:
        return cat.images.shape[1], cat.images.shape[3]
    first, grey, wide_float, failed = 0, True, None, ""
    for i in np.linspace(0, len(cat) - 1, min(n, len(cat))).astype(int):
        try:
            with Image.open(io.BytesIO(cat.read(int(i)))) as im:
                first = first or min(im.size)
                grey &= im.mode in ("1", "L", "LA", "F", *_WIDE_GREY)
                if im.mode == "F" and wide_float is None:
                    lo, hi = np.nanmin(v := np.asarray(im)), np.nanmax(v)
                    wide_float = (cat.names[i], lo, hi) if lo < 0 or hi > 1 else None
        except Exception as e:  # noqa: BLE001 - whatever PIL or the reader raises: said if none opens
            failed = failed or f"{cat.names[i]}: {type(e).__name__}: {pil_words(e)}"
            continue
    if wide_float:
        name, lo, hi = wide_float
        warnings.warn(f"{name} is a float image with values from {lo:g} to {hi:g}: float images are read as [0, 1] "
                      "(v * 255, as DALI reads them), so values outside it are clipped; scale such images to "
                      "[0, 1], or save them as 8- or 16-bit", stacklevel=2)  # fmt: skip
    if not first:
        raise DataError(f"none of the {min(n, len(cat))} images probed in {cat.names[0]} ... could be opened (the "
                        f"first: {failed})")  # fmt: skip
    return first, 1 if grey else 3


class DecodeSet(torch.utils.data.Dataset):
    def __init__(self, cat: Catalog, size: int, channels: int):
        self.cat, self.size, self.channels = cat, size, channels

    def __len__(self):
        return len(self.cat)

    def __getitem__(self, i):
        """(i, uint8 [size, size, C] or None, "" or why not): an image that cannot be read or decoded is an
        error message, handled under --bad-images, not an exception in a worker process."""
        try:
            return i, decode_image(self.cat.read_bytes(i), self.cat.names[i], self.size, self.channels), ""
        except DataError as e:
            return i, None, str(e)


def worker_context(workers: int) -> str | None:
    """DataLoader's multiprocessing_context for the decoding workers: fork on Linux, where Python 3.14 made
    forkserver the default. Forked workers share the listing and a compressed archive's bytes with the main process
    (forkserver would pickle a copy of them into every worker) and start without importing torch again; they use
    no threads and no GPU. Elsewhere (macOS: spawn) the platform's own, and none without workers."""
    if workers > 0 and not _kill_workers_left_at_exit.registered:
        atexit.register(_kill_workers_left_at_exit)  # after multiprocessing's own, so it runs before it
        _kill_workers_left_at_exit.registered = True
    if workers > 0 and sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return None


def _kill_workers_left_at_exit() -> None:
    """At exit, multiprocessing stops daemonic child processes with SIGTERM and waits for them. The decoding workers
    ignore SIGTERM (leave_stop_signals_to_the_parent), so one whose DataLoader was never shut down (an uncaught
    exception's traceback keeps it alive) made the process print its traceback and then wait forever: a job that
    never ends. Here, first, the daemonic children get SIGTERM as multiprocessing would send it, and those still
    there a second later (the workers) SIGKILL: at exit they have nothing left to do. (A command that returns from
    main() has shut its DataLoaders down already: this acts only after an uncaught exception.)"""
    left = [p for p in multiprocessing.active_children() if p.daemon]
    if left and hasattr(signal, "SIGCHLD"):  # the DataLoader's handler would take their end for a failure
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for p in left:
        p.terminate()
    deadline = time.monotonic() + 1.0
    for p in left:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


_kill_workers_left_at_exit.registered = False


def _through_the_dataloader(e: BaseException) -> bool:
    tb, where = e.__traceback__, os.path.join("torch", "utils", "data", "")
    while tb is not None:
        if where in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def lost_worker(e: BaseException, workers: int) -> str | None:
    """What a decoding worker's death most likely means, for the error line, or None for another error. The
    DataLoader says only "DataLoader worker (pid N) is killed by signal: Killed." (or "... exited unexpectedly"),
    and where the worker died while its last batch was being received, before the DataLoader saw it gone, what
    receiving it met: EOFError, or "Connection reset by peer" from the worker's end of a shared-memory handle."""
    text = " ".join(str(e).split()).split(". ")[0].rstrip(". ")  # (a bus error's advice follows: ours is below)
    # (not one a worker raised itself, which the DataLoader raises again as "Caught EOFError in DataLoader worker...")
    if isinstance(e, (EOFError, ConnectionError)) and _through_the_dataloader(e) and not text.startswith("Caught "):
        text = f"its last batch could not be received: {type(e).__name__}{': ' * bool(text)}{text}"
    elif not isinstance(e, RuntimeError) or not text.startswith("DataLoader worker (pid"):
        return None
    if "signal: Killed" in text:
        why = ("SIGKILL, most often from the kernel's out-of-memory killer (`dmesg` names it): each worker decodes "
               "images of its own, so fewer --workers take less memory")  # fmt: skip
    elif "signal: Bus error" in text:
        why = (
            "a bus error in a worker is most often shared memory (/dev/shm) too small for the batches it hands "
            "over: a Docker container's is 64 MB (docker run --shm-size 2g, or --ipc host); --workers 0 needs none"
        )
    else:  # the DataLoader iterated in a thread (the streaming loader's) does not learn the signal
        why = ("most often the kernel's out-of-memory killer (`dmesg` names it: fewer --workers take less memory) or, "
               "after \"Unexpected bus error\", shared memory (/dev/shm) too small for the batches a worker hands over "
               "(a Docker container's is 64 MB: docker run --shm-size 2g, or --ipc host); --workers 0 decodes in "
               "this process, where an error shows")  # fmt: skip
    return f"a decoding worker process stopped ({text}; --workers {workers}): {why}"


def leave_stop_signals_to_the_parent(worker_id: int = 0) -> None:
    """A decoding worker process's start (DataLoader's worker_init_fn): Ctrl-C, SIGTERM and SIGHUP go to a whole
    process group (a terminal, its closing, Slurm preempting a job), and a worker they killed would stop the run with
    "DataLoader worker exited unexpectedly" instead of its checkpoint. The workers ignore them; the main process stops
    them."""
    for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGHUP"):  # (train.STOP_SIGNALS: Slurm sends SIGUSR1 to them all)
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class DecodedBatch:
    """A batch as a decoding worker sends it: the positions in the batch and the indices of the good images, their
    pixels (uint8 [n, size, size, C]) or None, the errors, the batch size; unpacked in that order, as tensors. The
    pixels cross from the worker as a tensor, through shared memory (/dev/shm), or, where that has too little room
    (see pixels_through_shared_memory), as a numpy array pickled through the worker's pipe."""

    def __init__(self, pos: np.ndarray, idx: np.ndarray, x, errors: list[str], n: int):
        self.pos, self.idx, self.x, self.errors, self.n = pos, idx, x, errors, n

    def pin_memory(self) -> DecodedBatch:
        """In the DataLoader's pinning thread (a CUDA run): the pixels into page-locked memory, for an asynchronous
        copy to the GPU."""
        if self.x is not None:
            self.x = torch.as_tensor(self.x).pin_memory()
        return self

    def __iter__(self):
        x = None if self.x is None else torch.as_tensor(self.x)
        return iter((torch.from_numpy(self.pos), torch.from_numpy(self.idx), x, self.errors, self.n))


def collate_decoded(items, shared_memory: bool = True) -> DecodedBatch:
    """In the worker: the batch's decoded images as one tensor (a tensor per image would cost a shared-memory
    segment each) or, without shared_memory, one numpy array; and what could not be decoded."""
    good = [(k, i, a) for k, (i, a, _) in enumerate(items) if a is not None]
    pos = np.array([k for k, _, _ in good], dtype=np.int64)
    idx = np.array([i for _, i, _ in good], dtype=np.int64)
    x = np.stack([a for _, _, a in good]) if good else None
    if x is not None and shared_memory:
        x = torch.from_numpy(x)
    return DecodedBatch(pos, idx, x, [e for _, a, e in items if a is None], len(items))


def pixels_through_shared_memory(workers: int, batch: int, size: int, channels: int, log=print) -> bool:
    """Whether the decoding workers send their pixels as tensors, through /dev/shm (the faster way), or as numpy
    arrays through their pipes: where /dev/shm has less room than twice what is in flight (two batches a worker
    and two taken, in each of torchrun's processes on this machine), as in a Docker container (64 MB: a few
    batches of 128x128 images). There a worker's send failed with "unable to allocate shared memory", its batch
    was lost, and the run waited for it forever."""
    if workers == 0:
        return True  # decoded in this process: nothing crosses
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):  # no /dev/shm (macOS: POSIX shared memory, no such limit to read)
        return True
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun's processes on this machine share it
    free, need = st.f_bavail * st.f_frsize, ranks * (2 * workers + 2) * batch * size * size * channels
    if 2 * need <= free:
        return True
    log(f"note: /dev/shm has {byte_size(free)} free, too little for the decoding workers' batches "
        f"({byte_size(need)} in flight), which go through pipes instead, a copy or two more for this process "
        "(docker run --shm-size 2g, or --ipc host, gives room)")  # fmt: skip
    return False


def usable_cpus() -> int:
    """The CPU cores this process may run on: a Slurm job's or `taskset`'s share of the node, not the node's count
    (os.cpu_count: 128 on a node where the job has 4, and 8 workers would share them, as the DataLoader warns),
    and at most its cgroup's CPU limit (a container's --cpus 2 on a 32-core host: 2)."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    return cpus_within_limit(cores)


def default_workers(workers: int) -> int:
    """--workers -1: one decoding worker process per usable core, at most 8."""
    return min(8, usable_cpus()) if workers < 0 else workers


def workers_note(workers: int) -> str | None:
    """The line that says --workers is more than the cores this process may use (PyTorch's DataLoader warned so
    twice, with its source path; the commands hide that: runlog.plain_warnings), or None."""
    cpus = usable_cpus()
    if workers <= cpus:
        return None
    return (f"note: --workers {workers} is more than the {cpus} CPU core(s) this process may use: the decoding "
            "workers share them (no faster; more memory)")  # fmt: skip


def report_bad(errors: list[str], policy: str) -> None:
    if errors and policy == "error":
        raise DataError(errors[0] + "; pass --bad-images skip to skip such files")
    for msg in errors[:10]:
        warnings.warn(f"skipped {msg}", stacklevel=3)


def decode_all(
    cat: Catalog, size: int, channels: int, workers: int, policy: str = "skip", log=print
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every image once -> (uint8 [N', size, size, C], int64 [N']), skipping or raising on bad files."""
    if cat.images is not None:
        return fit_images(cat.images, size, channels, log), torch.as_tensor(cat.labels)
    out = torch.empty(len(cat), size, size, channels, dtype=torch.uint8)
    ok = torch.zeros(len(cat), dtype=torch.bool)
    errors: list[str] = []
    batch = 256
    shm = pixels_through_shared_memory(workers, batch, size, channels, log)
    loader = torch.utils.data.DataLoader(
        DecodeSet(cat, size, channels),
        batch_size=batch,
        num_workers=workers,
        collate_fn=functools.partial(collate_decoded, shared_memory=shm),
        worker_init_fn=leave_stop_signals_to_the_parent,
        multiprocessing_context=worker_context(workers),
    )
    done, due = 0, Every(2.0)
    for _, idx, x, errs, n in loader:
        errors += errs
        if errs and policy == "error":
            report_bad(errors, policy)
        if x is not None:
            out[idx], ok[idx] = x, True
        done += n
        if due(done == len(cat)):
            log(f"decoding images: {done}/{len(cat)} ({due.rate(done):.0f}/s)")
    report_bad(errors, policy)
    cat.skipped = errors
    if errors:
        log(f"skipped {len(errors)} unreadable image(s) of {len(cat)} (first: {errors[0]})")
    if not bool(ok.any()):
        raise DataError(f"--data: none of the {len(cat)} images could be decoded")
    return out[ok], torch.as_tensor(cat.labels)[ok]
