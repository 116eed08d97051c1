"""What the fast path falls back on, so that a speed feature that fails costs speed, not the run: a region that
torch.compile cannot compile runs eagerly (with a warning), and the fused Triton kernels are checked against their
references once on the device before a run uses them (step.ACGANStep takes the PyTorch ops where they fail).
"""

from __future__ import annotations

import warnings

import torch

from . import kernels
from .devices import memory_error


class CompiledRegion:
    """torch.compile of one region of the step. Compilation happens on the first call; if it fails there, the
    region warns once and runs eagerly from then on, so a compiler problem costs speed, not the run. Running out of
    memory is not a compiler problem: it is raised (the batch does not fit, and running eagerly would hide that
    behind a warning, a slower run and, as likely as not, the same error)."""

    def __init__(self, fn, **compile_kwargs):
        self.eager = fn
        self.fn = torch.compile(fn, **compile_kwargs)
        self.first = True

    def __call__(self, *args):
        if not self.first:
            return self.fn(*args)
        self.first = False
        try:
            return self.fn(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: report it and go on eagerly
            if memory_error(e):  # the batch does not fit, compiled or not (train.main says what to do)
                raise
            name = getattr(self.eager, "__name__", "a region").lstrip("_")
            why = " ".join(line.strip() for line in str(e).splitlines()[:2])[:240]
            warnings.warn(f"torch.compile of {name} failed ({type(e).__name__}: {why}); "
                          f"it runs eagerly (--no-compile silences this)", stacklevel=2)  # fmt: skip
            self.fn = self.eager
            return self.eager(*args)


def check_fused_kernels(device: torch.device) -> str | None:
    """Run the fused loss and spectral-norm kernels once on small awkward shapes against their references:
    None if they agree, else what went wrong (a compiler error, a wrong answer)."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device)

    try:
        src, cls = rand(37).requires_grad_(), rand(37, 11).requires_grad_()
        labels = torch.randint(11, (37,), generator=g).to(device)
        got, want = [], []
        for fn, out in ((kernels.acgan_loss_fused, got), (kernels.acgan_loss_reference, want)):
            loss, stats = fn(src, cls, 0.9, labels, 1.3)
            out += [loss.detach(), stats, *torch.autograd.grad(loss, (src, cls))]
        ws = [rand(12, 5, 3, 3).requires_grad_(), rand(7, 30).requires_grad_()]
        gys = [rand(12, 5, 3, 3), rand(7, 30)]
        for fn, out in ((kernels.spectral_normalize_fused, got), (kernels.spectral_normalize_reference, want)):
            us = [torch.nn.functional.normalize(torch.ones(n, device=device), dim=0) for n in (12, 7)]
            vs = [torch.nn.functional.normalize(torch.ones(n, device=device), dim=0) for n in (45, 30)]
            ys = fn(ws, us, vs, [0, 0], 2, 1e-12)  # what the discriminator uses: W / sigma, and its backward
            out += [y.detach() for y in ys] + [*us, *vs, *torch.autograd.grad(ys, ws, gys)]
        for a, b in zip(got, want):
            if not torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4):
                return f"a result differs from the reference by {(a.float() - b.float()).abs().max().item():.3g}"
    except Exception as e:  # noqa: BLE001 - e.g. a Triton build that cannot compile them for this GPU
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return None
