import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastacgan.config import PRESETS, TrainConfig, resolve_spec
from fastacgan.models import (
    Discriminator,
    Dropout,
    Generator,
    ModelSpec,
    StemTranspose,
    UpsampleConv2d,
    _fold3,
    _fold_by_matmul,
    count_params,
    d_layers,
    start_size,
)


def spec_for(preset, channels=3, classes=10, **cfg):
    return resolve_spec(TrainConfig(**cfg), preset, channels, classes)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_preset_shapes(preset, channels):
    spec = spec_for(preset, channels, classes=7)
    g, d = Generator(spec), Discriminator(spec)
    b, s = 3, spec.image_size
    x = g(torch.randn(b, spec.nz), torch.tensor([0, 3, 6]))
    assert x.shape == (b, channels, s, s)
    assert x.abs().max() <= 1  # tanh output
    src, cls = d(x)
    assert src.shape == (b,) and cls.shape == (b, 7)
    assert torch.isfinite(src).all() and torch.isfinite(cls).all()


def test_cifar10_preset_matches_the_reference_parameter_counts():
    # the seed "PyTorch Implementation of ACGAN" lists 1,594,227 (G) and 1,664,875 (D) parameters
    spec = spec_for("cifar10")
    assert count_params(Generator(spec)) == 1_594_227
    assert count_params(Discriminator(spec)) == 1_664_875
    g = Generator(spec)
    assert g.fc.in_features == 110 and g.fc.out_features == 384  # 100 noise + 10 one-hot -> 384


def test_isic_presets_use_spectral_norm_and_upsampling():
    for name, size in (("isic64", 64), ("isic128", 128)):
        spec = spec_for(name)
        d = Discriminator(spec)
        convs = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert convs and all(hasattr(m, "parametrizations") for m in convs)
        assert any(isinstance(m, torch.nn.Upsample) for m in Generator(spec, fast=False).modules())
        assert sum(isinstance(m, UpsampleConv2d) for m in Generator(spec).modules()) == (4 if size == 64 else 5)
        assert spec.image_size == size and spec.conditioning == "embed-mul"


@pytest.mark.parametrize("size,expected", [(28, 7), (32, 4), (64, 4), (128, 4), (16, 4), (56, 7)])
def test_start_size(size, expected):
    assert start_size(size) == expected


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_discriminator_reaches_4x4_or_less(preset):
    spec = spec_for(preset)
    s = spec.image_size
    for _, k, stride in d_layers(spec):
        s = (s + 2 - k) // stride + 1
    assert 1 <= s <= 4


def test_conditioning_modes():
    base = spec_for("digits", 1, classes=4)
    z = torch.randn(2, base.nz)
    y = torch.tensor([1, 3])
    g = Generator(ModelSpec(**{**base.to_dict(), "conditioning": "onehot-replace"}))
    h = g.condition(z, y)
    assert h.shape == (2, base.nz)
    assert torch.equal(h[:, :4], torch.nn.functional.one_hot(y, 4).float()) and torch.equal(h[:, 4:], z[:, 4:])
    g = Generator(ModelSpec(**{**base.to_dict(), "conditioning": "onehot-concat"}))
    h = g.condition(z, y)
    assert h.shape == (2, base.nz + 4) and torch.equal(h[:, : base.nz], z)
    g = Generator(ModelSpec(**{**base.to_dict(), "conditioning": "embed-mul"}))
    assert torch.allclose(g.condition(z, y), z * g.embed.weight[y])


def test_label_changes_the_output():
    spec = spec_for("mnist", 1)
    g = Generator(spec).eval()
    z = torch.randn(1, spec.nz).repeat(2, 1)
    x = g(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"conditioning": "onehot-replace", "nz": 5}, "--nz"),
        ({"conditioning": "sum"}, "--conditioning"),
        ({"image_size": 7}, "--image-size"),
        ({"image_size": 25}, "--image-size"),
        ({"channels": 2}, "--channels"),
    ],
)
def test_invalid_specs_name_the_option(bad, msg):
    spec = ModelSpec(**{**spec_for("digits", 1).to_dict(), **bad})
    with pytest.raises(ValueError, match=msg):
        Generator(spec)


