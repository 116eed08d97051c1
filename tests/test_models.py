import pytest
import torch

from fastacgan.config import PRESETS, TrainConfig, resolve_spec
from fastacgan.models import Discriminator, Generator, ModelSpec, count_params, d_layers, start_size


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
        assert any(isinstance(m, torch.nn.Upsample) for m in Generator(spec).modules())
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
