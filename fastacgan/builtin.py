"""`builtin:digits`: an MNIST-like data set drawn on the fly, so a first run needs no download.

Each digit 0-9 is a set of strokes (polylines in a unit box). Every image gets its own random affine
transform (rotation, scale, shear, translation) and stroke width, and is rendered anti-aliased as
intensity = clamp((width - distance to the nearest stroke) / pixel + 0.5, 0, 1), vectorised over
[images, segments, pixels]. 10,000 images of 28x28 take 1-3 s on a 2-core CPU, and the time grows with the pixels
(128x128: about 50 s): larger sizes are drawn at DRAW_MAX and resized, as larger images are. The result depends
only on (count, size, seed), so every run and every test sees the same set.
"""

from __future__ import annotations

import math

import torch

from .data import Catalog, DataError, Every

CLASS_NAMES = [str(d) for d in range(10)]
TEST_SEED = 4321  # the test split's draws (the training set's: 1234)
DRAW_MAX = 128  # the largest size drawn; a larger --image-size resizes these (512x512 drawn took over 10 minutes)


def _arc(cx, cy, rx, ry, a0, a1, n=10):
    """Points on an ellipse arc, angles in degrees, y pointing down."""
    return [
        (
            cx + rx * math.cos(math.radians(a0 + (a1 - a0) * t / n)),
            cy + ry * math.sin(math.radians(a0 + (a1 - a0) * t / n)),
        )
        for t in range(n + 1)
    ]


_STROKES = {
    0: [_arc(0.5, 0.5, 0.26, 0.38, 0, 360, 16)],
    1: [[(0.36, 0.25), (0.52, 0.1), (0.52, 0.9)]],
    2: [_arc(0.5, 0.32, 0.24, 0.22, 200, 380, 8) + [(0.26, 0.9), (0.78, 0.9)]],
    3: [_arc(0.48, 0.3, 0.22, 0.2, 200, 450, 9), _arc(0.48, 0.7, 0.25, 0.2, 270, 520, 9)],
    4: [[(0.64, 0.9), (0.64, 0.1), (0.2, 0.64), (0.8, 0.64)]],
    5: [[(0.74, 0.1), (0.32, 0.1), (0.29, 0.46)] + _arc(0.5, 0.66, 0.25, 0.24, 220, 500, 10)],
    6: [[(0.68, 0.1), (0.33, 0.52)], _arc(0.5, 0.68, 0.21, 0.21, 0, 360, 14)],
    7: [[(0.22, 0.12), (0.78, 0.12), (0.42, 0.9)]],
    8: [_arc(0.5, 0.3, 0.18, 0.19, 0, 360, 12), _arc(0.5, 0.7, 0.23, 0.2, 0, 360, 12)],
    9: [_arc(0.5, 0.33, 0.21, 0.21, 0, 360, 14), [(0.71, 0.36), (0.6, 0.9)]],
}


def _segments() -> tuple[torch.Tensor, torch.Tensor]:
    """[10, S, 4] segment endpoints (x0, y0, x1, y1) centred on 0, padded by repeating; [10, S] validity."""
    per_digit = []
    for d in range(10):
        segs = [(*p, *q) for line in _STROKES[d] for p, q in zip(line[:-1], line[1:])]
        per_digit.append(torch.tensor(segs, dtype=torch.float32) - 0.5)
    s_max = max(len(s) for s in per_digit)
    padded = torch.stack([torch.cat([s, s[:1].expand(s_max - len(s), 4)]) for s in per_digit])
    return padded, s_max