def test_width_scales_the_model():
    assert count_params(Generator(spec_for("cifar10", width=0.5))) < count_params(Generator(spec_for("cifar10")))
    with pytest.raises(ValueError, match="--width"):
        spec_for("cifar10", width=0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_stem_matrix_product_is_the_transposed_convolution(channels_last):
    """G's first layer (1x1 -> s0 x s0) as a matrix product: the same output and gradients as
    nn.ConvTranspose2d on the same state_dict, NCHW or channels-last weights; other inputs fall back to it."""
    torch.manual_seed(0)
    conv, stem = torch.nn.ConvTranspose2d(12, 7, 4), StemTranspose(12, 7, 4)
    stem.load_state_dict(conv.state_dict())
    if channels_last:
        conv, stem = conv.to(memory_format=torch.channels_last), stem.to(memory_format=torch.channels_last)
    x = torch.randn(5, 12, 1, 1, dtype=torch.float64)
    conv, stem = conv.double(), stem.double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = conv(xa), stem(xb)
    torch.testing.assert_close(yb, ya)
    probe = torch.randn_like(ya)
    (ya * probe).sum().backward()
    (yb * probe).sum().backward()
    for a, b in ((xa.grad, xb.grad), (conv.weight.grad, stem.weight.grad), (conv.bias.grad, stem.bias.grad)):
        torch.testing.assert_close(b, a)
    x3 = torch.randn(2, 12, 3, 3, dtype=torch.float64)  # not 1x1: the convolution itself
    torch.testing.assert_close(stem(x3), conv(x3))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (3, 8, 7, 5), (1, 16, 1, 1), (2, 3, 2, 9)])  # [B, C, H, W]
def test_upsample_conv_is_upsample_then_convolution(shape, channels_last, monkeypatch):
    """UpsampleConv2d (a stride-2 transposed convolution of the small map) against nn.Upsample + nn.Conv2d with the
    same parameters: output and every gradient, float64, NCHW and channels-last (kept in the output), odd and
    1-pixel maps (the transposed convolution at every size, as on a GPU: no small maps left to the plain form)."""
    monkeypatch.setattr(UpsampleConv2d, "cpu_plain_max_pixels", 0)
    torch.manual_seed(0)
    b, ci, h, w = shape
    plain, fast = torch.nn.Conv2d(ci, 7, 3, 1, 1).double(), UpsampleConv2d(ci, 7, 3, 1, 1).double()
    fast.load_state_dict(plain.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=fmt)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = plain(torch.nn.functional.interpolate(xa, scale_factor=2.0, mode="nearest"))
    yb = fast(xb)
    assert yb.shape == (b, 7, 2 * h, 2 * w)
    torch.testing.assert_close(yb, ya)
    if channels_last and h * w > 1:
        assert yb.is_contiguous(memory_format=torch.channels_last)
    probe = torch.randn_like(ya)
    grads_a = torch.autograd.grad((ya * probe).sum(), (xa, plain.weight, plain.bias))
    grads_b = torch.autograd.grad((yb * probe).sum(), (xb, fast.weight, fast.bias))
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(gb, ga)


