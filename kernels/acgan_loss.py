"""The AC-GAN loss: mean BCE-with-logits on the source logit + weight * mean cross-entropy on the class logits.

    loss  = mean_i BCEwithlogits(s_i, t_i) + w * mean_i CE(c_i, y_i)
    stats = [bce, ce, mean_i sigmoid(s_i), mean_i (argmax c_i == y_i)]      float32 [4], no gradient

`acgan_loss` is the public entry point; `acgan_loss_reference` is the plain-PyTorch definition that the
tests, the benchmarks and the CPU path all use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

STAT_NAMES = ("bce", "ce", "d_prob", "acc")


def acgan_loss_reference(
    src_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    target: float | torch.Tensor,
    labels: torch.Tensor,
    cls_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """src_logits [B], cls_logits [B, K], target scalar or [B] in [0, 1], labels [B] int64.

    Returns (loss: float32 scalar, stats: float32 [4] as in STAT_NAMES). Computed in float32 whatever the
    input dtype, so it is stable at any logit magnitude.
    """
    s = src_logits.float()
    c = cls_logits.float()
    t = torch.as_tensor(target, dtype=torch.float32, device=s.device).expand_as(s)
    bce = F.binary_cross_entropy_with_logits(s, t)
    ce = F.cross_entropy(c, labels)
    loss = bce + cls_weight * ce
    with torch.no_grad():
        stats = torch.stack([bce, ce, torch.sigmoid(s).mean(), (c.argmax(1) == labels).float().mean()])
    return loss, stats


def acgan_loss(src_logits, cls_logits, target, labels, cls_weight: float = 1.0):
    """Public entry point (see module docstring)."""
    return acgan_loss_reference(src_logits, cls_logits, target, labels, cls_weight)
