"""Spectral normalisation with a fused power iteration: every SN layer of a model in a few launches.

`spectral_normalize(ws, us, vs, dims, n, eps)` returns W_l / sigma_l for every layer (any mix of shapes),
running n power iterations on the buffers u_l, v_l in place, with PyTorch's gradient (u, v held constant);
`spectral_norm_sigma` returns the sigmas alone. On CUDA tensors they run the Triton kernels of
spectral_norm_triton.py (how they work: its docstring), per group of up to 8 layers; elsewhere the reference
in plain PyTorch (on CPU tensors outside torch.compile with a hand-written backward). This file holds the
launchers, the autograd and torch.library wiring, the reference and the nn API.

`spectral_norm(module, ...)` is a drop-in for torch.nn.utils.parametrizations.spectral_norm: the same
buffers and state_dict keys (`parametrizations.weight.original`, `parametrizations.weight.0._u`, `._v`), the
same initialisation (same RNG draws) and the same train/eval behaviour. `SpectralNormGroup(model).update()`
normalises all of a model's layers at once; each layer then takes its weight on its next access.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from . import spectral_norm_triton as _k
from ._dispatch import (
    Ints,
    OptDtype,
    Tensors,
    cdiv,
    check_device,
    eager_on_gpu_of,
    launcher,
    plain_eager,
    plain_ops_only,
    triton_supports,
)

HAS_TRITON = _k.HAS_TRITON
GROUP = 8  # layers per launch (the kernels' argument slots)
# tiles (rows, columns, columns per inner step): pass 1 and the backward take wide tiles (few partial sums
# per row), pass 2 tall ones (few partial sums per column, which pass 3 adds up in one program per layer)
_WV = (32, 512, 64)
_WTU = (128, 128, 32)
_NO_TILE = 2**31 - 1  # first tile of an unused slot: never reached


# ------------------------------------------------------------------------------------------------ launchers


def _layout(w: torch.Tensor, dim: int) -> tuple[int, ...]:
    """(h, A, R, KW, s_i, s_a, s_y, s_x, cl, dense): W_mat[i, (a, y, x)] = w.data[i*s_i + a*s_a + y*s_y + x*s_x];
    dense: each row's columns fill one contiguous block, in (a, y, x) order (cl 0) or (y, x, a) order (cl 1,
    a channels-last conv weight), so that the kernels can read them in memory order."""
    if w.ndim not in (2, 4):
        raise ValueError(f"fused spectral norm supports 2-D and 4-D weights, got shape {tuple(w.shape)}")
    if dim not in (0, 1):
        raise ValueError(f"fused spectral norm supports dim 0 or 1, got {dim}")
    st, other = w.stride(), 1 - dim
    h, a_n = w.shape[dim], w.shape[other]
    kh, kw = (w.shape[2], w.shape[3]) if w.ndim == 4 else (1, 1)
    s_a, s_y, s_x = st[other], *((st[2], st[3]) if w.ndim == 4 else (0, 0))

    def strides_are(*want):  # the strides of the dims of size > 1 (the others' strides never matter)
        return all(n == 1 or s == t for n, s, t in zip((a_n, kh, kw), (s_a, s_y, s_x), want))

    r = kh * kw
    if strides_are(r, kw, 1):
        cl, dense = 0, True
    elif strides_are(1, kw * a_n, a_n):
        cl, dense = 1, True
    else:
        cl, dense = 0, False
    return (h, a_n, r, kw, st[dim], s_a, s_y, s_x, cl, dense)


def _max_offset(w: torch.Tensor) -> int:
    return sum((n - 1) * s for n, s in zip(w.shape, w.stride()))


def _pad(xs: list, fill=None) -> list:
    """Up to GROUP values, unused slots repeating the first, or `fill`. Slots the kernel writes through take a
    `fill` of their own: under torch.compile every written argument becomes its own copy, and the copies are
    written back slot by slot, so an unused slot that repeated layer 0's buffer would put back its old value."""
    return list(xs) + [xs[0] if fill is None else fill] * (GROUP - len(xs))


def _shape_args(layouts: list[tuple[int, ...]]) -> list:
    """The kernels' per-slot arguments h.., A.., R.., K.., si.., sa.., sy.., sx.., O.. (GROUP of each)."""
    return [x for field in range(9) for x in _pad([lay[field] for lay in layouts])]