def test_upsample_conv_small_maps_on_a_cpu_run_as_written():
    """On a CPU, maps of at most cpu_plain_max_pixels pixels are upsampled and convolved as written (bit for bit
    the plain layers' result, so also their gradients); one pixel more and the transposed convolution runs (equal
    to rounding, not bit for bit)."""
    torch.manual_seed(0)
    fast, plain = UpsampleConv2d(8, 6, 3, 1, 1), torch.nn.Conv2d(8, 6, 3, 1, 1)
    fast.load_state_dict(plain.state_dict())
    assert UpsampleConv2d.cpu_plain_max_pixels == 16
    for h, w, as_written in ((4, 4, True), (1, 1, True), (2, 8, True), (3, 6, False), (5, 4, False)):
        x = torch.randn(16, 8, h, w)
        want = plain(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
        got = fast(x)
        torch.testing.assert_close(got, want)
        assert torch.equal(got, want) == as_written, (h, w)


def test_fold_by_matmul_is_the_elementwise_fold():
    """The CPU's fold (one matrix product with the 0/1 matrix kron(F, F)) against _fold3 on both axes, transposed
    to [ci, co, 4, 4]: values and the gradient (float64); under bf16 autocast it still folds in the weight's
    dtype (the convolution casts the folded taps once), bit for bit as without autocast."""
    torch.manual_seed(0)
    w = torch.randn(5, 7, 3, 3, dtype=torch.float64, requires_grad=True)
    a = _fold_by_matmul(w)
    b = _fold3(_fold3(w, 2), 3).transpose(0, 1)
    assert a.shape == (7, 5, 4, 4) and a.is_contiguous()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    probe = torch.randn_like(b)
    torch.testing.assert_close(
        torch.autograd.grad((a * probe).sum(), w)[0], torch.autograd.grad((b * probe).sum(), w)[0]
    )
    w32 = w.detach().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_autocast = _fold_by_matmul(w32)
    assert in_autocast.dtype == torch.float32
    assert torch.equal(in_autocast, _fold_by_matmul(w32))


def test_upsample_conv_other_configurations_fall_back():
    """Not 3x3 / stride 1 / padding 1: upsample, then the convolution as configured."""
    torch.manual_seed(0)
    for kw in ({"kernel_size": 5, "padding": 2}, {"kernel_size": 3, "padding": 1, "dilation": 2}):
        fast, plain = UpsampleConv2d(4, 6, **kw), torch.nn.Conv2d(4, 6, **kw)
        fast.load_state_dict(plain.state_dict())
        x = torch.randn(2, 4, 5, 5)
        want = plain(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
        torch.testing.assert_close(fast(x), want)


@pytest.mark.parametrize("preset, channels", [("cifar10", 3), ("mnist", 1), ("isic64", 3)])
def test_generator_fast_and_plain_layers_agree(preset, channels, monkeypatch):
    """The fast rewrites (StemTranspose, UpsampleConv2d) against PyTorch's plain layers on one state_dict: output
    and gradients (float64: BatchNorm's backward over 6 samples amplifies fp32 rounding), NCHW and channels-last;
    and the FLOPs they save (every upsample convolution as a transposed convolution, as on a GPU)."""
    monkeypatch.setattr(UpsampleConv2d, "cpu_plain_max_pixels", 0)
    spec = resolve_spec(TrainConfig(width=0.25), preset, channels, 10)
    torch.manual_seed(0)
    fast, plain = Generator(spec).double(), Generator(spec, fast=False).double()
    if spec.g_arch == "tconv":
        assert isinstance(fast.net[0], StemTranspose) and type(plain.net[0]) is torch.nn.ConvTranspose2d
    else:
        assert any(isinstance(m, UpsampleConv2d) for m in fast.modules())
        assert not any(isinstance(m, UpsampleConv2d) for m in plain.modules())
    plain.load_state_dict(fast.state_dict())  # the same keys and shapes
    assert fast.state_dict().keys() == plain.state_dict().keys()
    z, y = torch.randn(6, spec.nz, dtype=torch.float64), torch.randint(10, (6,))
    for fmt in (torch.contiguous_format, torch.channels_last):
        fast, plain = fast.to(memory_format=fmt), plain.to(memory_format=fmt)
        out_f, out_p = fast(z, y), plain(z, y)
        torch.testing.assert_close(out_f, out_p)
        probe = torch.randn_like(out_p)
        g_f = torch.autograd.grad((out_f * probe).sum(), list(fast.parameters()))
        g_p = torch.autograd.grad((out_p * probe).sum(), list(plain.parameters()))
        for (name, _), a, b in zip(fast.named_parameters(), g_f, g_p):
            torch.testing.assert_close(a, b, msg=lambda m, n=name: f"{n}: {m}")
    if spec.g_arch == "upconv":  # 16 / 36 of the upsample convolutions' work (the other layers: the same)
        flops = []
        for g in (fast, plain):
            with FlopCounterMode(display=False) as counter:
                g(z, y)
            flops.append(counter.get_total_flops())
        assert 16 / 36 < flops[0] / flops[1] < 0.5, flops


# --- D's dropout on a CPU: masks cut from 32-bit random words (fastacgan.models.Dropout) ---


def _masks(p: float, shape=(64, 256, 16, 16), dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    x = torch.ones(shape, dtype=dtype, requires_grad=True)
    y = Dropout(p)(x)
    return x, y


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75, 1 / 256])
def test_dropout_keeps_each_element_with_probability_1_minus_p(p):
    x, y = _masks(p)
    kept = (y != 0).flatten().double()
    n = kept.numel() // 4
    sigma = (p * (1 - p) / n) ** 0.5
    # each of the four bytes of a random word on its own (a biased byte, e.g. a word's sign bit, fails one)
    for lane, rate in enumerate(kept.view(-1, 4).mean(0).tolist()):
        assert abs(rate - (1 - p)) < 6 * sigma, (lane, rate)
    # neighbours are independent: a pair is kept together with probability (1 - p)^2
    pairs = (kept[:-1] * kept[1:]).mean().item()
    assert abs(pairs - (1 - p) ** 2) < 6 * (2 * p * (1 - p) / n) ** 0.5 + 1e-3
    assert torch.equal(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))  # survivors scaled by 1 / (1 - p)