def render_digits(count: int = 10_000, size: int = 28, seed: int = 1234, chunk: int = 1000, log=lambda msg: None):
    """-> (images uint8 [N, size, size, 1], labels int64 [N]), classes balanced (label = i % 10); a progress line
    every few seconds where it takes longer."""
    g = torch.Generator().manual_seed(seed)
    segs, _ = _segments()
    labels = torch.arange(count) % 10
    labels = labels[torch.randperm(count, generator=g)]
    # per-image affine A (2x2) and offset t, stroke half-width w, brightness b (unit-box coordinates)
    rot = (torch.rand(count, generator=g) - 0.5) * math.radians(30)
    scale = 0.72 + 0.22 * torch.rand(count, generator=g)
    aspect = 0.85 + 0.3 * torch.rand(count, generator=g)
    shear = (torch.rand(count, generator=g) - 0.5) * 0.4
    shift = (torch.rand(count, 2, generator=g) - 0.5) * 0.14
    width = 0.045 + 0.035 * torch.rand(count, generator=g)
    bright = 0.75 + 0.25 * torch.rand(count, generator=g)
    c, s = torch.cos(rot), torch.sin(rot)
    a = torch.stack([torch.stack([c, -s + shear], -1), torch.stack([s, c], -1)], -2)  # [N, 2, 2]
    a = a * torch.stack([scale * aspect, scale], -1)[:, None, :]
    # pixel centres in the same coordinates, [P, 2]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pix = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    out = torch.empty(count, size * size, dtype=torch.uint8)
    # images per chunk: its [n, S, P] float temporaries stay at 2**24 elements (64 MB) each, whatever the size
    chunk = max(1, min(chunk, (1 << 24) // (segs.shape[1] * size * size)))
    due, said = Every(), False
    for i0 in range(0, count, chunk):
        sl = slice(i0, min(count, i0 + chunk))
        seg = segs[labels[sl]]  # [n, S, 4]
        p0 = torch.einsum("nij,nsj->nsi", a[sl], seg[..., :2]) + shift[sl, None]
        p1 = torch.einsum("nij,nsj->nsi", a[sl], seg[..., 2:]) + shift[sl, None]
        d = p1 - p0  # [n, S, 2]
        # squared distance from each pixel to each segment, coordinates kept separate to spare [n, S, P, 2]
        rx = pix[None, None, :, 0] - p0[..., 0, None]  # [n, S, P]
        ry = pix[None, None, :, 1] - p0[..., 1, None]
        inv_len2 = 1.0 / (d * d).sum(-1).clamp_min(1e-8)
        t = ((rx * d[..., 0, None] + ry * d[..., 1, None]) * inv_len2[..., None]).clamp_(0, 1)
        dist = ((rx - t * d[..., 0, None]).square_() + (ry - t * d[..., 1, None]).square_()).amin(1).sqrt_()
        ink = ((width[sl, None] - dist) * size + 0.5).clamp(0, 1)
        out[sl] = (ink * bright[sl, None] * 255).round_().to(torch.uint8)
        if due() or said and sl.stop == count:  # (the last line only after others)
            said = True
            log(f"drawing digits at {size}x{size}: {sl.stop}/{count}")
    return out.view(count, size, size, 1), labels


def builtin_catalog(spec: str, image_size: int, split: str = "train", log=lambda msg: None) -> Catalog:
    """builtin:digits[:COUNT]: COUNT digits (10,000) drawn from seed 1234; its test split, a fifth as many (at least
    10) drawn from another seed: images of the same kind that training never saw, as MNIST's t10k files are.
    Larger than DRAW_MAX, drawn at DRAW_MAX and resized (bicubic)."""
    kind, _, count = spec.partition(":")[2].partition(":")
    if kind != "digits":
        raise DataError(f"--data {spec}: unknown built-in data set (available: builtin:digits[:COUNT])")
    if not (count == "" or count.isdigit() and int(count) > 0):
        raise DataError(f"--data {spec}: COUNT in builtin:digits:COUNT must be a whole number of images, 1 or more")
    n, size = int(count) if count else 10_000, image_size or 28
    if split == "test":
        n = max(10, n // 5)
    else:  # (said once the name is known to be one)
        log(f"drawing the built-in data set {spec} at {size}x{size}{' (a few seconds)' * (size <= 32)}")
    images, labels = render_digits(n, min(size, DRAW_MAX), seed=TEST_SEED if split == "test" else 1234, log=log)
    if size > DRAW_MAX:
        from .decode import fit_images

        images = fit_images(images, size, 1, log)
    names = [f"builtin:digits{'/test' if split == 'test' else ''}/{i}" for i in range(len(labels))]
    return Catalog("digits", names, labels.numpy(), list(CLASS_NAMES), None, images)