def _tile_args(layouts: list[tuple[int, ...]], tile: tuple[int, int, int]) -> tuple[list[int], int]:
    """(T1..T7: the first tile of slots 1..7, the number of tiles) for a group's layers cut in `tile`s."""
    starts, n = [], 0
    for h, a, r, *_ in layouts:
        starts.append(n)
        n += cdiv(h, tile[0]) * cdiv(a * r, tile[1])
    return starts[1:] + [_NO_TILE] * (GROUP - len(layouts)), n


def _tile_kw(tile: tuple[int, int, int]) -> dict:
    return dict(zip(("BH", "CW", "BW"), tile))


def _power_impl(ws, us, vs, dims, n_iter: int, eps: float, layouts=None):
    layouts = layouts or [_layout(w, d) for w, d in zip(ws, dims)]
    hmax = max(lay[0] for lay in layouts)
    wmax = max(lay[1] * lay[2] for lay in layouts)
    dev = ws[0].device
    sig = torch.empty(len(ws), device=dev, dtype=torch.float32)
    snap = torch.empty(len(ws), hmax + wmax, device=dev, dtype=torch.float32)
    # pass 1's partials [column tiles, h] and pass 2's [row tiles, w], one row per layer
    p = torch.empty(len(ws), max(cdiv(a * r, _WV[1]) * h for h, a, r, *_ in layouts), device=dev,
                    dtype=torch.float32)  # fmt: skip
    q = torch.empty(len(ws), max(cdiv(h, _WTU[0]) * a * r for h, a, r, *_ in layouts), device=dev,
                    dtype=torch.float32)  # fmt: skip
    wv, wtu = _tile_kw(_WV), _tile_kw(_WTU)
    spare = sig.new_empty(1)  # the unused slots' u and v (never touched)
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        lays = layouts[sl]
        shape = _shape_args(lays)
        tiles1, n1 = _tile_args(lays, _WV)
        tiles2, n2 = _tile_args(lays, _WTU)
        dense = all(lay[9] for lay in lays)
        finalize = [*_pad(us[sl], spare), *_pad(vs[sl], spare), *shape[: 3 * GROUP], p[sl], p.shape[1], q[sl],
                    q.shape[1], sig[sl], snap[sl], snap.shape[1], hmax, float(eps)]  # fmt: skip
        for _ in range(max(n_iter, 1)):  # eval (n_iter = 0): passes 1 and 3
            launcher(_k._sn_wv_kernel)[(n1,)](
                *_pad(ws[sl]), *_pad(vs[sl]), *shape, *tiles1, p[sl], p.shape[1], DENSE=dense, **wv
            )
            if n_iter:
                launcher(_k._sn_wtu_kernel)[(n2,)](
                    *_pad(ws[sl]), *shape, *tiles2, p[sl], p.shape[1], q[sl], q.shape[1], P_CW=_WV[1], DENSE=dense,
                    **wtu
                )  # fmt: skip
            launcher(_k._sn_finalize_kernel)[(len(lays),)](
                *finalize, EVAL=n_iter == 0, P_CW=_WV[1], Q_BH=_WTU[0], BLOCK=2048, PARTS=4, num_warps=8
            )
    return sig, snap


def _dense(w: torch.Tensor) -> torch.Tensor:
    """w, or a contiguous copy of a weight whose elements do not fill one dense block (a strided view): the
    normalised weight and the gradients are made by empty_like, and must have the weight's layout."""
    return w if w.is_contiguous() or w.is_contiguous(memory_format=torch.channels_last) else w.contiguous()


