"""fastacgan.kernels: fused ops for AC-GAN training. Imports only torch and triton.

- acgan_loss: sigmoid-BCE + softmax-CE of the discriminator's two heads, with the statistics, one launch
- spectral_norm / SpectralNormGroup / spectral_normalize / spectral_norm_sigma: spectral normalisation of
  every layer of a model at once (three launches per power iteration and one for all the divisions W / sigma,
  each spread over the whole GPU; two for the backward); a drop-in for
  torch.nn.utils.parametrizations.spectral_norm
Each op falls back to its plain-PyTorch reference (`*_reference`) on non-CUDA tensors, and on GPUs older than
Triton supports (compute capability below 7.0: `triton_supports(device)` says); spectral_normalize, on CPU tensors
outside torch.compile, runs `spectral_normalize_eager`, the reference's forward with a hand-written backward.
"""

from ._dispatch import triton_supports
from .acgan_loss import STAT_NAMES, acgan_loss, acgan_loss_fused, acgan_loss_reference
from .spectral_norm import (
    SpectralNorm,
    SpectralNormGroup,
    spectral_norm,
    spectral_norm_sigma,
    spectral_norm_sigma_fused,
    spectral_norm_sigma_reference,
    spectral_normalize,
    spectral_normalize_eager,
    spectral_normalize_fused,
    spectral_normalize_reference,
)

__all__ = [
    "STAT_NAMES",
    "SpectralNorm",
    "SpectralNormGroup",
    "acgan_loss",
    "acgan_loss_fused",
    "acgan_loss_reference",
    "spectral_norm",
    "spectral_norm_sigma",
    "spectral_norm_sigma_fused",
    "spectral_norm_sigma_reference",
    "spectral_normalize",
    "spectral_normalize_eager",
    "spectral_normalize_fused",
    "spectral_normalize_reference",
    "triton_supports",
]
