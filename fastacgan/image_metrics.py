"""The ISIC AC-GAN's image metrics (seed 000): PSNR, SSIM, MS-GMSD, MDSI and HaarPSI between generated images and
real ones, as it computes them with piqa 1.1.3's defaults, in plain PyTorch (no piqa or torchvision needed).

Every function takes x, y: float [N, C, H, W] in [0, 1] (C = 3; a grey image is repeated to RGB, which leaves the
luminance unchanged and the chrominance near zero) and returns one value per image pair, [N]:
- psnr:    10 log10(1 / (MSE + 1e-8)); higher is closer.
- ssim:    Wang et al. 2004: an 11-tap Gaussian window (sigma 1.5), valid positions only, averaged over
           channels and positions; 1 for identical images.
- ms_gmsd: Zhang et al. 2017: the deviation of the gradient magnitude similarity of the luminance (Prewitt
           gradients, c = 170/255^2, alpha = 0.5) at 4 scales, sqrt(sum_i w_i GMSD_i^2); 0 for identical images.
- mdsi:    Nafchi et al. 2016: gradient and chromaticity (LHM space) similarity, combined as a sum
           (alpha = 0.6), the mean deviation of its complex 0.25 power, to the power 0.25; 0 for identical images.
- haarpsi: Reisenhofer et al. 2018: Haar-wavelet similarity of the luminance at two scales and of the
           chrominance, weighted by the third scale, on the image halved; 1 for identical images.
`seed000_metrics(fake, real)` is seed 000's report: each image min-max normalised on its own, the i-th generated
image against the i-th real one (unpaired images: the figures say how alike the two sets' images are in
brightness, contrast and structure, not how faithful one image is to another).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAMES = ("psnr", "ssim", "ms_gmsd", "mdsi", "haarpsi")
LABELS = {"psnr": "PSNR", "ssim": "SSIM", "ms_gmsd": "MS-GMSD", "mdsi": "MDSI", "haarpsi": "HaarPSI"}
HIGHER_IS_CLOSER = {"psnr": True, "ssim": True, "ms_gmsd": False, "mdsi": False, "haarpsi": True}

# RGB -> luminance (GMSD), YIQ (HaarPSI) and LHM (MDSI), as rows of a 1x1 convolution
_RGB_TO = {
    "Y": [[0.299, 0.587, 0.114]],
    "YIQ": [[0.299, 0.587, 0.114], [0.5969, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
    "LHM": [[0.2989, 0.5870, 0.1140], [0.3, 0.04, -0.35], [0.34, -0.6, 0.17]],
}
_MS_GMSD_WEIGHTS = (0.096, 0.596, 0.289, 0.019)
# the smallest image side each metric is defined for: SSIM's 11x11 window; MS-GMSD's 4th scale (1/8) needs 2+ pixels
MIN_SIDE = {"psnr": 1, "ssim": 11, "ms_gmsd": 9, "mdsi": 1, "haarpsi": 1}


def _check(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected images [N, 1 or 3, H, W], got {list(x.shape)}")
    if min(x.shape[-2:]) < MIN_SIDE[name]:
        raise ValueError(
            f"{name}: images of {list(x.shape[-2:])} are too small (it needs {MIN_SIDE[name]}x{MIN_SIDE[name]})"
        )


def _rgb(x: torch.Tensor, name: str) -> torch.Tensor:
    _check(x, name)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _convert(x: torch.Tensor, space: str) -> torch.Tensor:
    w = torch.tensor(_RGB_TO[space], dtype=x.dtype, device=x.device)
    return torch.einsum("oc,nchw->nohw", w, x)


def _gradients(x: torch.Tensor, k: torch.Tensor, pad: int) -> torch.Tensor:
    """x [N, 1, H, W] -> [N, 2, H', W']: x correlated with k (horizontal) and k^T (vertical)."""
    return F.conv2d(x, torch.stack([k, k.t()]).unsqueeze(1).to(x), padding=pad)


def _prewitt(x: torch.Tensor) -> torch.Tensor:
    return torch.outer(torch.ones(3) / 3, torch.tensor([1.0, 0.0, -1.0])).to(x)


def _similarity(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    return (2 * a * b + c) / (a * a + b * b + c)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _check(x, "psnr")
    return 10 * torch.log10(1 / ((x - y).square().flatten(1).mean(1) + 1e-8))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _check(x, "ssim")
    c1, c2 = 0.01**2, 0.03**2
    g = torch.exp(-((torch.arange(11, dtype=x.dtype, device=x.device) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).repeat(x.shape[1], 1, 1)

    def blur(t):  # separable Gaussian per channel, valid positions only
        t = F.conv2d(t, g.unsqueeze(-1), groups=t.shape[1])
        return F.conv2d(t, g.unsqueeze(-2), groups=t.shape[1])

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = (2 * mx * my + c1) / (mx * mx + my * my + c1) * (2 * cov + c2) / (vx + vy + c2)
    return s.flatten(1).mean(1)


def _gmsd(x: torch.Tensor, y: torch.Tensor, c: float, alpha: float) -> torch.Tensor:
    k = _prewitt(x)
    gx, gy = _gradients(x, k, 1).norm(dim=1), _gradients(y, k, 1).norm(dim=1)
    gms = ((2 - alpha) * gx * gy + c) / (gx * gx + gy * gy - alpha * gx * gy + c)
    return gms.std(dim=(-1, -2))


def ms_gmsd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _convert(_rgb(x, "ms_gmsd"), "Y"), _convert(_rgb(y, "ms_gmsd"), "Y")
    total = 0
    for i, w in enumerate(_MS_GMSD_WEIGHTS):
        if i:
            x, y = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True)
        total = total + w * _gmsd(x, y, 170 / 255**2, 0.5) ** 2
    return total.sqrt()


def _cpow(re: torch.Tensor, im: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(re + i im) ** p, principal branch, as (real, imaginary) parts."""
    r, phi = (re * re + im * im) ** (p / 2), torch.atan2(im, re) * p
    return r * torch.cos(phi), r * torch.sin(phi)


def mdsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _rgb(x, "mdsi"), _rgb(y, "mdsi")
    m = round(min(x.shape[-2:]) / 256)  # images above ~384 pixels are averaged down to ~256 first
    if m > 1:
        x, y = F.avg_pool2d(x, m, ceil_mode=True), F.avg_pool2d(y, m, ceil_mode=True)
    x, y = _convert(x, "LHM"), _convert(y, "LHM")
    c1, c2, c3 = 140 / 255**2, 55 / 255**2, 550 / 255**2
    k = _prewitt(x)
    lx, ly = x[:, :1], y[:, :1]
    gx, gy = _gradients(lx, k, 1).norm(dim=1), _gradients(ly, k, 1).norm(dim=1)
    gm = _gradients((lx + ly) / 2, k, 1).norm(dim=1)
    gs = _similarity(gx, gy, c1) + _similarity(gx, gm, c2) - _similarity(gy, gm, c2)
    hx, hy = x[:, 1:], y[:, 1:]
    cs = (2 * (hx * hy).sum(1) + c3) / ((hx * hx + hy * hy).sum(1) + c3)
    re, im = _cpow(0.6 * gs + 0.4 * cs, torch.zeros_like(gs), 0.25)  # may be negative: complex root
    dev = ((re - re.mean((-1, -2), keepdim=True)) ** 2 + (im - im.mean((-1, -2), keepdim=True)) ** 2).sqrt()
    return dev.mean((-1, -2)) ** 0.25


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c, alpha = 30 / 255**2, 4.2
    x, y = _rgb(x, "haarpsi"), _rgb(y, "haarpsi")
    x, y = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True)
    x, y = _convert(x, "YIQ"), _convert(y, "YIQ")
    scales = []
    for j in (1, 2, 3):  # Haar filters of 2, 4, 8 taps: |response| of the luminance, [N, 2, H, W]
        n = 2**j
        k = torch.outer(torch.ones(n) / n, torch.tensor([1.0, -1.0]).repeat_interleave(n // 2)).to(x)
        scales.append([_gradients(t[:, :1], k, n // 2)[..., 1:, 1:].abs() for t in (x, y)])
    local = (_similarity(*scales[0], c) + _similarity(*scales[1], c)) / 2
    weight = torch.maximum(*scales[2])
    mx, my = (F.avg_pool2d(t[:, 1:], 2, stride=1, padding=1)[..., 1:, 1:].abs() for t in (x, y))
    local = torch.cat([local, _similarity(mx, my, c).mean(1, True)], 1)
    weight = torch.cat([weight, weight.mean(1, True)], 1)
    h = (torch.sigmoid(alpha * local) * weight).sum((-1, -2, -3)) / weight.sum((-1, -2, -3))
    return (torch.logit(h) / alpha) ** 2


METRICS = {"psnr": psnr, "ssim": ssim, "ms_gmsd": ms_gmsd, "mdsi": mdsi, "haarpsi": haarpsi}


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Each image [C, H, W] of x [N, C, H, W] scaled to span [0, 1] (a flat image becomes 0)."""
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


@torch.no_grad()
def seed000_metrics(fake: torch.Tensor, real: torch.Tensor, batch: int = 64) -> dict[str, float | None]:
    """Seed 000's figures: the mean over i of each metric between minmax(real[i]) and minmax(fake[i]); fake and
    real [N, C, H, W] in any range, as many of each (computed in float64, batch by batch). A metric is None for
    images smaller than it is defined for (MIN_SIDE: SSIM below 11x11, MS-GMSD at 8x8)."""
    if fake.shape != real.shape or fake.dim() != 4 or not len(fake):
        raise ValueError(f"seed000_metrics: {list(fake.shape)} generated and {list(real.shape)} real images")
    metrics = {n: fn for n, fn in METRICS.items() if min(fake.shape[-2:]) >= MIN_SIDE[n]}
    sums = dict.fromkeys(metrics, 0.0)
    for s in range(0, len(fake), batch):
        r, f = minmax(real[s : s + batch].double()), minmax(fake[s : s + batch].double())
        for name, fn in metrics.items():
            sums[name] += float(fn(r, f).sum())
    return {name: sums[name] / len(fake) if name in sums else None for name in NAMES}