def _as_layout_of(g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """g with w's strides (the kernels address G, W and dW alike): a copy only where autograd gave another."""
    same = all(n == 1 or a == b for n, a, b in zip(w.shape, g.stride(), w.stride()))
    return g if same else torch.empty_like(w, dtype=g.dtype).copy_(g)


def _normalize_impl(ws, us, vs, dims, n_iter: int, eps: float, out_dtype: torch.dtype | None):
    """(Y_l = W_l / sigma_l for every layer, in out_dtype or the weights' dtype; sigma [L]; the (u, v) snapshot):
    the power iteration (3 launches per iteration), then one launch for every layer's division."""
    ws = [_dense(w) for w in ws]
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
    sig, snap = _power_impl(ws, us, vs, dims, n_iter, eps, layouts)
    ys = [torch.empty_like(w, dtype=out_dtype) for w in ws]
    spare = ys[0].new_empty(1)  # the unused slots' output (never touched)
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        tiles, n_tiles = _tile_args(layouts[sl], _WV)
        launcher(_k._sn_scale_kernel)[(n_tiles,)](
            *_pad(ws[sl]), *_pad(ys[sl], spare), *_shape_args(layouts[sl]), *tiles, sig[sl],
            DENSE=all(lay[9] for lay in layouts[sl]), **_tile_kw(_WV),
        )  # fmt: skip
    return ys, sig, snap


def _bwd_impl(ws, dims, snap, sig=None, coef=None, grads=None):
    """d loss / d W_l for every layer: through sigma (coef [L] = d loss / d sigma) or through Y = W / sigma
    (grads: d loss / d Y_l, and sigma). One launch per group for sigma, two for Y (the second needs the sum of
    G * W over each whole layer, which the first makes as partial sums per tile)."""
    ws = [_dense(w) for w in ws]
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
    hmax = max(lay[0] for lay in layouts)
    dws = [torch.empty_like(w) for w in ws]
    spare = dws[0].new_empty(1)  # the unused slots' gradient (never touched)
    normalized = grads is not None
    if normalized:
        grads = [_as_layout_of(g, w) for g, w in zip(grads, ws)]
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        shape = _shape_args(layouts[sl])
        tiles, n_tiles = _tile_args(layouts[sl], _WV)
        dense = all(lay[9] for lay in layouts[sl])
        if normalized:
            gs, c, s = grads[sl], snap.new_empty(n_tiles), sig[sl]
            launcher(_k._sn_gw_kernel)[(n_tiles,)](
                *_pad(gs), *_pad(ws[sl]), *shape, *tiles, c, DENSE=dense, **_tile_kw(_WV)
            )
        else:
            gs, c, s = dws[sl], coef[sl], coef[sl]  # G and sigma: not read
        launcher(_k._sn_bwd_kernel)[(n_tiles,)](
            *_pad(dws[sl], spare), *_pad(gs), *shape, *tiles, n_tiles, c, s, snap[sl], snap.shape[1], hmax,
            NORMALIZED=normalized, DENSE=dense, PB=256, **_tile_kw(_WV),
        )  # fmt: skip
    return dws


def _sigma_grad_impl(grad, snap, ws, dims):
    return _bwd_impl(ws, dims, snap, coef=grad)


def _normalize_grad_impl(grads, sig, snap, ws, dims):
    return _bwd_impl(ws, dims, snap, sig=sig, grads=grads)


if HAS_TRITON:

    @torch.library.triton_op("fastacgan::sn_power_", mutates_args=("us", "vs"))
    def _sn_power_(
        ws: Tensors, us: Tensors, vs: Tensors, dims: Ints, n_iter: int, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _power_impl(ws, us, vs, dims, n_iter, eps)

    @torch.library.triton_op("fastacgan::sn_sigma_grad", mutates_args=())
    def _sn_sigma_grad(grad: torch.Tensor, snap: torch.Tensor, ws: Tensors, dims: Ints) -> Tensors:
        return _sigma_grad_impl(grad, snap, ws, dims)

    @torch.library.triton_op("fastacgan::sn_normalize_", mutates_args=("us", "vs"))
    def _sn_normalize_(
        ws: Tensors, us: Tensors, vs: Tensors, dims: Ints, n_iter: int, eps: float, out_dtype: OptDtype
    ) -> tuple[Tensors, torch.Tensor, torch.Tensor]:
        return _normalize_impl(ws, us, vs, dims, n_iter, eps, out_dtype)

    @torch.library.triton_op("fastacgan::sn_normalize_grad", mutates_args=())
    def _sn_normalize_grad(grads: Tensors, sig: torch.Tensor, snap: torch.Tensor, ws: Tensors, dims: Ints) -> Tensors:
        return _normalize_grad_impl(grads, sig, snap, ws, dims)


def _snapshot_uvs(snap: torch.Tensor, ws, dims) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (u, v) from the forward's snapshot [L, hmax + wmax]: u at [:h], v at [hmax : hmax + w]."""
    hmax = max(w.shape[d] for w, d in zip(ws, dims))
    uvs = []
    for i, (w, d) in enumerate(zip(ws, dims)):
        h = w.shape[d]
        uvs.append((snap[i, :h], snap[i, hmax : hmax + w.numel() // h]))
    return uvs


def _grads_with_graph(ws, dims, uvs, grads, needs, normalized: bool) -> tuple:
    """The backward where create_graph=True asks for the gradients' own graph (a penalty on the gradient of the
    weights, a Hessian-vector product): autograd through PyTorch's graph, sigma = u^T W v with u and v held
    constant and Y = W / sigma (normalized) or sigma itself, so that second derivatives are PyTorch's too. The
    kernels' backward makes no graph: differentiating its result again gave an error or a gradient short of
    the path through this op. needs: which weights want a gradient; grads: d loss / d output, per layer."""
    outs, inputs, gouts = [], [], []
    for w, d, (u, v), g, need in zip(ws, dims, uvs, grads, needs):
        if need and g is not None:
            mat = weight_to_matrix(w, d)
            sig = torch.vdot(u.to(mat.dtype), torch.mv(mat, v.to(mat.dtype)))
            outs.append((w / sig).to(g.dtype) if normalized else sig)
            inputs.append(w)
            gouts.append(g)
    got = iter(torch.autograd.grad(outs, inputs, gouts, create_graph=True) if outs else ())
    return tuple(next(got) if need and g is not None else None for need, g in zip(needs, grads))


class _FusedSigma(torch.autograd.Function):
    """sigma for every layer (one launch, buffers updated in place); backward d sigma_l / d W_l = u_l v_l^T."""

    @staticmethod
    def forward(ctx, us, vs, dims, n_iter, eps, *ws):
        power = eager_on_gpu_of(_power_impl, ws[0]) if plain_eager(*ws, *us, *vs) else _sn_power_
        sig, snap = power(list(ws), us, vs, dims, n_iter, eps)
        ctx.save_for_backward(snap, *ws)
        ctx.dims = dims
        return sig

    @staticmethod
    def backward(ctx, grad):
        snap, *ws = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            uvs = _snapshot_uvs(snap, ws, ctx.dims)
            return (None,) * 5 + _grads_with_graph(ws, ctx.dims, uvs, list(grad), ctx.needs_input_grad[5:], False)
        grad_fn = eager_on_gpu_of(_sigma_grad_impl, snap) if plain_eager(grad, snap, *ws) else _sn_sigma_grad
        dws = grad_fn(grad.contiguous(), snap, ws, ctx.dims)
        return (None, None, None, None, None, *dws)


class _FusedNormalize(torch.autograd.Function):
    """W_l / sigma_l for every layer (power iteration, then the division: one launch for all layers; buffers
    updated in place); backward: dW = G / sigma - (sum(G * W) / sigma^2) u v^T, two launches for all layers."""

    @staticmethod
    def forward(ctx, us, vs, dims, n_iter, eps, out_dtype, *ws):
        fn = eager_on_gpu_of(_normalize_impl, ws[0]) if plain_eager(*ws, *us, *vs) else _sn_normalize_
        ys, sig, snap = fn(list(ws), us, vs, dims, n_iter, eps, out_dtype)
        ctx.save_for_backward(sig, snap, *ws)
        ctx.dims = dims
        return tuple(ys)

    @staticmethod
    def backward(ctx, *grads):
        sig, snap, *ws = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            uvs = _snapshot_uvs(snap, ws, ctx.dims)
            return (None,) * 6 + _grads_with_graph(ws, ctx.dims, uvs, grads, ctx.needs_input_grad[6:], True)
        plain = plain_eager(sig, snap, *grads, *ws)
        grad_fn = eager_on_gpu_of(_normalize_grad_impl, sig) if plain else _sn_normalize_grad
        dws = grad_fn(list(grads), sig, snap, ws, ctx.dims)
        return (None, None, None, None, None, None, *dws)


def _check_layers(ws, us, vs, dims) -> None:
    """Every implementation's argument check (shapes only: nothing read on the host): a u, a v and a dim for each
    weight, u of W.shape[dim] entries and v of the rest. A u of another size was resized by the reference's
    normalize(out=u), and the kernels would have read and written past its end. (Not under torch.jit.trace, whose
    sizes are traced values: each comparison warned that the trace might not generalize.)"""
    if torch.jit.is_tracing():
        return
    if not len(ws) == len(us) == len(vs) == len(dims):
        raise ValueError(f"spectral norm: {len(ws)} weights, {len(us)} u, {len(vs)} v and {len(dims)} dims: one "
                         "of each per weight")  # fmt: skip
    for i, (w, u, v, d) in enumerate(zip(ws, us, vs, dims)):
        if not -w.ndim <= d < w.ndim:
            raise ValueError(f"spectral norm: layer {i}: dim {d} is not a dimension of its {w.ndim}-d weight")
        if not w.device == u.device == v.device:  # (the kernels would get a foreign pointer)
            raise ValueError(f"spectral norm: layer {i}: weight, u and v must be on one device, got {w.device}, "
                             f"{u.device}, {v.device}")  # fmt: skip
        h = w.shape[d]
        rest = w.numel() // h if h else 0
        if u.shape != (h,) or v.shape != (rest,):
            raise ValueError(f"spectral norm: layer {i} (weight {tuple(w.shape)}, dim {d}) needs u of {h} and v of "
                             f"{rest} entries, got u {tuple(u.shape)} and v {tuple(v.shape)}")  # fmt: skip


def weight_to_matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """W_mat: `dim` first, the rest flattened (PyTorch's convention)."""
    if dim != 0:
        weight = weight.permute(dim, *(d for d in range(weight.dim()) if d != dim))
    return weight.flatten(1)


def spectral_norm_sigma_reference(ws, us, vs, dims, n_power_iterations: int, eps: float) -> torch.Tensor:
    """Plain PyTorch, op for op what torch.nn.utils.parametrizations.spectral_norm does: updates u, v in place
    (n iterations) and returns sigma [L] with the gradient d sigma / d W = u v^T."""
    _check_layers(ws, us, vs, dims)
    return torch.stack([_sigma(w, u, v, d, n_power_iterations, eps)[0] for w, u, v, d in zip(ws, us, vs, dims)])


def _sigma(w, u, v, dim: int, n_power_iterations: int, eps: float):
    """PyTorch's power iteration on the buffers u, v (in place), then sigma = u^T W v (differentiable in W where
    grad mode is on); returns sigma and the copies of u and v it used (later calls change the buffers before this
    call's backward)."""
    mat = weight_to_matrix(w, dim)
    with torch.no_grad():
        for _ in range(n_power_iterations):
            F.normalize(torch.mv(mat, v), dim=0, eps=eps, out=u)
            F.normalize(torch.mv(mat.H, u), dim=0, eps=eps, out=v)
    u_c = u.clone(memory_format=torch.contiguous_format)
    v_c = v.clone(memory_format=torch.contiguous_format)
    return torch.vdot(u_c, torch.mv(mat, v_c)), u_c, v_c


def spectral_norm_sigma_fused(ws, us, vs, dims, n_power_iterations: int, eps: float) -> torch.Tensor:
    """The Triton implementation (CUDA tensors; CPU tensors under TRITON_INTERPRET=1). fp32 buffers."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_norm_sigma_fused needs triton")
    _check_layers(ws, us, vs, dims)
    check_device("spectral_norm_sigma_fused", "spectral_norm_sigma", _k._sn_wv_kernel, ws[0].device)
    return _FusedSigma.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), *ws)


def spectral_norm_sigma(ws, us, vs, dims, n_power_iterations: int, eps: float = 1e-12) -> torch.Tensor:
    """sigma [L] for the weights `ws` (any mix of shapes), running `n_power_iterations` on the buffers us, vs
    in place first (0 = eval: use them as they are). Fused on CUDA, the reference elsewhere."""
    fused = not plain_ops_only() and _use_fused(ws, us, vs, dims)
    fn = spectral_norm_sigma_fused if fused else spectral_norm_sigma_reference
    return fn(ws, us, vs, dims, n_power_iterations, eps)


def spectral_normalize_reference(ws, us, vs, dims, n_power_iterations: int, eps: float,
                                 out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """Plain PyTorch: [W_l / sigma_l] (in out_dtype, if given), sigma as spectral_norm_sigma_reference gives it."""
    sig = spectral_norm_sigma_reference(ws, us, vs, dims, n_power_iterations, eps)
    ys = [w / sig[i] for i, w in enumerate(ws)]
    return ys if out_dtype is None else [y.to(out_dtype) for y in ys]


class _EagerNormalize(torch.autograd.Function):
    """spectral_normalize_reference's maths with a hand-written backward, for eager calls off the GPU (a CPU):
    the same power iteration, sigma, division and cast op for op, so the same buffers and W / sigma bit for bit;
    backward dW = G / sigma - (sum(G W) / sigma^2) u v^T in four passes over each weight (a product and its sum,
    the division, a rank-1 update) where autograd's chain through the division, the cast and sigma's matrix-vector
    product makes about eight (isic64's discriminator, forward + backward on a 2-core CPU: 19 -> 9 ms)."""

    @staticmethod
    def forward(ctx, us, vs, dims, n_iter, eps, out_dtype, *ws):
        ys, saved = [], []
        for w, u, v, d in zip(ws, us, vs, dims):
            sig, u_c, v_c = _sigma(w, u, v, d, n_iter, eps)
            y = w / sig  # then cast: a division with out= in another dtype copies a temporary, no faster
            ys.append(y if out_dtype is None else y.to(out_dtype))
            saved += [sig, u_c, v_c]
        ctx.save_for_backward(*saved, *ws)
        ctx.dims = dims
        return tuple(ys)

    @staticmethod
    def backward(ctx, *grads):
        n = len(ctx.dims)
        saved, ws = ctx.saved_tensors[: 3 * n], ctx.saved_tensors[3 * n :]
        if torch.is_grad_enabled():  # create_graph=True
            uvs = [saved[3 * i + 1 : 3 * i + 3] for i in range(n)]
            return (None,) * 6 + _grads_with_graph(ws, ctx.dims, uvs, grads, ctx.needs_input_grad[6:], True)
        dws = []
        for i, (g, w, d) in enumerate(zip(grads, ws, ctx.dims)):  # an unused output's g: zeros, as autograd fills
            sig, u, v = saved[3 * i : 3 * i + 3]
            # sum(G W) / sigma^2, from G itself (in W's dtype: a product of tensors promotes), by torch's cascaded sum:
            # its terms cancel (~1000x at a random u and v), and a BLAS dot of G / sigma (vdot) was there 3-4x less
            # accurate than the reference on an AMD CPU, this 3x more (tests/test_kernel_spectral_norm.py)
            c = (g * w).sum() / (sig * sig)
            dw = torch.div(g, sig.view(1))  # in w's dtype (a 1-d sigma takes part in type promotion)
            if dw.dtype != w.dtype:
                dw = dw.to(w.dtype)
            if d == 0 and dw.is_contiguous():
                dw.view(dw.shape[0], -1).addr_(u * -c, v)
            else:  # u v^T in W's layout
                dw.sub_(_matrix_to_weight(torch.outer(u * c, v), w, d))
            dws.append(dw)
        return (None, None, None, None, None, None, *dws)


def _matrix_to_weight(mat: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """weight_to_matrix's inverse: a [W.shape[dim], rest] matrix as a tensor of W's shape."""
    rest = [w.shape[i] for i in range(w.dim()) if i != dim]
    t = mat.view(w.shape[dim], *rest)
    return t if dim == 0 else t.movedim(0, dim)


def spectral_normalize_eager(ws, us, vs, dims, n_power_iterations: int, eps: float,
                             out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """spectral_normalize_reference with a hand-written backward (`_EagerNormalize`): what spectral_normalize
    runs on CPU tensors outside torch.compile (which fuses the reference's ops itself)."""
    _check_layers(ws, us, vs, dims)
    return list(_EagerNormalize.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps),
                                      out_dtype, *ws))  # fmt: skip


def spectral_normalize_fused(ws, us, vs, dims, n_power_iterations: int, eps: float,
                             out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """The Triton implementation of spectral_normalize (CUDA tensors; CPU tensors under TRITON_INTERPRET=1)."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_normalize_fused needs triton")
    _check_layers(ws, us, vs, dims)
    check_device("spectral_normalize_fused", "spectral_normalize", _k._sn_wv_kernel, ws[0].device)
    ys = _FusedNormalize.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), out_dtype, *ws)
    return list(ys)


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


def _use_fused(ws, us, vs, dims) -> bool:
    """The kernel takes CUDA tensors on a GPU that Triton supports, 2-D/4-D weights of one dtype, dim 0 or 1, fp32
    buffers, and weights whose offsets fit in 32 bits (the kernels' index arithmetic: 8 GiB of fp32 in one layer)."""
    return (
        HAS_TRITON
        and triton_supports(ws[0].device)
        and all(
            w.ndim in (2, 4)
            and d in (0, 1)
            and w.dtype == ws[0].dtype
            and u.dtype == v.dtype == torch.float32
            and _max_offset(w) < 2**31
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
