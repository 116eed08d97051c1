"""Differentiable augmentation (--diffaug; DiffAugment, Zhao et al. 2020) for training on little data.

D sees every image, real or generated, through the same random transformations, each image its own draw; G's
gradient flows back through them, so G is not taught to make augmented images, and D, which now sees each real
image in many forms, overfits later (the few thousand images of a medical set such as ISIC's, or a tenth of
CIFAR-10). The policies, applied in this order, on images in [-1, 1], [B, C, H, W] in any memory format:

    color        brightness + U(-0.5, 0.5); saturation: each pixel's distance from its grey (the mean of its
                 channels) times U(0, 2); contrast: each image's distance from its mean times U(0.5, 1.5)
    translation  a shift of up to 1/8 of the side in each direction (whole pixels), the uncovered border zero
    cutout       a square of half the side (rounded) set to zero, centred anywhere in the image (cut by its edges)

The draws come from torch's default generator of the images' device (as dropout's), on the device: no host sync,
so the augmentation runs inside a compiled region and a captured CUDA graph, and a resumed run continues the
same stream. The class labels are kept: none of these transformations changes what an image shows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """--diffaug's value -> the policies in their order of application; "" -> (). Raises ValueError naming the
    option for a name that is not a policy."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in (*POLICIES, "all")]
    if unknown:
        raise ValueError(f"--diffaug {text!r}: {', '.join(unknown)} is not a policy; give a comma-separated list of "
                         f"{', '.join(POLICIES)} (or all), or nothing for none")  # fmt: skip
    return tuple(p for p in POLICIES if p in names or "all" in names)


def diff_augment(x: torch.Tensor, policies: tuple[str, ...]) -> torch.Tensor:
    for name in policies:
        x = _OPS[name](x)
    return x


def color(x: torch.Tensor) -> torch.Tensor:
    r = torch.rand(x.shape[0], 3, 1, 1, 1, device=x.device, dtype=x.dtype)
    x = x + (r[:, 0] - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * r[:, 1]) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (r[:, 2] + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    # out[:, :, i, j] = x[:, :, i - dy, j - dx] where that is inside the image, else 0: read from x padded by one
    # zero pixel, an index outside the image clamped onto that border
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [B, H+2, W+2, C]
    picked = padded[torch.arange(b, device=x.device).view(b, 1, 1), rows, cols].permute(0, 3, 1, 2)  # channels-last
    # in x's memory format: D's convolutions on a CPU took a channels-last batch 20% slower (cifar10's step)
    return picked if x.is_contiguous(memory_format=torch.channels_last) else picked.contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (b, 1, 1, 1), device=x.device) - ch // 2  # the square's first row: its centre anywhere
    left = torch.randint(0, w, (b, 1, 1, 1), device=x.device) - cw // 2
    i = torch.arange(h, device=x.device).view(1, 1, h, 1)
    j = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (i >= top) & (i < top + ch) & (j >= left) & (j < left + cw)
    return x * (~inside).to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}
