"""Spectral normalisation with a fused power iteration: every SN layer of a model in one launch.

For a weight W viewed as a matrix W_mat [h, w] (dim `dim` first, the rest flattened, as PyTorch does), one
training-mode call runs n power iterations on the persistent buffers u [h], v [w] and returns sigma:
    u <- normalize(W_mat v),  v <- normalize(W_mat^T u)          (n times, in place; PyTorch's order)
    sigma = u^T W_mat v,  d sigma / d W_mat = u v^T               (u, v constants, as in PyTorch)
After the last v update, u^T W_mat v = (W_mat^T u) . v = ||r||^2 / max(||r||, eps) with r = W_mat^T u, so the
kernel gets sigma from the last pass for free. In eval mode (n = 0) it computes u^T W_mat v in one pass.

The grouped kernel gives each layer of a group (up to 8 per launch) one program that streams its weight
through tiles: ~2n reads of the weights in all, one launch for the model instead of ~12 per layer. The
backward (d sigma / d W for every layer) is one launch too. The weight is addressed through its own strides
(contiguous, channels-last, or ConvTranspose's dim=1), so nothing is copied.

`spectral_norm(module, ...)` is a drop-in for torch.nn.utils.parametrizations.spectral_norm: the same
buffers and state_dict keys (`parametrizations.weight.original`, `parametrizations.weight.0._u`, `._v`), the
same initialisation (same RNG draws) and the same train/eval behaviour. `SpectralNormGroup(model).update()`
computes sigma for all of a model's layers at once; each layer then uses it on its next weight access.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover
    HAS_TRITON = False

GROUP = 8  # layers per launch (the kernel's argument slots)

if HAS_TRITON:

    @triton.jit
    def _pick(p, x0, x1, x2, x3, x4, x5, x6, x7):
        """The p-th of eight scalars (pointers or ints)."""
        r = tl.where(p == 1, x1, x0)
        r = tl.where(p == 2, x2, r)
        r = tl.where(p == 3, x3, r)
        r = tl.where(p == 4, x4, r)
        r = tl.where(p == 5, x5, r)
        r = tl.where(p == 6, x6, r)
        r = tl.where(p == 7, x7, r)
        return r

    @triton.jit
    def _w_offsets(ri, cj, R, KW, s_i, s_a, s_y, s_x):
        """Offsets of W_mat[ri, cj]: column j = (a, y, x) over the (A, KH, KW) trailing dims, R = KH * KW."""
        a = cj // R
        rem = cj - a * R
        y = rem // KW
        x = rem - y * KW
        return ri[:, None] * s_i + (a * s_a + y * s_y + x * s_x)[None, :]

    @triton.jit
    def _matvec_store(w_ptr, x_ptr, out_ptr, n_out, n_in, R, KW, s_i, s_a, s_y, s_x,
                      TRANS: tl.constexpr, BO: tl.constexpr, BI: tl.constexpr):  # fmt: skip
        """out = W_mat @ x (TRANS=False, n_out=h) or W_mat^T @ x (TRANS=True, n_out=w), unnormalised;
        returns ||out||^2. fp32 accumulation; BO x BI tiles (outputs x reduction)."""
        nrm2 = tl.zeros([1], tl.float32)
        for o0 in range(0, n_out, BO):
            ro = o0 + tl.arange(0, BO).to(tl.int64)
            om = ro < n_out
            acc = tl.zeros([BO], tl.float32)
            for i0 in range(0, n_in, BI):
                ri = i0 + tl.arange(0, BI).to(tl.int64)
                im = ri < n_in
                xv = tl.load(x_ptr + ri, mask=im, other=0.0)
                if TRANS:  # tile [BI rows, BO cols]
                    offs = _w_offsets(ri, ro, R, KW, s_i, s_a, s_y, s_x)
                    wt = tl.load(w_ptr + offs, mask=im[:, None] & om[None, :], other=0.0).to(tl.float32)
                    acc += tl.sum(wt * xv[:, None], axis=0)
                else:  # tile [BO rows, BI cols]
                    offs = _w_offsets(ro, ri, R, KW, s_i, s_a, s_y, s_x)
                    wt = tl.load(w_ptr + offs, mask=om[:, None] & im[None, :], other=0.0).to(tl.float32)
                    acc += tl.sum(wt * xv[None, :], axis=1)
            tl.store(out_ptr + ro, acc, mask=om)
            nrm2 += tl.sum(acc * acc, axis=0)
        return tl.sum(nrm2, axis=0)

    @triton.jit
    def _scale_store(ptr, n, scale, BLOCK: tl.constexpr):
        for o0 in range(0, n, BLOCK):
            ro = o0 + tl.arange(0, BLOCK)
            m = ro < n
            tl.store(ptr + ro, tl.load(ptr + ro, mask=m, other=0.0) * scale, mask=m)

    @triton.jit
    def _copy(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
        for o0 in range(0, n, BLOCK):
            ro = o0 + tl.arange(0, BLOCK)
            m = ro < n
            tl.store(dst_ptr + ro, tl.load(src_ptr + ro, mask=m, other=0.0), mask=m)

    @triton.jit
    def _sn_power_fwd_kernel(
        W0, W1, W2, W3, W4, W5, W6, W7, U0, U1, U2, U3, U4, U5, U6, U7, V0, V1, V2, V3, V4, V5, V6, V7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7,
        sig_ptr, snap_ptr, snap_stride, hmax, eps,
        N_ITER: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        w_ptr = _pick(pid, W0, W1, W2, W3, W4, W5, W6, W7)
        u_ptr = _pick(pid, U0, U1, U2, U3, U4, U5, U6, U7)
        v_ptr = _pick(pid, V0, V1, V2, V3, V4, V5, V6, V7)
        h = _pick(pid, h0, h1, h2, h3, h4, h5, h6, h7)
        R = _pick(pid, R0, R1, R2, R3, R4, R5, R6, R7)
        w = _pick(pid, A0, A1, A2, A3, A4, A5, A6, A7) * R
        KW = _pick(pid, K0, K1, K2, K3, K4, K5, K6, K7)
        s_i = _pick(pid, si0, si1, si2, si3, si4, si5, si6, si7)
        s_a = _pick(pid, sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7)
        s_y = _pick(pid, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7)
        s_x = _pick(pid, sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7)

        sigma = 0.0
        for _ in range(N_ITER):
            # u <- normalize(W v): written unnormalised, then scaled once its norm is known
            nrm2 = _matvec_store(w_ptr, v_ptr, u_ptr, h, w, R, KW, s_i, s_a, s_y, s_x, False, BH, BW)
            tl.debug_barrier()  # the stores above must be visible to every thread of this program
            _scale_store(u_ptr, h, 1.0 / tl.maximum(tl.sqrt(nrm2), eps), 1024)
            tl.debug_barrier()
            # v <- normalize(W^T u); sigma = u^T W v = ||r||^2 / max(||r||, eps) with r = W^T u
            nrm2 = _matvec_store(w_ptr, u_ptr, v_ptr, w, h, R, KW, s_i, s_a, s_y, s_x, True, BW, BH)
            tl.debug_barrier()
            scale = 1.0 / tl.maximum(tl.sqrt(nrm2), eps)
            _scale_store(v_ptr, w, scale, 1024)
            tl.debug_barrier()
            sigma = nrm2 * scale
        if N_ITER == 0:  # eval: sigma = u^T W v with the stored vectors
            acc = tl.zeros([BH], tl.float32)
            for i0 in range(0, h, BH):
                ri = i0 + tl.arange(0, BH).to(tl.int64)
                rm = ri < h
                uu = tl.load(u_ptr + ri, mask=rm, other=0.0)
                for j0 in range(0, w, BW):
                    cj = j0 + tl.arange(0, BW).to(tl.int64)
                    cm = cj < w
                    wt = tl.load(w_ptr + _w_offsets(ri, cj, R, KW, s_i, s_a, s_y, s_x), mask=rm[:, None] & cm[None, :],
                                 other=0.0).to(tl.float32)  # fmt: skip
                    vv = tl.load(v_ptr + cj, mask=cm, other=0.0)
                    acc += uu * tl.sum(wt * vv[None, :], axis=1)
            sigma = tl.sum(acc, axis=0)
        tl.store(sig_ptr + pid, sigma)
        # snapshot of (u, v) for the backward: later calls update the buffers before this backward runs
        snap = snap_ptr + pid.to(tl.int64) * snap_stride
        _copy(u_ptr, snap, h, 1024)
        _copy(v_ptr, snap + hmax, w, 1024)

    @triton.jit
    def _sn_sigma_bwd_kernel(
        D0, D1, D2, D3, D4, D5, D6, D7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7,
        grad_ptr, snap_ptr, snap_stride, hmax,
        BH: tl.constexpr, BW: tl.constexpr,
    ):  # fmt: skip
        """dW[i, j] = g * u[i] * v[j] for each layer; program (layer, row block)."""
        pid = tl.program_id(0)
        d_ptr = _pick(pid, D0, D1, D2, D3, D4, D5, D6, D7)
        h = _pick(pid, h0, h1, h2, h3, h4, h5, h6, h7)
        R = _pick(pid, R0, R1, R2, R3, R4, R5, R6, R7)
        w = _pick(pid, A0, A1, A2, A3, A4, A5, A6, A7) * R
        KW = _pick(pid, K0, K1, K2, K3, K4, K5, K6, K7)
        s_i = _pick(pid, si0, si1, si2, si3, si4, si5, si6, si7)
        s_a = _pick(pid, sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7)
        s_y = _pick(pid, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7)
        s_x = _pick(pid, sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7)
        i0 = tl.program_id(1) * BH
        if i0 < h:
            g = tl.load(grad_ptr + pid).to(tl.float32)
            snap = snap_ptr + pid.to(tl.int64) * snap_stride
            ri = i0 + tl.arange(0, BH).to(tl.int64)
            rm = ri < h
            gu = g * tl.load(snap + ri, mask=rm, other=0.0)
            for j0 in range(0, w, BW):
                cj = j0 + tl.arange(0, BW).to(tl.int64)
                cm = cj < w
                vv = tl.load(snap + hmax + cj, mask=cm, other=0.0)
                d = gu[:, None] * vv[None, :]
                offs = _w_offsets(ri, cj, R, KW, s_i, s_a, s_y, s_x)
                tl.store(d_ptr + offs, d.to(d_ptr.dtype.element_ty), mask=rm[:, None] & cm[None, :])


# ------------------------------------------------------------------------------------------------ launchers


def _layout(w: torch.Tensor, dim: int) -> tuple[int, ...]:
    """(h, A, R, KW, s_i, s_a, s_y, s_x): W_mat[i, (a, y, x)] = w.data[i*s_i + a*s_a + y*s_y + x*s_x]."""
    if w.ndim not in (2, 4):
        raise ValueError(f"fused spectral norm supports 2-D and 4-D weights, got shape {tuple(w.shape)}")
    other = 1 - dim if w.ndim == 2 or dim in (0, 1) else None
    if other is None:
        raise ValueError(f"fused spectral norm supports dim 0 or 1, got {dim}")
    st = w.stride()
    if w.ndim == 2:
        return (w.shape[dim], w.shape[other], 1, 1, st[dim], st[other], 0, 0)
    kh, kw = w.shape[2], w.shape[3]
    return (w.shape[dim], w.shape[other], kh * kw, kw, st[dim], st[other], st[2], st[3])


def _slots(tensors: list, layouts: list[tuple[int, ...]]) -> list:
    """Kernel arguments for up to GROUP layers, unused slots repeating the first."""
    n = len(layouts)
    pad = lambda xs: list(xs) + [xs[0]] * (GROUP - n)  # noqa: E731
    args = []
    for seq in tensors:
        args += pad(seq)
    for field in range(8):
        args += pad([lay[field] for lay in layouts])
    return args


def _power_impl(ws, us, vs, dims, n_iter: int, eps: float):
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
    hmax = max(lay[0] for lay in layouts)
    wmax = max(lay[1] * lay[2] for lay in layouts)
    sig = torch.empty(len(ws), device=ws[0].device, dtype=torch.float32)
    snap = torch.empty(len(ws), hmax + wmax, device=ws[0].device, dtype=torch.float32)
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        args = _slots([ws[sl], us[sl], vs[sl]], layouts[sl])
        torch.library.wrap_triton(_sn_power_fwd_kernel)[(len(layouts[sl]),)](
            *args, sig[sl], snap[sl], hmax + wmax, hmax, float(eps), N_ITER=n_iter, BH=32, BW=128
        )
    return sig, snap


def _grad_impl(grad, snap, ws, dims):
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
    hmax = max(lay[0] for lay in layouts)
    dws = [torch.empty_like(w) for w in ws]
    bh = 32
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        lays = layouts[sl]
        grid = (len(lays), triton.cdiv(max(lay[0] for lay in lays), bh))
        torch.library.wrap_triton(_sn_sigma_bwd_kernel)[grid](
            *_slots([dws[sl]], lays), grad[sl], snap[sl], snap.shape[1], hmax, BH=bh, BW=128
        )
    return dws


if HAS_TRITON:

    @torch.library.triton_op("fastacgan::sn_power_", mutates_args=("us", "vs"))
    def _sn_power_(
        ws: list[torch.Tensor], us: list[torch.Tensor], vs: list[torch.Tensor], dims: list[int], n_iter: int,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        return _power_impl(ws, us, vs, dims, n_iter, eps)

    @torch.library.triton_op("fastacgan::sn_sigma_grad", mutates_args=())
    def _sn_sigma_grad(
        grad: torch.Tensor, snap: torch.Tensor, ws: list[torch.Tensor], dims: list[int]
    ) -> list[torch.Tensor]:
        return _grad_impl(grad, snap, ws, dims)


class _FusedSigma(torch.autograd.Function):
    """sigma for every layer (one launch, buffers updated in place); backward d sigma_l / d W_l = u_l v_l^T."""

    @staticmethod
    def forward(ctx, us, vs, dims, n_iter, eps, *ws):
        sig, snap = _sn_power_(list(ws), us, vs, dims, n_iter, eps)
        ctx.save_for_backward(snap, *ws)
        ctx.dims = dims
        return sig

    @staticmethod
    def backward(ctx, grad):
        snap, *ws = ctx.saved_tensors
        dws = _sn_sigma_grad(grad.contiguous(), snap, ws, ctx.dims)
        return (None, None, None, None, None, *dws)


def weight_to_matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """W_mat: `dim` first, the rest flattened (PyTorch's convention)."""
    if dim != 0:
        weight = weight.permute(dim, *(d for d in range(weight.dim()) if d != dim))
    return weight.flatten(1)


def spectral_norm_sigma_reference(ws, us, vs, dims, n_power_iterations: int, eps: float) -> torch.Tensor:
    """Plain PyTorch, op for op what torch.nn.utils.parametrizations.spectral_norm does: updates u, v in place
    (n iterations) and returns sigma [L] with the gradient d sigma / d W = u v^T."""
    sigmas = []
    for w, u, v, d in zip(ws, us, vs, dims):
        mat = weight_to_matrix(w, d)
        with torch.no_grad():
            for _ in range(n_power_iterations):
                F.normalize(torch.mv(mat, v), dim=0, eps=eps, out=u)
                F.normalize(torch.mv(mat.H, u), dim=0, eps=eps, out=v)
        u_c = u.clone(memory_format=torch.contiguous_format)  # later calls change u, v before this backward
        v_c = v.clone(memory_format=torch.contiguous_format)
        sigmas.append(torch.vdot(u_c, torch.mv(mat, v_c)))
    return torch.stack(sigmas)


def spectral_norm_sigma_fused(ws, us, vs, dims, n_power_iterations: int, eps: float) -> torch.Tensor:
    """The Triton implementation (CUDA tensors; CPU tensors under TRITON_INTERPRET=1). fp32 buffers."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_norm_sigma_fused needs triton")
    return _FusedSigma.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), *ws)


def spectral_norm_sigma(ws, us, vs, dims, n_power_iterations: int, eps: float = 1e-12) -> torch.Tensor:
    """sigma [L] for the weights `ws` (any mix of shapes), running `n_power_iterations` on the buffers us, vs
    in place first (0 = eval: use them as they are). Fused on CUDA, the reference elsewhere."""
    fn = spectral_norm_sigma_fused if _use_fused(ws, us, vs, dims) else spectral_norm_sigma_reference
    return fn(ws, us, vs, dims, n_power_iterations, eps)


def _use_fused(ws, us, vs, dims) -> bool:
    """The kernel takes CUDA tensors, 2-D/4-D weights of one dtype, dim 0 or 1, fp32 buffers."""
    return (
        HAS_TRITON
        and ws[0].is_cuda
        and all(
            w.ndim in (2, 4) and d in (0, 1) and w.dtype == ws[0].dtype and u.dtype == v.dtype == torch.float32
            for w, u, v, d in zip(ws, us, vs, dims)
        )
    )


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
        self.pending: torch.Tensor | None = None  # sigma computed by a SpectralNormGroup for the next access
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
        sigma, self.pending = self.pending, None
        if sigma is None:
            n = self.n_power_iterations if self.training else 0
            sigma = spectral_norm_sigma([weight], [self._u], [self._v], [self.dim], n, self.eps)[0]
        return weight / sigma

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value


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
    """Every `SpectralNorm` (2-D+ weights) in a model, updated together: `update()` runs one grouped power
    iteration (training) or sigma evaluation (eval) and hands each layer its sigma for its next forward.
    Call it once at the start of the model's forward, as PyTorch updates every layer once per forward."""

    def __init__(self, model: nn.Module):
        self.entries: list[tuple[nn.Module, str, SpectralNorm]] = []
        for mod in model.modules():
            if parametrize.is_parametrized(mod):
                for name, plist in mod.parametrizations.items():
                    for p in plist:
                        if isinstance(p, SpectralNorm) and hasattr(p, "_u"):
                            self.entries.append((mod, name, p))
        keys = {(p.n_power_iterations, p.eps) for _, _, p in self.entries}
        if len(keys) > 1:
            raise ValueError(f"SpectralNormGroup needs one n_power_iterations and eps for all layers, got {keys}")

    def __len__(self) -> int:
        return len(self.entries)

    def update(self, training: bool) -> torch.Tensor | None:
        if not self.entries:
            return None
        first = self.entries[0][2]
        ws = [mod.parametrizations[name].original for mod, name, _ in self.entries]
        n = first.n_power_iterations if training else 0
        sig = spectral_norm_sigma(ws, [p._u for *_, p in self.entries], [p._v for *_, p in self.entries],
                                  [p.dim for *_, p in self.entries], n, first.eps)  # fmt: skip
        for i, (_, _, p) in enumerate(self.entries):
            p.pending = sig[i]
        return sig
