"""Image grids, PNG and GIF output (PIL only)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import atomic_write_bytes


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] in [-1, 1] -> uint8 [B, H, W, C] on the host."""
    x = ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: np.ndarray, ncol: int, pad: int = 2) -> np.ndarray:
    """uint8 [B, H, W, C] -> one uint8 [rows*(H+pad)+pad, ncol*(W+pad)+pad, C] image, row-major."""
    b, h, w, c = images.shape
    nrow = -(-b // ncol)
    grid = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(b):
        r, k = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[i]
    return grid


def to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def save_png(path, arr: np.ndarray, durable: bool = True) -> bytes:
    """Write uint8 [H, W, C] atomically; JPEG if the name ends in .jpg/.jpeg, else PNG. Returns the file's bytes."""
    buf = io.BytesIO()
    to_pil(arr).save(buf, format="JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG")
    atomic_write_bytes(path, buf.getvalue(), durable)
    return buf.getvalue()


# the most grids an animation shows: a run's default (24 and step 0's). Each costs PIL's GIF encoder about a second
# and 15 MB at 128x128 (a 1302-pixel grid): 300 grids (--sample-every 100 over 30,000 steps) took minutes and GBs
# at the end of the run, and again at each Ctrl-C
GIF_FRAMES = 25


def save_gif(path, frames: list[Path], ms_per_frame: int = 250, most: int = GIF_FRAMES) -> bool:
    """Animate the PNGs in `frames` (in order): at most `most` of them, evenly spread, the first and the last among
    them; the last frame stays four times as long. False if no frames."""
    if not frames:
        return False
    if len(frames) > most > 1:
        frames = [frames[round(i * (len(frames) - 1) / (most - 1))] for i in range(most)]
    images = [Image.open(f).convert("RGB") for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 4]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return True
