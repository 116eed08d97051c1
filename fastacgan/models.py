"""AC-GAN generator and discriminator, built from a `ModelSpec`.

Two generator families cover the reference implementations in the seeds:
- "tconv":  Linear(z') -> [c0,1,1] -> ConvTranspose(k=s0) -> s0 x s0 -> ConvTranspose(4,2,1) ... -> tanh
            (the PyTorch CIFAR-10 ACGAN and the ImageNet one: transposed convolutions, BatchNorm)
- "upconv": Linear(z') -> [c0,s0,s0] -> (Upsample x2, Conv3x3, BN, ReLU) ... -> Conv3x3 -> tanh
            (the Keras MNIST ACGAN and the ISIC 64/128 one: no checkerboard artefacts)
and two discriminator families:
- "pairs":   3x3 convs alternating stride 2 and 1, widths doubling every conv, BN + dropout (CIFAR-10 seed)
- "strided": one stride-2 conv per halving (k3 or k4), optional stride-1 tail, optional spectral norm
The discriminator returns (source logit [B], class logits [B, K]); losses are computed from logits.

G's layers come in two forms with the same parameters, state_dict and function: PyTorch's plain layers (what
the reference implementations run) and exact rewrites that are faster (`fast=True`, the default): the first
transposed convolution from a 1x1 map as a matrix product (StemTranspose), and each x2 nearest upsample +
3x3 convolution as one stride-2 transposed convolution with 4x4 kernels on the small map (UpsampleConv2d: 2.25x
fewer FLOPs; these layers are 75-94% of an upconv preset's training FLOPs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import SpectralNormGroup, spectral_norm

CONDITIONING = ("embed-mul", "onehot-concat", "onehot-replace")


@dataclass(frozen=True)
class ModelSpec:
    image_size: int  # output / input resolution (square)
    channels: int  # 1 (greyscale) or 3 (RGB)
    num_classes: int  # K
    nz: int  # noise dimension
    conditioning: str  # one of CONDITIONING
    g_arch: str  # "tconv" | "upconv"
    g_base: int  # width of G's last hidden feature map; widths double towards the input
    g_cap: int  # upper bound on any G width
    d_arch: str  # "pairs" | "strided"
    d_base: int  # width of D's first conv; widths double per conv ("pairs") or per stage ("strided")
    d_cap: int  # upper bound on any D width
    d_kernel: int  # 3 or 4 for "strided"; "pairs" always uses 3
    d_tail: bool  # "strided": one extra stride-1 conv at the end (Keras MNIST D)
    d_bn: bool  # BatchNorm after every D conv but the first
    d_dropout: float  # dropout after every D conv but the first (0 = none)
    d_sn: bool  # spectral norm on every D conv and linear layer

    def to_dict(self) -> dict:
        return asdict(self)


def start_size(image_size: int) -> int:
    """Size of G's first feature map: halve while even and above 7 (28 -> 7, 32 -> 4, 64 -> 4)."""
    s = image_size
    while s > 7 and s % 2 == 0:
        s //= 2
    return s


def check_options(conditioning: str, image_size: int, channels: int) -> None:
    """Raise ValueError naming the first of these options the models cannot be built with (each as the spec holds
    it; the command line's checked before the data is read, where given)."""
    if conditioning not in CONDITIONING:
        raise ValueError(f"--conditioning must be one of {', '.join(CONDITIONING)}, got {conditioning!r}")
    if image_size < 8 or start_size(image_size) == image_size:
        raise ValueError(f"--image-size {image_size} is not supported: use s * 2**n with n >= 1 (16, 28, 32, 64...)")
    if channels not in (1, 3):
        raise ValueError(f"--channels must be 1 or 3, got {channels}")


def validate_spec(spec: ModelSpec) -> None:
    """Raise ValueError naming the option that makes the spec unbuildable."""
    check_options(spec.conditioning, spec.image_size, spec.channels)
    if spec.conditioning == "onehot-replace" and spec.nz < spec.num_classes:
        raise ValueError(
            f"--conditioning onehot-replace writes the one-hot label into the first K noise entries, so --nz "
            f"({spec.nz}) must be at least the number of classes ({spec.num_classes})"
        )
    if spec.g_arch not in ("tconv", "upconv") or spec.d_arch not in ("pairs", "strided"):
        raise ValueError(f"unknown architecture g_arch={spec.g_arch!r} d_arch={spec.d_arch!r}")
    if spec.num_classes < 1:
        raise ValueError("the data set must have at least one class")


