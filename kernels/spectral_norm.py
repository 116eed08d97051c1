"""Spectral normalisation with a fused power iteration: every SN layer of a model in a few launches.

`spectral_normalize(ws, us, vs, dims, n, eps)` returns W_l / sigma_l for every layer (any mix of shapes),
running n power iterations on the buffers u_l, v_l in place, with PyTorch's gradient (u, v held constant);
`spectral_norm_sigma` returns the sigmas alone. On CUDA tensors they run the Triton kernels of
spectral_norm_triton.py (how they work: its docstring), per group of up to 8 layers; elsewhere the reference
in plain PyTorch (on CPU tensors outside torch.compile with a hand-written backward). This file holds that
choice and the nn API; the launchers, their torch.library ops and autograd functions are in
spectral_norm_fused.py, the reference in spectral_norm_reference.py (their names are reached here too).

`spectral_norm(module, ...)` is a drop-in for torch.nn.utils.parametrizations.spectral_norm: the same
buffers and state_dict keys (`parametrizations.weight.original`, `parametrizations.weight.0._u`, `._v`), the
same initialisation (same RNG draws) and the same train/eval behaviour. `SpectralNormGroup(model).update()`
normalises all of a model's layers at once; each layer then takes its weight on its next access.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ._dispatch import plain_ops_only
from .spectral_norm_fused import (  # noqa: F401 - the launchers, for the tests and tools that reach them here
    _WTU,
    _WV,
    GROUP,
    HAS_TRITON,
    _layout,
    _normalize_grad_impl,
    _normalize_impl,
    _power_impl,
    _sigma_grad_impl,
    _use_fused,
    spectral_norm_sigma_fused,
    spectral_normalize_fused,
)
from .spectral_norm_reference import (  # noqa: F401 - as above
    _matrix_to_weight,
    spectral_norm_sigma_reference,
    spectral_normalize_eager,
    spectral_normalize_reference,
    weight_to_matrix,
)


def spectral_norm_sigma(ws, us, vs, dims, n_power_iterations: int, eps: float = 1e-12) -> torch.Tensor:
    """sigma [L] for the weights `ws` (any mix of shapes), running `n_power_iterations` on the buffers us, vs
    in place first (0 = eval: use them as they are). Fused on CUDA, the reference elsewhere."""
    fused = not plain_ops_only() and _use_fused(ws, us, vs, dims)
    fn = spectral_norm_sigma_fused if fused else spectral_norm_sigma_reference
    return fn(ws, us, vs, dims, n_power_iterations, eps)


def spectral_normalize(ws, us, vs, dims, n_power_iterations: int, eps: float = 1e-12,
                       out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """The spectrally normalised weights [W_l / sigma_l] of every layer (any mix of shapes), running
    `n_power_iterations` on the buffers us, vs in place first (0 = eval), with PyTorch's gradient (u, v held
    constant). out_dtype: the dtype of the results (e.g. the autocast dtype, saving a cast of each weight; the
    division is done in fp32 either way). Fused on CUDA (4 launches forward, 2 backward, for up to 8 layers);
    on CPU tensors called eagerly spectral_normalize_eager (the reference's forward, a leaner backward); the
    reference elsewhere (under torch.compile, which fuses its ops)."""
    if out_dtype is not None and not out_dtype.is_floating_point:
        raise ValueError(f"spectral_normalize: out_dtype must be a floating-point dtype, got {out_dtype}")
    if plain_ops_only():  # (torch.func.grad, vmap, torch.jit.trace: only PyTorch's own ops run there)
        fn = spectral_normalize_reference
    elif _use_fused(ws, us, vs, dims):
        fn = spectral_normalize_fused
    elif not torch.compiler.is_compiling() and all(w.device.type == "cpu" for w in ws):
        fn = spectral_normalize_eager
    else:
        fn = spectral_normalize_reference
    return fn(ws, us, vs, dims, n_power_iterations, eps, out_dtype)


# ------------------------------------------------------------------------------------------------ nn API


class SpectralNorm(nn.Module):
    """A parametrization with the buffers, initialisation and behaviour of PyTorch's `_SpectralNorm`."""

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got {n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        self.pending: torch.Tensor | None = None  # W / sigma made by a SpectralNormGroup for the next access
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            mat = weight_to_matrix(weight, self.dim)
            h, w = mat.shape
            u = mat.new_empty(h).normal_(0, 1)  # the same draws, in the same order, as PyTorch
            v = mat.new_empty(w).normal_(0, 1)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
            with torch.no_grad():
                spectral_norm_sigma([weight.detach()], [self._u], [self._v], [self.dim], 15, self.eps)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        out, self.pending = self.pending, None
        if out is None:
            n = self.n_power_iterations if self.training else 0
            out = spectral_normalize([weight], [self._u], [self._v], [self.dim], n, self.eps)[0]
        return out

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def __getstate__(self):
        """A copy (copy.deepcopy: an EMA model, a snapshot) leaves out the W / sigma a SpectralNormGroup made for the
        next forward: a tensor of the original's graph, which deepcopy refused ("Only Tensors created explicitly by
        the user ... support the deepcopy protocol"); the copy computes its own."""
        return {**super().__getstate__(), "pending": None}


def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> nn.Module:  # fmt: skip
    """Drop-in for torch.nn.utils.parametrizations.spectral_norm, backed by the fused power iteration."""
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, name, SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


class SpectralNormGroup:
    """Every `SpectralNorm` (2-D+ weights, first in its parametrization chain) in a model, updated together:
    `update()` runs one grouped power iteration (training) or sigma evaluation (eval), divides every weight by
    its sigma, and hands each layer its normalised weight for its next forward. Call it once at the start of
    the model's forward, as PyTorch updates every layer once per forward."""

    def __init__(self, model: nn.Module):
        self.entries: list[tuple[nn.Module, str, SpectralNorm]] = []
        for mod in model.modules():
            if parametrize.is_parametrized(mod):
                for name, plist in mod.parametrizations.items():
                    if isinstance(plist[0], SpectralNorm) and hasattr(plist[0], "_u"):  # its input: the raw weight
                        self.entries.append((mod, name, plist[0]))
        keys = {(p.n_power_iterations, p.eps) for _, _, p in self.entries}
        if len(keys) > 1:
            raise ValueError(f"SpectralNormGroup needs one n_power_iterations and eps for all layers, got {keys}")

    def __len__(self) -> int:
        return len(self.entries)

    def update(self, training: bool, out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """The normalised weights (also handed to the layers). out_dtype: make them in this dtype (the autocast
        dtype, where every layer's op casts its weight to it: the cast is then a no-op)."""
        if not self.entries:
            return []
        first = self.entries[0][2]
        ws = [mod.parametrizations[name].original for mod, name, _ in self.entries]
        n = first.n_power_iterations if training else 0
        ys = spectral_normalize(ws, [p._u for *_, p in self.entries], [p._v for *_, p in self.entries],
                                [p.dim for *_, p in self.entries], n, first.eps, out_dtype)  # fmt: skip
        for y, (_, _, p) in zip(ys, self.entries):
            p.pending = y
        return ys
