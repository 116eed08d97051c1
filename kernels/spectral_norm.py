"""Spectral normalisation with a fused power iteration: every SN layer of a model in a few launches.

For a weight W viewed as a matrix W_mat [h, w] (dim `dim` first, the rest flattened, as PyTorch does), one
training-mode call runs n power iterations on the persistent buffers u [h], v [w] and returns sigma:
    u <- normalize(W_mat v),  v <- normalize(W_mat^T u)          (n times, in place; PyTorch's order)
    sigma = u^T W_mat v,  d sigma / d W_mat = u v^T               (u, v constants, as in PyTorch)
After the last v update, u^T W_mat v = (W_mat^T u) . v = ||r||^2 / max(||r||, eps) with r = W_mat^T u, so
sigma comes with the last pass for free. In eval mode (n = 0) it is u^T W_mat v with the stored vectors.

The work is bound by reading the weights (two reads per iteration), so it is spread over the whole GPU: every
weight is cut into tiles of a few thousand elements, and one launch covers the tiles of all layers of a group
(up to 8 layers; pointers and shapes picked per tile with `tl.where`). Each power iteration is three launches
for the whole model, whatever its number of layers:
    1. t = W v       per tile: a partial sum over the tile's columns        -> P [column tiles, h]
    2. W^T t         per tile: t's rows (summed from P), a partial over rows -> Q [row tiles, w]
    3. finalize      per layer: u = t / |t|, v = r / |r| with r = W^T t / |t|, sigma; u, v written in place
(u is only needed up to scale by pass 2, since W^T u = W^T t / |t|.) A pass's output is needed in full before
the next can start, which is why a pass is a launch: one launch for everything would need a grid-wide barrier
(all programs resident at once, spinning), which the interpreter cannot run and a busy GPU can deadlock.
Eval is passes 1 and 3. The backward (d sigma / d W for every layer) is one launch over the same tiles.
The weight is read where it lies, nothing is copied: when each row's columns form one contiguous block
(contiguous weights, channels-last convs: every discriminator layer) the kernels walk them in memory order, so
a warp reads consecutive addresses, and work out each column's W_mat index (channels-last stores a row as
(y, x, a)); other layouts (ConvTranspose's dim=1, strided views) are addressed through their strides. All
arithmetic is fp32.

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

from ._dispatch import cdiv, plain_eager

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover
    HAS_TRITON = False

GROUP = 8  # layers per launch (the kernels' argument slots)
# tiles (rows, columns, columns per inner step): pass 1 and the backward take wide tiles (few partial sums
# per row), pass 2 tall ones (few partial sums per column, which pass 3 adds up in one program per layer)
_WV = (32, 512, 64)
_WTU = (128, 128, 32)
_NO_TILE = 2**31 - 1  # first tile of an unused slot: never reached

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
    def _slot_of(pid, T1, T2, T3, T4, T5, T6, T7):
        """(slot, its first tile) of tile `pid`: T_k is the first tile of slot k (slot 0 starts at 0)."""
        s = (pid >= T1).to(tl.int32) + (pid >= T2).to(tl.int32) + (pid >= T3).to(tl.int32)
        s += (pid >= T4).to(tl.int32) + (pid >= T5).to(tl.int32) + (pid >= T6).to(tl.int32)
        s += (pid >= T7).to(tl.int32)
        return s, _pick(s, 0, T1, T2, T3, T4, T5, T6, T7)

    @triton.jit
    def _shape(s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
               K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
               sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
               sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7):  # fmt: skip
        """Slot s's (h, A, R, KW, s_i, s_a, s_y, s_x, cl): W_mat[i, (a, y, x)] = W[i*s_i + a*s_a + y*s_y + x*s_x],
        cl: the columns lie in memory in (y, x, a) order (a channels-last conv weight), else in (a, y, x) order."""
        return (_pick(s, h0, h1, h2, h3, h4, h5, h6, h7), _pick(s, A0, A1, A2, A3, A4, A5, A6, A7),
                _pick(s, R0, R1, R2, R3, R4, R5, R6, R7), _pick(s, K0, K1, K2, K3, K4, K5, K6, K7),
                _pick(s, si0, si1, si2, si3, si4, si5, si6, si7), _pick(s, sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7),
                _pick(s, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7), _pick(s, sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7),
                _pick(s, O0, O1, O2, O3, O4, O5, O6, O7))  # fmt: skip

    @triton.jit
    def _columns(ri, c0, BW: tl.constexpr, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE: tl.constexpr):
        """The tile's BW columns from c0: (their offsets in W [BH, BW], their indices j in W_mat [BW], in range).

        DENSE (every layer of the launch has each row's columns in one contiguous block, in (a, y, x) or, cl, in
        (y, x, a) order): the columns are taken in memory order, so a warp reads consecutive addresses, and j is
        worked out from the position (the vector v is small and cached; the weight is what streams). Otherwise:
        columns in W_mat's order, each addressed through its (a, y, x) strides, whatever they are."""
        c = c0 + tl.arange(0, BW)
        if DENSE:
            c = tl.max_contiguous(tl.multiple_of(c, BW), BW)
            j = tl.where(cl != 0, (c % A) * R + c // A, c)  # c = (y*KW + x)*A + a -> j = a*R + y*KW + x
            return ri[:, None] * s_i + c[None, :], j, c < A * R
        else:
            a = c // R
            rem = c - a * R
            y = rem // KW
            x = rem - y * KW
            return ri[:, None] * s_i + (a * s_a + y * s_y + x * s_x)[None, :], c, c < A * R

    @triton.jit
    def _load_w(w_ptr, offs, rm, cm, full):
        """The weight tile as fp32. `full` (dense and every column in range): the mask varies along rows only,
        so the compiler can read each row's columns with vector loads."""
        if full:
            wt = tl.load(w_ptr + offs, mask=rm[:, None], other=0.0)
        else:
            wt = tl.load(w_ptr + offs, mask=rm[:, None] & cm[None, :], other=0.0)
        return wt.to(tl.float32)

    @triton.jit
    def _tile(pid, t0, h, w, BH: tl.constexpr, CW: tl.constexpr):
        """Tile `pid` of its slot, whose first tile is t0: (row indices [BH], first column, row tile, column tile)."""
        ncb = tl.cdiv(w, CW)
        rb = (pid - t0) // ncb
        cb = (pid - t0) - rb * ncb
        return rb * BH + tl.arange(0, BH), cb * CW, rb, cb

    @triton.jit
    def _sn_wv_kernel(
        W0, W1, W2, W3, W4, W5, W6, W7, V0, V1, V2, V3, V4, V5, V6, V7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        p_ptr, p_stride,
        BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
    ):  # fmt: skip
        """Pass 1, per tile: P[slot, column tile, rows] = sum over the tile's columns of W[rows, j] v[j]."""
        pid = tl.program_id(0)
        s, t0 = _slot_of(pid, T1, T2, T3, T4, T5, T6, T7)
        h, A, R, KW, s_i, s_a, s_y, s_x, cl = _shape(
            s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
            K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
            sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
            sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7)  # fmt: skip
        w_ptr = _pick(s, W0, W1, W2, W3, W4, W5, W6, W7)
        v_ptr = _pick(s, V0, V1, V2, V3, V4, V5, V6, V7)
        w = A * R
        ri, c0, _, cb = _tile(pid, t0, h, w, BH, CW)
        rm = ri < h
        acc = tl.zeros([BH], tl.float32)
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            wt = _load_w(w_ptr, offs, rm, cm, DENSE and c0 + j0 + BW <= w)
            vv = tl.load(v_ptr + cj, mask=cm, other=0.0)
            acc += tl.sum(wt * vv[None, :], axis=1)
        tl.store(p_ptr + s.to(tl.int64) * p_stride + cb * h + ri, acc, mask=rm)

    @triton.jit
    def _sn_wtu_kernel(
        W0, W1, W2, W3, W4, W5, W6, W7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        p_ptr, p_stride, q_ptr, q_stride,
        P_CW: tl.constexpr, BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
    ):  # fmt: skip
        """Pass 2, per tile: t[rows] = sum of pass 1's partials; Q[slot, row tile, j] = sum_rows W[rows, j] t[rows]."""
        pid = tl.program_id(0)
        s, t0 = _slot_of(pid, T1, T2, T3, T4, T5, T6, T7)
        h, A, R, KW, s_i, s_a, s_y, s_x, cl = _shape(
            s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
            K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
            sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
            sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7)  # fmt: skip
        w_ptr = _pick(s, W0, W1, W2, W3, W4, W5, W6, W7)
        w = A * R
        ri, c0, rb, _ = _tile(pid, t0, h, w, BH, CW)
        rm = ri < h
        p_base = p_ptr + s.to(tl.int64) * p_stride
        t = tl.zeros([BH], tl.float32)
        for c in range(0, tl.cdiv(w, P_CW)):  # pass 1 cut the columns in tiles of P_CW
            t += tl.load(p_base + c * h + ri, mask=rm, other=0.0)
        q_base = q_ptr + s.to(tl.int64) * q_stride + rb * w
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            wt = _load_w(w_ptr, offs, rm, cm, DENSE and c0 + j0 + BW <= w)
            tl.store(q_base + cj, tl.sum(wt * t[:, None], axis=0), mask=cm)

    @triton.jit
    def _sn_finalize_kernel(
        U0, U1, U2, U3, U4, U5, U6, U7, V0, V1, V2, V3, V4, V5, V6, V7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        p_ptr, p_stride, q_ptr, q_stride, sig_ptr, snap_ptr, snap_stride, hmax, eps,
        EVAL: tl.constexpr, P_CW: tl.constexpr, Q_BH: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        """Pass 3, one program per layer: t = sum of P; training: u = t/|t|, r = sum of Q / |t|, v = r/|r|,
        sigma = |r|^2 / max(|r|, eps), u and v written in place; eval: sigma = u . t. Then the (u, v) snapshot."""
        eps = tl.cast(eps, tl.float32)  # Inductor passes Python floats as fp64
        s = tl.program_id(0)
        u_ptr = _pick(s, U0, U1, U2, U3, U4, U5, U6, U7)
        v_ptr = _pick(s, V0, V1, V2, V3, V4, V5, V6, V7)
        h = _pick(s, h0, h1, h2, h3, h4, h5, h6, h7)
        w = _pick(s, A0, A1, A2, A3, A4, A5, A6, A7) * _pick(s, R0, R1, R2, R3, R4, R5, R6, R7)
        p_base = p_ptr + s.to(tl.int64) * p_stride
        q_base = q_ptr + s.to(tl.int64) * q_stride
        ncb = tl.cdiv(w, P_CW)  # pass 1's column tiles
        acc = tl.zeros([BLOCK], tl.float32)
        for i0 in range(0, h, BLOCK):
            ri = i0 + tl.arange(0, BLOCK)
            rm = ri < h
            t = tl.zeros([BLOCK], tl.float32)
            for c in range(0, ncb):
                t += tl.load(p_base + c * h + ri, mask=rm, other=0.0)
            if EVAL:
                acc += t * tl.load(u_ptr + ri, mask=rm, other=0.0)
            else:
                acc += t * t
                tl.store(u_ptr + ri, t, mask=rm)
        if EVAL:
            sigma = tl.sum(acc, axis=0)
        else:
            inv_t = 1.0 / tl.maximum(tl.sqrt(tl.sum(acc, axis=0)), eps)
            tl.debug_barrier()  # the stores above must be visible to every thread of this program
            for i0 in range(0, h, BLOCK):
                ri = i0 + tl.arange(0, BLOCK)
                tl.store(u_ptr + ri, tl.load(u_ptr + ri, mask=ri < h) * inv_t, mask=ri < h)
            nrb = tl.cdiv(h, Q_BH)  # pass 2's row tiles
            acc = tl.zeros([BLOCK], tl.float32)
            for j0 in range(0, w, BLOCK):
                cj = j0 + tl.arange(0, BLOCK)
                cm = cj < w
                r = tl.zeros([BLOCK], tl.float32)
                for b in range(0, nrb):
                    r += tl.load(q_base + b * w + cj, mask=cm, other=0.0)
                r = r * inv_t
                acc += r * r
                tl.store(v_ptr + cj, r, mask=cm)
            nr2 = tl.sum(acc, axis=0)
            inv_r = 1.0 / tl.maximum(tl.sqrt(nr2), eps)
            tl.debug_barrier()
            for j0 in range(0, w, BLOCK):
                cj = j0 + tl.arange(0, BLOCK)
                tl.store(v_ptr + cj, tl.load(v_ptr + cj, mask=cj < w) * inv_r, mask=cj < w)
            sigma = nr2 * inv_r
            tl.debug_barrier()
        tl.store(sig_ptr + s, sigma)
        # snapshot of (u, v) for the backward: later calls update the buffers before this backward runs
        snap = snap_ptr + s.to(tl.int64) * snap_stride
        for i0 in range(0, h, BLOCK):
            ri = i0 + tl.arange(0, BLOCK)
            tl.store(snap + ri, tl.load(u_ptr + ri, mask=ri < h), mask=ri < h)
        for j0 in range(0, w, BLOCK):
            cj = j0 + tl.arange(0, BLOCK)
            tl.store(snap + hmax + cj, tl.load(v_ptr + cj, mask=cj < w), mask=cj < w)

    @triton.jit
    def _sn_sigma_bwd_kernel(
        D0, D1, D2, D3, D4, D5, D6, D7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        grad_ptr, snap_ptr, snap_stride, hmax,
        BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
    ):  # fmt: skip
        """dW[i, j] = g * u[i] * v[j] for each layer, per tile."""
        pid = tl.program_id(0)
        s, t0 = _slot_of(pid, T1, T2, T3, T4, T5, T6, T7)
        h, A, R, KW, s_i, s_a, s_y, s_x, cl = _shape(
            s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
            K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
            sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
            sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7)  # fmt: skip
        d_ptr = _pick(s, D0, D1, D2, D3, D4, D5, D6, D7)
        w = A * R
        ri, c0, _, _ = _tile(pid, t0, h, w, BH, CW)
        rm = ri < h
        snap = snap_ptr + s.to(tl.int64) * snap_stride
        gu = tl.load(grad_ptr + s).to(tl.float32) * tl.load(snap + ri, mask=rm, other=0.0)
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            vv = tl.load(snap + hmax + cj, mask=cm, other=0.0)
            d = (gu[:, None] * vv[None, :]).to(d_ptr.dtype.element_ty)
            tl.store(d_ptr + offs, d, mask=rm[:, None] & cm[None, :])


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


def _power_impl(ws, us, vs, dims, n_iter: int, eps: float):
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
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
    wv, wtu = dict(zip(("BH", "CW", "BW"), _WV)), dict(zip(("BH", "CW", "BW"), _WTU))
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
            torch.library.wrap_triton(_sn_wv_kernel)[(n1,)](
                *_pad(ws[sl]), *_pad(vs[sl]), *shape, *tiles1, p[sl], p.shape[1], DENSE=dense, **wv
            )
            if n_iter:
                torch.library.wrap_triton(_sn_wtu_kernel)[(n2,)](
                    *_pad(ws[sl]), *shape, *tiles2, p[sl], p.shape[1], q[sl], q.shape[1], P_CW=_WV[1], DENSE=dense,
                    **wtu
                )  # fmt: skip
            torch.library.wrap_triton(_sn_finalize_kernel)[(len(lays),)](
                *finalize, EVAL=n_iter == 0, P_CW=_WV[1], Q_BH=_WTU[0], BLOCK=1024
            )
    return sig, snap


def _grad_impl(grad, snap, ws, dims):
    layouts = [_layout(w, d) for w, d in zip(ws, dims)]
    hmax = max(lay[0] for lay in layouts)
    dws = [torch.empty_like(w) for w in ws]
    spare = dws[0].new_empty(1)  # the unused slots' gradient (never touched)
    for g0 in range(0, len(ws), GROUP):
        sl = slice(g0, g0 + GROUP)
        tiles, n_tiles = _tile_args(layouts[sl], _WV)
        torch.library.wrap_triton(_sn_sigma_bwd_kernel)[(n_tiles,)](
            *_pad(dws[sl], spare), *_shape_args(layouts[sl]), *tiles, grad[sl], snap[sl], snap.shape[1], hmax,
            BH=_WV[0], CW=_WV[1], BW=_WV[2], DENSE=all(lay[9] for lay in layouts[sl]),
        )  # fmt: skip
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
        power = _power_impl if plain_eager(*ws, *us, *vs) else _sn_power_
        sig, snap = power(list(ws), us, vs, dims, n_iter, eps)
        ctx.save_for_backward(snap, *ws)
        ctx.dims = dims
        return sig

    @staticmethod
    def backward(ctx, grad):
        snap, *ws = ctx.saved_tensors
        grad_fn = _grad_impl if plain_eager(grad, snap, *ws) else _sn_sigma_grad
        dws = grad_fn(grad.contiguous(), snap, ws, ctx.dims)
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
    """The kernel takes CUDA tensors, 2-D/4-D weights of one dtype, dim 0 or 1, fp32 buffers, and weights whose
    offsets fit in 32 bits (the kernels' index arithmetic: 8 GiB of fp32 in one layer)."""
    return (
        HAS_TRITON
        and ws[0].is_cuda
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