def init_weights(m: nn.Module) -> None:
    """DCGAN initialisation, as in the reference implementations: N(0, 0.02) weights, BN gamma N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(w, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, 0.0, 1.0)


class StemTranspose(nn.ConvTranspose2d):
    """The generator's first transposed convolution, from a 1x1 map (stride 1, no padding), as one matrix product:
    out[b, o, y, x] = sum_c h[b, c] W[c, o, y, x] + bias[o]. The same parameters and state_dict as the
    nn.ConvTranspose2d it stands for. A 1x1 input is NCHW and channels-last at once, and on it PyTorch's meta
    kernels (what torch.compile plans with) and cuDNN disagree about the layout of the weight gradient of a
    channels-last transposed convolution: the compiled backward failed its stride check (H100, torch 2.11)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1) or self.stride != (1, 1) or self.padding != (0, 0):
            return super().forward(x)
        b, cin = x.shape[0], self.in_channels
        y = (x.reshape(b, cin) @ self.weight.reshape(cin, -1)).view(b, self.out_channels, *self.kernel_size)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def _fold3(w: torch.Tensor, dim: int) -> torch.Tensor:
    """A 3-tap axis (w0, w1, w2) of a kernel that reads a x2 nearest-upsampled map, as the 4 taps of a stride-2
    transposed convolution of the map itself. Output row 2m reads upsampled rows 2m-1, 2m, 2m+1 = input rows m-1,
    m, m: taps w0 on row m-1, w1 + w2 on row m; row 2m+1 reads input rows m, m, m+1: w0 + w1 on row m, w2 on row
    m+1. A transposed convolution with stride 2 and padding 1 sends input row i to output row 2i - 1 + t through
    tap t, so row 2m gets tap 1 from row m and tap 3 from row m-1, and row 2m+1 tap 2 from row m and tap 0 from
    row m+1: taps (w2, w1 + w2, w0 + w1, w0)."""
    w0, w1, w2 = w.unbind(dim)
    return torch.stack([w2, w1 + w2, w0 + w1, w0], dim)


class UpsampleConv2d(nn.Conv2d):
    """nn.Upsample(scale_factor=2, mode="nearest") followed by this 3x3 convolution (stride 1, padding 1),
    without making the upsampled map: one transposed convolution (stride 2, padding 1) of the input with a 4x4
    kernel folded from the 3x3 one (`_fold3`, both axes). Each output pixel reads a 2x2 window of the input:
    16 multiply-adds per output pixel and input channel instead of 36, in one library call forward and the
    library's own kernels backward (nothing to crop or interleave); the same parameters as the nn.Conv2d it
    replaces, and the same result to rounding (the folded taps are sums of weights).
    On a CPU, maps of at most `cpu_plain_max_pixels` pixels (the isic presets' first 4x4 map) are upsampled and
    convolved as written: there oneDNN's 3x3 convolution of the 8x8 map beats its transposed convolution of the
    4x4 one, fewer FLOPs and all (isic64's 512 -> 512 layer, batch 16, forward + backward: 21 against 42 ms in
    bf16, 55 against 49 in fp32, on a 2-core CPU); from 7x7 maps on, the transposed convolution wins (1.5-8x)."""

    cpu_plain_max_pixels = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        foldable = (self.kernel_size, self.stride, self.padding, self.dilation, self.groups, self.padding_mode) == (
            (3, 3), (1, 1), (1, 1), (1, 1), 1, "zeros")  # fmt: skip
        cpu = x.device.type == "cpu"
        if not foldable or (cpu and x.shape[-2] * x.shape[-1] <= self.cpu_plain_max_pixels):
            return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if cpu and not channels_last:
            k = _fold_by_matmul(self.weight)
        else:  # elementwise: one fused kernel under torch.compile on a GPU (and no TF32 matmul to round the taps)
            k = _fold3(_fold3(self.weight, 2), 3).transpose(0, 1)  # [ci, co, 4, 4]: a transposed convolution's
            # layout; channels-last as a channels-last ConvTranspose2d's weight is
            k = k.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        return F.conv_transpose2d(x, k, self.bias, stride=2, padding=1)  # [B, co, 2H, 2W]


