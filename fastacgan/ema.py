"""G's weights averaged over the run (--g-ema DECAY): the exponential moving average of G that BigGAN and StyleGAN
sample from (it smooths out the last steps' oscillation of a GAN's training).

    avg <- beta_t * avg + (1 - beta_t) * G,     beta_t = min(DECAY, (1 + t) / (10 + t)),  t = G's updates so far

for every parameter and floating-point buffer (BatchNorm's running statistics: the average's BatchNorm uses the
average of G's), the other buffers copied (BatchNorm's update count). The ramp (TensorFlow's
ExponentialMovingAverage with num_updates) lets the average follow G early in a run, where a fixed decay of 0.999
would keep the initial weights' mark for thousands of steps. The update reads t from the device and never syncs
with the host: it is part of the training step, inside its CUDA graph with --graph-step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class MovingAverage:
    """A copy of `source` (in eval mode, no gradients) that update() moves towards it."""

    def __init__(self, source: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"--g-ema must be > 0 and < 1, got {decay:g}")
        self.decay = decay
        self.module = copy.deepcopy(source).requires_grad_(False).eval()
        pairs = list(zip(self._tensors(self.module), self._tensors(source)))
        self._avg = [a for a, s in pairs if a.is_floating_point()]
        self._src = [s for a, s in pairs if a.is_floating_point()]
        self._copy_to = [a for a, s in pairs if not a.is_floating_point()]
        self._copy_from = [s for a, s in pairs if not a.is_floating_point()]

    @staticmethod
    def _tensors(m: nn.Module) -> list[torch.Tensor]:
        return [*m.parameters(), *m.buffers()]

    @torch.no_grad()
    def update(self, updates: torch.Tensor) -> None:
        """One step of the average; updates: G's updates so far (a device tensor: its value is not read here)."""
        t = updates.to(torch.float32)
        beta = torch.clamp((1 + t) / (10 + t), max=self.decay)
        torch._foreach_mul_(self._avg, beta)
        torch._foreach_add_(self._avg, torch._foreach_mul(self._src, 1 - beta))
        if self._copy_to:
            torch._foreach_copy_(self._copy_to, self._copy_from)

    def reset(self) -> None:
        """The average made G itself (a resume of a checkpoint that has none)."""
        with torch.no_grad():
            torch._foreach_copy_(self._avg + self._copy_to, self._src + self._copy_from)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
