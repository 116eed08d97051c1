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
    def _store_w(ptr, offs, val, rm, cm, full):
        """Store a tile in ptr's dtype; `full` as in _load_w: masked by row only, so vector stores."""
        val = val.to(ptr.dtype.element_ty)
        if full:
            tl.store(ptr + offs, val, mask=rm[:, None])
        else:
            tl.store(ptr + offs, val, mask=rm[:, None] & cm[None, :])

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
    def _sum_parts(base, idx, m, n_idx, n_parts, PARTS: tl.constexpr, BLOCK: tl.constexpr):
        """sum over c < n_parts of base[c * n_idx + idx] (a pass's partial sums), PARTS of them per load."""
        acc = tl.zeros([BLOCK], tl.float32)
        for c0 in range(0, n_parts, PARTS):
            c = c0 + tl.arange(0, PARTS)
            mask = (c < n_parts)[:, None] & m[None, :]
            acc += tl.sum(tl.load(base + c[:, None] * n_idx + idx[None, :], mask=mask, other=0.0), axis=0)
        return acc

    @triton.jit
    def _sn_finalize_kernel(
        U0, U1, U2, U3, U4, U5, U6, U7, V0, V1, V2, V3, V4, V5, V6, V7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        p_ptr, p_stride, q_ptr, q_stride, sig_ptr, snap_ptr, snap_stride, hmax, eps,
        EVAL: tl.constexpr, P_CW: tl.constexpr, Q_BH: tl.constexpr, BLOCK: tl.constexpr, PARTS: tl.constexpr,
    ):  # fmt: skip
        """Pass 3, one program per layer: t = sum of P; training: u = t/|t|, r = sum of Q / |t|, v = r/|r|,
        sigma = |r|^2 / max(|r|, eps), u and v written in place; eval: sigma = u . t. And the (u, v) snapshot.
        One program's time is its chain of dependent memory accesses: the partial sums are read PARTS rows at a
        time, and the first BLOCK entries of u and of v (all of them, for the discriminators' layers) stay in
        registers until they are normalised, then are written once to the buffer and the snapshot."""
        eps = tl.cast(eps, tl.float32)  # Inductor passes Python floats as fp64
        s = tl.program_id(0)
        u_ptr = _pick(s, U0, U1, U2, U3, U4, U5, U6, U7)
        v_ptr = _pick(s, V0, V1, V2, V3, V4, V5, V6, V7)
        h = _pick(s, h0, h1, h2, h3, h4, h5, h6, h7)
        w = _pick(s, A0, A1, A2, A3, A4, A5, A6, A7) * _pick(s, R0, R1, R2, R3, R4, R5, R6, R7)
        p_base = p_ptr + s.to(tl.int64) * p_stride
        q_base = q_ptr + s.to(tl.int64) * q_stride
        snap = snap_ptr + s.to(tl.int64) * snap_stride  # (u, v) for the backward: later calls update the buffers
        ncb = tl.cdiv(w, P_CW)  # pass 1's column tiles
        nrb = tl.cdiv(h, Q_BH)  # pass 2's row tiles
        k0 = tl.arange(0, BLOCK)
        t0 = _sum_parts(p_base, k0, k0 < h, h, ncb, PARTS, BLOCK)  # t = W v, its first BLOCK rows
        if EVAL:
            acc = t0 * tl.load(u_ptr + k0, mask=k0 < h, other=0.0)
            for i0 in range(BLOCK, h, BLOCK):
                ri = i0 + k0
                t = _sum_parts(p_base, ri, ri < h, h, ncb, PARTS, BLOCK)
                acc += t * tl.load(u_ptr + ri, mask=ri < h, other=0.0)
            sigma = tl.sum(acc, axis=0)
            for i0 in range(0, h, BLOCK):
                ri = i0 + k0
                tl.store(snap + ri, tl.load(u_ptr + ri, mask=ri < h), mask=ri < h)
            for j0 in range(0, w, BLOCK):
                cj = j0 + k0
                tl.store(snap + hmax + cj, tl.load(v_ptr + cj, mask=cj < w), mask=cj < w)
        else:
            acc = t0 * t0
            for i0 in range(BLOCK, h, BLOCK):  # rows past the first BLOCK: stored, normalised below
                ri = i0 + k0
                t = _sum_parts(p_base, ri, ri < h, h, ncb, PARTS, BLOCK)
                acc += t * t
                tl.store(u_ptr + ri, t, mask=ri < h)
            inv_t = 1.0 / tl.maximum(tl.sqrt(tl.sum(acc, axis=0)), eps)
            tl.store(u_ptr + k0, t0 * inv_t, mask=k0 < h)
            tl.store(snap + k0, t0 * inv_t, mask=k0 < h)
            tl.debug_barrier()  # the stores above must be visible to every thread of this program
            for i0 in range(BLOCK, h, BLOCK):
                ri = i0 + k0
                uu = tl.load(u_ptr + ri, mask=ri < h) * inv_t
                tl.store(u_ptr + ri, uu, mask=ri < h)
                tl.store(snap + ri, uu, mask=ri < h)
            # r = W^T u = (W^T t) / |t|, from pass 2's partials
            r0 = _sum_parts(q_base, k0, k0 < w, w, nrb, PARTS, BLOCK) * inv_t
            acc = r0 * r0
            for j0 in range(BLOCK, w, BLOCK):
                cj = j0 + k0
                r = _sum_parts(q_base, cj, cj < w, w, nrb, PARTS, BLOCK) * inv_t
                acc += r * r
                tl.store(v_ptr + cj, r, mask=cj < w)
            nr2 = tl.sum(acc, axis=0)
            inv_r = 1.0 / tl.maximum(tl.sqrt(nr2), eps)
            tl.store(v_ptr + k0, r0 * inv_r, mask=k0 < w)
            tl.store(snap + hmax + k0, r0 * inv_r, mask=k0 < w)
            tl.debug_barrier()
            for j0 in range(BLOCK, w, BLOCK):
                cj = j0 + k0
                vv = tl.load(v_ptr + cj, mask=cj < w) * inv_r
                tl.store(v_ptr + cj, vv, mask=cj < w)
                tl.store(snap + hmax + cj, vv, mask=cj < w)
            sigma = nr2 * inv_r
        tl.store(sig_ptr + s, sigma)

    @triton.jit
    def _sn_scale_kernel(
        W0, W1, W2, W3, W4, W5, W6, W7, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        sig_ptr,
        BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
    ):  # fmt: skip
        """Y = W / sigma for each layer, per tile (Y: W's layout, any float dtype; the division in fp32)."""
        pid = tl.program_id(0)
        s, t0 = _slot_of(pid, T1, T2, T3, T4, T5, T6, T7)
        h, A, R, KW, s_i, s_a, s_y, s_x, cl = _shape(
            s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
            K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
            sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
            sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7)  # fmt: skip
        w_ptr = _pick(s, W0, W1, W2, W3, W4, W5, W6, W7)
        y_ptr = _pick(s, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
        w = A * R
        ri, c0, _, _ = _tile(pid, t0, h, w, BH, CW)
        rm = ri < h
        sigma = tl.load(sig_ptr + s)
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            full = DENSE and c0 + j0 + BW <= w
            _store_w(y_ptr, offs, _load_w(w_ptr, offs, rm, cm, full) / sigma, rm, cm, full)

    @triton.jit
    def _sn_gw_kernel(
        G0, G1, G2, G3, G4, G5, G6, G7, W0, W1, W2, W3, W4, W5, W6, W7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        part_ptr,
        BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
    ):  # fmt: skip
        """Backward of Y = W / sigma, pass 1, per tile: part[tile] = sum over the tile of G * W (G: W's layout)."""
        pid = tl.program_id(0)
        s, t0 = _slot_of(pid, T1, T2, T3, T4, T5, T6, T7)
        h, A, R, KW, s_i, s_a, s_y, s_x, cl = _shape(
            s, h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
            K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
            sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
            sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7)  # fmt: skip
        g_ptr = _pick(s, G0, G1, G2, G3, G4, G5, G6, G7)
        w_ptr = _pick(s, W0, W1, W2, W3, W4, W5, W6, W7)
        w = A * R
        ri, c0, _, _ = _tile(pid, t0, h, w, BH, CW)
        rm = ri < h
        acc = tl.zeros([BH], tl.float32)
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            full = DENSE and c0 + j0 + BW <= w
            acc += tl.sum(_load_w(g_ptr, offs, rm, cm, full) * _load_w(w_ptr, offs, rm, cm, full), axis=1)
        tl.store(part_ptr + pid, tl.sum(acc, axis=0))

    @triton.jit
    def _sn_bwd_kernel(
        D0, D1, D2, D3, D4, D5, D6, D7, G0, G1, G2, G3, G4, G5, G6, G7,
        h0, h1, h2, h3, h4, h5, h6, h7, A0, A1, A2, A3, A4, A5, A6, A7, R0, R1, R2, R3, R4, R5, R6, R7,
        K0, K1, K2, K3, K4, K5, K6, K7, si0, si1, si2, si3, si4, si5, si6, si7,
        sa0, sa1, sa2, sa3, sa4, sa5, sa6, sa7, sy0, sy1, sy2, sy3, sy4, sy5, sy6, sy7,
        sx0, sx1, sx2, sx3, sx4, sx5, sx6, sx7, O0, O1, O2, O3, O4, O5, O6, O7, T1, T2, T3, T4, T5, T6, T7,
        n_tiles, coef_ptr, sig_ptr, snap_ptr, snap_stride, hmax,
        NORMALIZED: tl.constexpr, BH: tl.constexpr, CW: tl.constexpr, BW: tl.constexpr, DENSE: tl.constexpr,
        PB: tl.constexpr,
    ):  # fmt: skip
        """Per tile, with u, v the forward's snapshot:
        NORMALIZED = 0 (backward of sigma):          dW = coef[layer] u v^T;
        NORMALIZED = 1 (backward of Y = W / sigma):  dW = G / sigma - (sum(G * W) / sigma^2) u v^T, the sum
        added up from the layer's tiles' partials (coef, from _sn_gw_kernel). G: W's layout."""
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
        if NORMALIZED:
            g_ptr = _pick(s, G0, G1, G2, G3, G4, G5, G6, G7)
            t1 = tl.minimum(_pick(s, T1, T2, T3, T4, T5, T6, T7, n_tiles), n_tiles)  # the next layer's first tile
            acc = tl.zeros([PB], tl.float32)
            for k in range(t0, t1, PB):
                acc += tl.load(coef_ptr + k + tl.arange(0, PB), mask=k + tl.arange(0, PB) < t1, other=0.0)
            sigma = tl.load(sig_ptr + s)
            coef = -tl.sum(acc, axis=0) / (sigma * sigma)
        else:
            coef = tl.load(coef_ptr + s).to(tl.float32)
        cu = coef * tl.load(snap + ri, mask=rm, other=0.0)
        for j0 in range(0, CW, BW):
            offs, cj, cm = _columns(ri, c0 + j0, BW, A, R, KW, s_i, s_a, s_y, s_x, cl, DENSE)
            full = DENSE and c0 + j0 + BW <= w
            d = cu[:, None] * tl.load(snap + hmax + cj, mask=cm, other=0.0)[None, :]
            if NORMALIZED:
                d += _load_w(g_ptr, offs, rm, cm, full) / sigma
            _store_w(d_ptr, offs, d, rm, cm, full)


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
            torch.library.wrap_triton(_sn_wv_kernel)[(n1,)](
                *_pad(ws[sl]), *_pad(vs[sl]), *shape, *tiles1, p[sl], p.shape[1], DENSE=dense, **wv
            )
            if n_iter:
                torch.library.wrap_triton(_sn_wtu_kernel)[(n2,)](
                    *_pad(ws[sl]), *shape, *tiles2, p[sl], p.shape[1], q[sl], q.shape[1], P_CW=_WV[1], DENSE=dense,
                    **wtu
                )  # fmt: skip
            torch.library.wrap_triton(_sn_finalize_kernel)[(len(lays),)](
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
        torch.library.wrap_triton(_sn_scale_kernel)[(n_tiles,)](
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
            torch.library.wrap_triton(_sn_gw_kernel)[(n_tiles,)](
                *_pad(gs), *_pad(ws[sl]), *shape, *tiles, c, DENSE=dense, **_tile_kw(_WV)
            )
        else:
            gs, c, s = dws[sl], coef[sl], coef[sl]  # G and sigma: not read
        torch.library.wrap_triton(_sn_bwd_kernel)[(n_tiles,)](
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
        ws: list[torch.Tensor], us: list[torch.Tensor], vs: list[torch.Tensor], dims: list[int], n_iter: int,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        return _power_impl(ws, us, vs, dims, n_iter, eps)

    @torch.library.triton_op("fastacgan::sn_sigma_grad", mutates_args=())
    def _sn_sigma_grad(
        grad: torch.Tensor, snap: torch.Tensor, ws: list[torch.Tensor], dims: list[int]
    ) -> list[torch.Tensor]:
        return _sigma_grad_impl(grad, snap, ws, dims)

    @torch.library.triton_op("fastacgan::sn_normalize_", mutates_args=("us", "vs"))
    def _sn_normalize_(
        ws: list[torch.Tensor], us: list[torch.Tensor], vs: list[torch.Tensor], dims: list[int], n_iter: int,
        eps: float, out_dtype: torch.dtype | None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:  # fmt: skip
        return _normalize_impl(ws, us, vs, dims, n_iter, eps, out_dtype)

    @torch.library.triton_op("fastacgan::sn_normalize_grad", mutates_args=())
    def _sn_normalize_grad(
        grads: list[torch.Tensor], sig: torch.Tensor, snap: torch.Tensor, ws: list[torch.Tensor], dims: list[int]
    ) -> list[torch.Tensor]:
        return _normalize_grad_impl(grads, sig, snap, ws, dims)


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
        grad_fn = _sigma_grad_impl if plain_eager(grad, snap, *ws) else _sn_sigma_grad
        dws = grad_fn(grad.contiguous(), snap, ws, ctx.dims)
        return (None, None, None, None, None, *dws)


class _FusedNormalize(torch.autograd.Function):
    """W_l / sigma_l for every layer (power iteration, then the division: one launch for all layers; buffers
    updated in place); backward: dW = G / sigma - (sum(G * W) / sigma^2) u v^T, two launches for all layers."""

    @staticmethod
    def forward(ctx, us, vs, dims, n_iter, eps, out_dtype, *ws):
        fn = _normalize_impl if plain_eager(*ws, *us, *vs) else _sn_normalize_
        ys, sig, snap = fn(list(ws), us, vs, dims, n_iter, eps, out_dtype)
        ctx.save_for_backward(sig, snap, *ws)
        ctx.dims = dims
        return tuple(ys)

    @staticmethod
    def backward(ctx, *grads):
        sig, snap, *ws = ctx.saved_tensors
        grad_fn = _normalize_grad_impl if plain_eager(sig, snap, *grads, *ws) else _sn_normalize_grad
        dws = grad_fn(list(grads), sig, snap, ws, ctx.dims)
        return (None, None, None, None, None, None, *dws)


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


def spectral_normalize_reference(ws, us, vs, dims, n_power_iterations: int, eps: float,
                                 out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """Plain PyTorch: [W_l / sigma_l] (in out_dtype, if given), sigma as spectral_norm_sigma_reference gives it."""
    sig = spectral_norm_sigma_reference(ws, us, vs, dims, n_power_iterations, eps)
    ys = [w / sig[i] for i, w in enumerate(ws)]
    return ys if out_dtype is None else [y.to(out_dtype) for y in ys]


def spectral_normalize_fused(ws, us, vs, dims, n_power_iterations: int, eps: float,
                             out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """The Triton implementation of spectral_normalize (CUDA tensors; CPU tensors under TRITON_INTERPRET=1)."""
    if not HAS_TRITON:
        raise RuntimeError("spectral_normalize_fused needs triton")
    ys = _FusedNormalize.apply(list(us), list(vs), list(dims), int(n_power_iterations), float(eps), out_dtype, *ws)
    return list(ys)


def spectral_normalize(ws, us, vs, dims, n_power_iterations: int, eps: float = 1e-12,
                       out_dtype: torch.dtype | None = None) -> list[torch.Tensor]:  # fmt: skip
    """The spectrally normalised weights [W_l / sigma_l] of every layer (any mix of shapes), running
    `n_power_iterations` on the buffers us, vs in place first (0 = eval), with PyTorch's gradient (u, v held
    constant). out_dtype: the dtype of the results (e.g. the autocast dtype, saving a cast of each weight; the
    division is done in fp32 either way). Fused on CUDA (4 launches forward, 2 backward, for up to 8 layers),
    the reference elsewhere."""
    if out_dtype is not None and not out_dtype.is_floating_point:
        raise ValueError(f"spectral_normalize: out_dtype must be a floating-point dtype, got {out_dtype}")
    use = _use_fused(ws, us, vs, dims)
    fn = spectral_normalize_fused if use else spectral_normalize_reference
    return fn(ws, us, vs, dims, n_power_iterations, eps, out_dtype)


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
