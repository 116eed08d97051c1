"""Decoding: encoded image bytes -> uint8 [size, size, C] (short side resized bicubic, centre crop; large JPEGs
drafted by libjpeg), the whole set at once (`decode_all`, used whenever it fits in --cache-gb) or per batch in
worker processes (`DecodeSet`); decode_cache.py keeps a decoded set for later runs and resumes (--decode-cache).
"""

from __future__ import annotations

import functools
import io
import re
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import Catalog, DataError, Every
from .workers import collate_decoded, leave_stop_signals_to_the_parent, pixels_through_shared_memory, worker_context

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


def probe(cat: Catalog, n: int = 32, log=lambda msg: None, channels: int = 0) -> tuple[int, int]:
    """(native size of the first readable image, channels: 1 if every probed image is greyscale else 3: stored so,
    or in colour with grey alone in it, which is said unless the model's channels are set, `channels`: --channels,
    a resume's). Warns if a probed float image has values outside [0, 1], which every decoder clips (float images
    are read as [0, 1], as DALI reads them); says if probed images have transparent pixels."""
    if cat.images is not None:
        return cat.images.shape[1], cat.images.shape[3]
    first, grey, wide_float, failed, in_colour, clear = 0, True, None, "", 0, []
    for i in np.linspace(0, len(cat) - 1, min(n, len(cat))).astype(int):
        try:
            with Image.open(io.BytesIO(cat.read(int(i)))) as im:
                first = first or min(im.size)
                if grey and im.mode not in ("1", "L", "LA", "F", *_WIDE_GREY):
                    grey = _grey_alone(im)
                    in_colour += grey
                if _see_through(im):
                    clear.append(cat.names[i])
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
    if grey and in_colour and not channels:
        log(f"note: {in_colour} of the {min(n, len(cat))} images probed are stored in colour but hold grey alone (R = "
            "G = B): the model is greyscale, 1 channel (--channels 3 for RGB)")  # fmt: skip
    if clear:  # (Pokemon sprites: PNGs on a transparent background, read as black)
        log(f"note: {len(clear)} of the {min(n, len(cat))} images probed have transparent pixels ({clear[0]} ...): "
            "transparency is dropped, as torchvision's and DALI's decoders drop it, leaving the colour stored under "
            "it, often black; to put such images on white, run on a copy of them: magick mogrify -background white "
            "-alpha remove -alpha off *.png")  # fmt: skip
    if not first:
        raise DataError(f"none of the {min(n, len(cat))} images probed in {cat.names[0]} ... could be opened (the "
                        f"first: {failed})")  # fmt: skip
    return first, 1 if grey else 3


def _grey_alone(im: Image.Image) -> bool:
    """Whether an image stored in colour (RGB, a palette) holds grey alone: R = G = B in every pixel, within 2
    levels (chest X-rays saved as RGB JPEGs). A JPEG is decoded at reduced scale for it."""
    if im.mode not in ("RGB", "RGBA", "P", "PA"):
        return False
    if im.format == "JPEG":
        im.draft("RGB", (64, 64))
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return int(np.ptp(rgb, axis=2).max(initial=0)) <= 2


def _see_through(im: Image.Image) -> bool:
    """Whether an image has pixels that are not fully opaque: an alpha channel, or a PNG's or GIF's transparent
    colour, in use."""
    if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
        return False
    return (im if im.mode in ("RGBA", "LA") else im.convert("RGBA")).getchannel("A").getextrema()[0] < 255


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