def test_dropout_gradient_is_the_mask_and_draws_come_from_the_global_generator():
    x, y = _masks(0.25, shape=(8, 16, 5, 7))
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, g * (y != 0) / 0.75)
    _, again = _masks(0.25, shape=(8, 16, 5, 7))  # torch.manual_seed decides the mask (checkpoints restore it)
    _, other = _masks(0.25, shape=(8, 16, 5, 7), seed=1)
    assert torch.equal(y, again) and not torch.equal(y, other)


def test_dropout_in_half_precision_rounds_as_nn_dropout():
    x = torch.randn(4096, dtype=torch.bfloat16)
    for p in (0.25, 0.5):  # 4/3 is not a bf16 number (scaled in float, rounded once), 2 is
        torch.manual_seed(0)
        y = Dropout(p)(x)
        kept = y != 0
        assert y.dtype == torch.bfloat16 and 0.4 < kept.float().mean() < 0.8
        assert torch.equal(y[kept], (x[kept].float() * (1 / (1 - p))).bfloat16())


def test_dropout_falls_back_to_nn_dropout():
    x = torch.randn(64, 32, 8, 8)
    for p in (0.2, 0.0, 1.0):  # not a multiple of 1/256, nothing, everything: nn.Dropout's own draws
        torch.manual_seed(0)
        ours = Dropout(p)(x)
        torch.manual_seed(0)
        assert torch.equal(ours, torch.nn.Dropout(p)(x)), p
    assert torch.equal(Dropout(0.5).eval()(x), x)


def test_dropout_compiled_draws_the_eager_masks():
    """The compiled CPU step (aot_eager, as the tests run it) must see the masks the eager step sees."""
    x = torch.randn(16, 32, 6, 6)
    torch.manual_seed(3)
    eager = Dropout(0.25)(x)
    torch.manual_seed(3)
    compiled = torch.compile(Dropout(0.25), backend="aot_eager", fullgraph=True)(x)
    assert torch.equal(eager, compiled)


def test_discriminator_dropout_choice():
    spec = spec_for("cifar10", classes=4, width=0.25)
    fast, plain = Discriminator(spec), Discriminator(spec, fast_dropout=False)
    assert sum(isinstance(m, Dropout) for m in fast.modules()) == 5
    drops = [m for m in plain.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 5 and all(type(m) is torch.nn.Dropout for m in drops)
    assert fast.state_dict().keys() == plain.state_dict().keys()
