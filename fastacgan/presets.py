"""The architecture presets: one per set-up of the reference implementations (../shared/seeds/), and the built-in
digits' small one, each a resolution, noise size, conditioning, length and the ModelSpec fields of its networks;
`pick_preset` is what --preset auto resolves to. config.resolve_spec turns a preset and the options into a
ModelSpec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    image_size: int
    nz: int
    conditioning: str
    epochs: int
    arch: dict  # the remaining ModelSpec fields
    about: str


# fmt: off
_DCGAN_PAIRS = dict(g_arch="tconv", g_base=48, g_cap=1024, d_arch="pairs", d_base=16, d_cap=512, d_kernel=3,
                    d_tail=False, d_bn=True, d_dropout=0.5, d_sn=False)
_KERAS_MNIST = dict(g_arch="upconv", g_base=64, g_cap=512, d_arch="strided", d_base=16, d_cap=512, d_kernel=3,
                    d_tail=True, d_bn=True, d_dropout=0.25, d_sn=False)
_ISIC_SN = dict(g_arch="upconv", g_base=64, g_cap=512, d_arch="strided", d_base=64, d_cap=512, d_kernel=4,
                d_tail=False, d_bn=False, d_dropout=0.0, d_sn=True)
# fmt: on

PRESETS: dict[str, Preset] = {
    "digits": Preset(
        28,
        64,
        "embed-mul",
        8,
        {**_KERAS_MNIST, "g_base": 32, "d_base": 16},
        "built-in synthetic digits, a half-width MNIST network sized for a CPU",
    ),
    "mnist": Preset(
        28,
        100,
        "embed-mul",
        50,
        _KERAS_MNIST,
        "28x28 MNIST: Keras-style upsample+conv G with embedding x noise, strided-conv D (seeds 002/003)",
    ),
    "cifar10": Preset(
        32,
        100,
        "onehot-concat",
        100,
        _DCGAN_PAIRS,
        "32x32 CIFAR-10: the PyTorch ACGAN (transposed convs + BN in G, BN + dropout in D; seed 001)",
    ),
    "isic64": Preset(
        64,
        100,
        "embed-mul",
        200,
        _ISIC_SN,
        "64x64 ISIC: upsample+conv G, spectral-norm D, embedding x noise (seed 000)",
    ),
    "isic128": Preset(
        128,
        100,
        "embed-mul",
        200,
        _ISIC_SN,
        "128x128 ISIC: upsample+conv G, spectral-norm D, embedding x noise (seed 000)",
    ),
    "imagenet128": Preset(
        128,
        110,
        "onehot-replace",
        100,
        {**_DCGAN_PAIRS, "g_base": 32, "g_cap": 768},
        "128x128 ImageNet subsets: transposed-conv G, one-hot in the first K noise entries (seed 004)",
    ),
}


def pick_preset(is_builtin: bool, first_image_size: int, channels: int) -> str:
    """The preset `auto` resolves to: built-in -> digits; else by the data's native resolution."""
    if is_builtin:
        return "digits"
    if first_image_size <= 28 and channels == 1:
        return "mnist"
    if first_image_size <= 48:
        return "cifar10"
    if first_image_size <= 96:
        return "isic64"
    return "isic128"
