"""The fused spectral norm's host side: the launchers of spectral_norm_triton.py's kernels (per group of up to
GROUP layers), their torch.library ops, the autograd functions around them, and when they are taken
(`_use_fused`). spectral_norm.py chooses between them and the reference (spectral_norm_reference.py)."""

import torch

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
    triton_supports,
)
from .spectral_norm_reference import _check_layers, _grads_with_graph

HAS_TRITON = _k.HAS_TRITON
GROUP = 8  # layers per launch (the kernels' argument slots)
# tiles (rows, columns, columns per inner step): pass 1 and the backward take wide tiles (few partial sums
# per row), pass 2 tall ones (few partial sums per column, which pass 3 adds up in one program per layer)
_WV = (32, 512, 64)
_WTU = (128, 128, 32)
_NO_TILE = 2**31 - 1  # first tile of an unused slot: never reached


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


def spectral_norm_sigma_fused(ws, us, vs, dims, n_power_iterations: int, eps: float) -> torch.Tensor:
    """The Triton implementation (CUDA tensors; CPU tensors under TRITON_INTERPRET=1). fp32 buffers."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_norm_sigma_fused needs triton")
    _check_layers(ws, us, vs, dims)
    check_device("spectral_norm_sigma_fused", "spectral_norm_sigma", _k._sn_wv_kernel, ws[0].device)
    return _FusedSigma.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), *ws)


def spectral_normalize_fused(ws, us, vs, dims, n_power_iterations: int, eps: float,
                             out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """The Triton implementation of spectral_normalize (CUDA tensors; CPU tensors under TRITON_INTERPRET=1)."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_normalize_fused needs triton")
    _check_layers(ws, us, vs, dims)
    check_device("spectral_normalize_fused", "spectral_normalize", _k._sn_wv_kernel, ws[0].device)
    ys = _FusedNormalize.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), out_dtype, *ws)
    return list(ys)


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
