"""Seed 000's image metrics (fastacgan/image_metrics.py) against piqa 1.1.3, the library and version it computes them
with, and against what the metrics must be for identical, grey and batched images."""

import math

import pytest
import torch

from fastacgan import image_metrics as im

SHAPES = [(3, 3, 28, 28), (2, 3, 33, 47), (2, 3, 64, 64), (1, 3, 600, 520)]


def pair(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float64 image batches in [0, 1], made from formulas (the same on any machine and torch version):
    smooth waves plus hashed noise; y is x blurred, shifted in brightness and mixed with other noise, except its
    first image, which is unrelated to x's."""
    n, c, h, w = shape
    idx = torch.arange(n * c * h * w, dtype=torch.float64).view(shape)
    b, ch, i, j = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in shape), indexing="ij")

    def noise(salt):
        v = torch.sin(idx * 12.9898 + salt) * 43758.5453
        return v - v.floor()

    x = 0.5 + 0.3 * torch.sin(0.31 * (b + 1) * i + 0.7 * ch) * torch.cos(0.17 * (ch + 1) * j) + 0.2 * (noise(1) - 0.5)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    y = 0.7 * blurred + 0.1 + 0.2 * noise(2)
    y[0] = 0.5 + 0.4 * torch.cos(0.05 * i[0] * j[0] / (ch[0] + 1)) * (noise(3)[0] - 0.2)
    return x.clamp(0, 1), y.clamp(0, 1)


# piqa 1.1.3 on pair(shape), float32, reduction="none": PSNR, SSIM, MS_GMSD, MDSI, HaarPSI per image (made by
# tests/piqa_golden.py; piqa itself is not a dependency: it needs torchvision, and 1.1.3 an older torch)
PIQA_113 = {
    (3, 3, 28, 28): [
        [13.6157722, 19.0209427, 18.2411938],
        [-0.0604434, 0.657927, 0.6039736],
        [0.2109738, 0.0985433, 0.1236872],
        [0.5301612, 0.4070075, 0.4219179],
        [0.4029086, 0.7354951, 0.7041631],
    ],
    (2, 3, 33, 47): [
        [13.7791367, 18.8723087],
        [0.0158798, 0.6524852],
        [0.2637444, 0.0971977],
        [0.5257058, 0.4087924],
        [0.3674169, 0.7002738],
    ],
    (2, 3, 64, 64): [
        [13.8685799, 18.9675331],
        [0.0199461, 0.6548046],
        [0.2719936, 0.0971924],
        [0.5337456, 0.4034286],
        [0.3056412, 0.7239661],
    ],
    (1, 3, 600, 520): [[13.997592], [0.0354485], [0.2587559], [0.4955467], [0.2143817]],
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_the_metrics_are_piqa_113s(shape):
    x, y = pair(shape)
    for name, want in zip(im.NAMES, PIQA_113[shape]):
        got = im.METRICS[name](x, y)
        assert got.dtype == torch.float64 and got.shape == (shape[0],)
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-4, atol=2e-5, msg=name)


def test_identical_images_score_as_identical():
    x, _ = pair((2, 3, 40, 36))
    want = {"psnr": 80.0, "ssim": 1.0, "ms_gmsd": 0.0, "mdsi": 0.0, "haarpsi": 1.0}
    for name, fn in im.METRICS.items():
        torch.testing.assert_close(fn(x, x), torch.full((2,), want[name], dtype=torch.float64), atol=1e-6, rtol=0)


def test_each_image_pair_is_scored_on_its_own():
    """A batch gives each pair the value it has alone (piqa 1.3's MDSI averages over the batch: not this one)."""
    x, y = pair((3, 3, 32, 32))
    for name, fn in im.METRICS.items():
        whole = fn(x, y)
        for k in range(3):
            torch.testing.assert_close(fn(x[k : k + 1], y[k : k + 1]), whole[k : k + 1], msg=name)


def test_closer_images_score_closer():
    x, y = pair((2, 3, 48, 48))
    near = 0.9 * x + 0.1 * y
    for name, fn in im.METRICS.items():
        a, b = fn(x, near), fn(x, y)
        assert bool((a > b).all() if im.HIGHER_IS_CLOSER[name] else (a < b).all()), (name, a, b)


def test_grey_images_are_scored_as_rgb():
    x, y = pair((2, 1, 30, 30))
    for name, fn in im.METRICS.items():
        torch.testing.assert_close(fn(x, y), fn(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)), msg=name)


def test_seed000_metrics_normalises_each_image_and_averages_the_pairs():
    x, y = pair((3, 3, 32, 32))
    fake, real = 2 * y - 1, 255 * x  # a generator's [-1, 1] and decoded images' [0, 255]: min-max removes both
    got = im.seed000_metrics(fake, real, batch=2)
    for name, fn in im.METRICS.items():
        want = fn(im.minmax(x), im.minmax(y)).mean().item()
        assert math.isclose(got[name], want, rel_tol=1e-9, abs_tol=1e-12), name
    assert (
        im.minmax(x).flatten(1).amin(1).tolist() == [0.0] * 3 and im.minmax(x).flatten(1).amax(1).tolist() == [1.0] * 3
    )
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.equal(im.minmax(flat), torch.zeros_like(flat))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"ms_gmsd: expected images \[N, 1 or 3, H, W\], got \[2, 4, 16, 16\]"):
        im.ms_gmsd(torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16))
    with pytest.raises(ValueError, match=r"ssim: images of \[8, 20\] are too small \(it needs 11x11\)"):
        im.ssim(torch.rand(1, 3, 8, 20), torch.rand(1, 3, 8, 20))
    with pytest.raises(ValueError, match="ms_gmsd: images of .8, 8. are too small"):
        im.ms_gmsd(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    tiny = im.seed000_metrics(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))  # the smallest --image-size
    assert tiny["ssim"] is None and tiny["ms_gmsd"] is None
    assert all(math.isfinite(tiny[n]) for n in ("psnr", "mdsi", "haarpsi"))
    with pytest.raises(ValueError, match=r"\[4, 3, 16, 16\] generated and \[3, 3, 16, 16\] real"):
        im.seed000_metrics(torch.rand(4, 3, 16, 16), torch.rand(3, 3, 16, 16))
