"""The Triton kernels of `fastacgan.kernels.spectral_norm` (launched by spectral_norm_fused.py): the power
iteration of every spectrally normalised layer of a model in a few launches, W / sigma, and their backward.

For a weight W viewed as a matrix W_mat [h, w] (dim `dim` first, the rest flattened, as PyTorch does), one
training-mode call runs n power iterations on the persistent buffers u [h], v [w] and returns sigma:
    u <- normalize(W_mat v),  v <- normalize(W_mat^T u)          (n times, in place; PyTorch's order)
    sigma = u^T W_mat v,  d sigma / d W_mat = u v^T               (u, v constants, as in PyTorch)
After the last v update, u^T W_mat v = (W_mat^T u) . v = ||r||^2 / max(||r||, eps) with r = W_mat^T u, so
sigma comes with the last pass for free. In eval mode (n = 0) it is u^T W_mat v with the stored vectors.

The work is bound by reading the weights (two reads per iteration), so it is spread over the whole GPU: every
weight is cut into tiles of a few thousand elements, and one launch covers the tiles of all layers of a group
(up to 8 layers, the kernels' argument slots; pointers and shapes picked per tile with `tl.where`). Each power
iteration is three launches for the whole model, whatever its number of layers:
    1. t = W v       per tile: a partial sum over the tile's columns        -> P [column tiles, h]
    2. W^T t         per tile: t's rows (summed from P), a partial over rows -> Q [row tiles, w]
    3. finalize      per layer: u = t / |t|, v = r / |r| with r = W^T t / |t|, sigma; u, v written in place
(u is only needed up to scale by pass 2, since W^T u = W^T t / |t|.) A pass's output is needed in full before
the next can start, which is why a pass is a launch: one launch for everything would need a grid-wide barrier
(all programs resident at once, spinning), which the interpreter cannot run and a busy GPU can deadlock.
Eval is passes 1 and 3. W / sigma for every layer is one launch over pass 1's tiles. The backward is one
launch through sigma alone, two through W / sigma: sum(G * W) per tile, then
dW = G / sigma - (sum(G * W) / sigma^2) u v^T.
The weight is read where it lies, nothing is copied: when each row's columns form one contiguous block
(contiguous weights, channels-last convs: every discriminator layer) the kernels walk them in memory order, so
a warp reads consecutive addresses, and work out each column's W_mat index (channels-last stores a row as
(y, x, a)); other layouts (ConvTranspose's dim=1, strided views) are addressed through their strides. All
arithmetic is fp32.
"""

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover
    HAS_TRITON = False

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
