"""fastacgan.kernels: fused ops for AC-GAN training. Imports only torch and triton."""

from .acgan_loss import STAT_NAMES, acgan_loss, acgan_loss_reference

__all__ = ["STAT_NAMES", "acgan_loss", "acgan_loss_reference"]