# _fold3 on both axes as a [16, 9] matrix of 0s and 1s: kron(F, F), F = the 4x3 fold of one axis
_FOLD_MATRIX = torch.kron(*[torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])] * 2)


def _fold_by_matmul(w: torch.Tensor) -> torch.Tensor:
    """`_fold3` on both axes and the transpose to [ci, co, 4, 4], as one batched matrix product of the 9 taps
    with `_FOLD_MATRIX` (every product exact, sums of at most 4 weights), in the weight's dtype (autocast off: the
    convolution casts the folded taps once). On a CPU a quarter of the time of the elementwise fold and its
    backward (5 ms against 20-23 for a 512 x 512 layer, 0.18 against 0.46 for 64 x 64, on a 2-core CPU), whose
    stacks, slices and strided copies were half of a 4x4-map layer's time."""
    co, ci = w.shape[:2]
    with torch.autocast(w.device.type, enabled=False):
        k = torch.matmul(w.reshape(co, ci, 9).transpose(0, 1), _FOLD_MATRIX.to(w).T)  # [ci, co, 16]
    return k.view(ci, co, 4, 4)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask, on a CPU, is cut from 32-bit random words, one byte an element: an element is kept
    when its byte is >= 256 p. For rates that are multiples of 1/256 (the presets' 0.25 and 0.5) that is exactly
    nn.Dropout's distribution, drawn from another stream of the same generator (torch.manual_seed, checkpoints'
    RNG state), at a quarter of the draws: PyTorch's CPU bernoulli_ draws a 64-bit number an element, and was a
    third of a cifar10 training step on a 2-core CPU (6.5 ms forward + backward for [64, 512, 4, 4]; this: 1.3).
    Elsewhere (CUDA's dropout is Philox, fused by Inductor), for other rates and in eval mode: nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.p * 256
        if not self.training or x.device.type != "cpu" or self.inplace or not 0 < q < 256 or q != int(q):
            return super().forward(x)
        n = x.numel()
        byte = torch.randint(-(2**31), 2**31, ((n + 3) // 4,), dtype=torch.int32, device=x.device).view(torch.uint8)[:n]
        keep = (byte >= int(q)).view(x.shape)
        scale = 1 / (1 - self.p)
        m, _ = math.frexp(scale)  # scale = m 2^e, 0.5 <= m < 1: exact in x's dtype when m has few enough bits
        if x.dtype in (torch.float32, torch.float64) or (2 * m / torch.finfo(x.dtype).eps).is_integer():
            return x * keep.to(x.dtype).mul_(scale)  # one multiply forward and one backward
        return (x * keep).mul_(scale)  # bf16/fp16 and a scale they cannot hold (4/3): rounded once, as nn.Dropout


class Generator(nn.Module):
    def __init__(self, spec: ModelSpec, fast: bool = True):
        """fast: G's exact rewrites (StemTranspose, UpsampleConv2d: the same parameters and function, fewer
        launches or FLOPs); False: PyTorch's plain layers (the reference implementations')."""
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        k, nz = spec.num_classes, spec.nz
        self.embed = nn.Embedding(k, nz) if spec.conditioning == "embed-mul" else None
        nin = nz + k if spec.conditioning == "onehot-concat" else nz
        s0 = start_size(spec.image_size)
        n_up = int(round(math.log2(spec.image_size // s0)))
        # hidden widths, first feature map first: g_base * 2^(n_up-1) ... g_base
        widths = [min(spec.g_cap, spec.g_base * 2 ** (n_up - 1 - i)) for i in range(n_up)]
        layers: list[nn.Module] = []
        if spec.g_arch == "tconv":
            c_lin = min(spec.g_cap, 2 * widths[0])
            self.fc = nn.Linear(nin, c_lin)  # [B, c_lin] viewed as [B, c_lin, 1, 1]
            self.fc_shape = (c_lin, 1, 1)
            cin = c_lin
            for i, w in enumerate(widths):
                stem = i == 0  # 1x1 -> s0 x s0
                layers += [
                    (StemTranspose(cin, w, s0) if fast else nn.ConvTranspose2d(cin, w, s0))
                    if stem
                    else nn.ConvTranspose2d(cin, w, 4, 2, 1),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                ]
                cin = w
            layers += [nn.ConvTranspose2d(cin, spec.channels, 4, 2, 1), nn.Tanh()]
        else:
            self.fc = nn.Linear(nin, widths[0] * s0 * s0, bias=False)
            self.fc_shape = (widths[0], s0, s0)
            layers += [nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
            cin = widths[0]
            for w in widths:
                layers += [
                    # fast: the upsample happens inside UpsampleConv2d; the empty slot keeps the state_dict keys
                    nn.Identity() if fast else nn.Upsample(scale_factor=2, mode="nearest"),
                    (UpsampleConv2d if fast else nn.Conv2d)(cin, w, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                ]
                cin = w
            layers += [nn.Conv2d(cin, spec.channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def condition(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z [B, nz], labels [B] int64 -> G's input [B, nin]."""
        mode = self.spec.conditioning
        if mode == "embed-mul":
            return z * self.embed(labels)
        onehot = F.one_hot(labels, self.spec.num_classes).to(z.dtype)
        if mode == "onehot-concat":
            return torch.cat([z, onehot], dim=1)
        return torch.cat([onehot, z[:, self.spec.num_classes :]], dim=1)  # onehot-replace

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(self.condition(z, labels)).view(z.shape[0], *self.fc_shape)
        return self.net(h)  # [B, C, H, W] in [-1, 1]


def d_layers(spec: ModelSpec) -> list[tuple[int, int, int]]:
    """(out_channels, kernel, stride) for each D conv."""
    out: list[tuple[int, int, int]] = []
    s, i = spec.image_size, 0
    if spec.d_arch == "pairs":
        while s > 4:  # each halving: a stride-2 conv then a stride-1 conv, widths doubling every conv
            out.append((min(spec.d_cap, spec.d_base * 2**i), 3, 2))
            out.append((min(spec.d_cap, spec.d_base * 2 ** (i + 1)), 3, 1))
            s, i = (s + 1) // 2, i + 2
        return out
    k = spec.d_kernel
    while s > 4:
        out.append((min(spec.d_cap, spec.d_base * 2**i), k, 2))
        s, i = (s + 2 - k) // 2 + 1, i + 1
    if spec.d_tail:
        out.append((min(spec.d_cap, spec.d_base * 2**i), 3, 1))
    return out


class Discriminator(nn.Module):
    def __init__(self, spec: ModelSpec, sn_impl: str = "fused", fast_dropout: bool = True):
        """sn_impl: "fused" (fastacgan.kernels, grouped launches) or "torch" (PyTorch's parametrization);
        both have the same state_dict keys and buffers, so weights move freely between them.
        fast_dropout: `Dropout` (on a CPU, masks cut from fewer random draws); False: nn.Dropout's own stream."""
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        if sn_impl not in ("fused", "torch"):
            raise ValueError(f"sn_impl must be 'fused' or 'torch', got {sn_impl!r}")
        torch_sn = nn.utils.parametrizations.spectral_norm
        sn = (spectral_norm if sn_impl == "fused" else torch_sn) if spec.d_sn else (lambda m: m)
        layers: list[nn.Module] = []
        cin, s = spec.channels, spec.image_size
        for j, (w, k, stride) in enumerate(d_layers(spec)):
            layers.append(sn(nn.Conv2d(cin, w, k, stride, 1)))
            if j > 0 and spec.d_bn:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if j > 0 and spec.d_dropout > 0:
                layers.append((Dropout if fast_dropout else nn.Dropout)(spec.d_dropout))
            cin, s = w, (s + 2 - k) // stride + 1
        self.features = nn.Sequential(*layers)
        n_feat = cin * s * s
        self.src_head = sn(nn.Linear(n_feat, 1))  # real/fake logit
        self.cls_head = sn(nn.Linear(n_feat, spec.num_classes))  # class logits
        self.apply(init_weights)
        # every SN layer's power iteration and W / sigma at once: 4 launches per forward, 2 in the backward
        # (PyTorch's parametrization: 22 ops per layer)
        self.sn_group = SpectralNormGroup(self) if spec.d_sn and sn_impl == "fused" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sn_group is not None:
            # under autocast every SN layer (conv, linear) casts its weight to the autocast dtype: make the
            # normalised weights in it directly (the same rounding, one write instead of a write and a cast)
            dev = x.device.type
            dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
            self.sn_group.update(self.training, dtype)
        h = self.features(x).flatten(1)
        return self.src_head(h).squeeze(1), self.cls_head(h)  # [B], [B, K]


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
