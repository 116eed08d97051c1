"""The AC-GAN loss, fused: mean BCE-with-logits on the source logit + weight * mean cross-entropy on the classes.

    loss  = mean_i BCEwithlogits(s_i, t_i) + w * mean_i CE(c_i, y_i)
    stats = [bce, ce, mean_i sigmoid(s_i), mean_i (argmax c_i == y_i)]      float32 [4], no gradient
    d loss / d s_i   = (sigmoid(s_i) - t_i) / B
    d loss / d c_ik  = w * (softmax(c_i)_k - [k == y_i]) / B

Forward: one launch. Each program reduces ROWS rows (an online logsumexp, the label's logit and the argmax
over K in chunks of BLOCK_K) to four partial sums; with one program it writes the results directly, with
several the last program to finish (an atomic counter) adds the partials in a fixed order, so the result is
deterministic. The per-row logsumexp (as max + log-sum) is kept for the backward, one launch that recomputes
the softmax.
All arithmetic is fp32 whatever the input dtype; nothing is read on the host.
"""

import torch
import torch.nn.functional as F

from ._dispatch import (
    OptTensor,
    cdiv,
    check_device,
    eager_on_gpu_of,
    launcher,
    next_pow2,
    plain_eager,
    plain_ops_only,
    triton_supports,
)

try:  # the kernels need triton; the reference below does not
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton ships with CUDA torch and is a dependency on Linux x86-64
    HAS_TRITON = False

STAT_NAMES = ("bce", "ce", "d_prob", "acc")
_NO_IGNORE = -(2**62)  # cross_entropy's ignore_index, at a label no one gives: this loss has none

if HAS_TRITON:

    @triton.jit
    def _source_terms(src_ptr, tgt_ptr, tgt_val, rows, rmask, stride_t, TGT_PTR: tl.constexpr):
        """BCE-with-logits and sigmoid of the source logit for a block of rows (fp32), and the targets."""
        s = tl.load(src_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
        if TGT_PTR:
            t = tl.load(tgt_ptr + rows * stride_t, mask=rmask, other=0.0).to(tl.float32)
        else:
            t = tl.zeros_like(s) + tgt_val
        e = tl.exp(-tl.abs(s))  # in (0, 1]: no overflow at any magnitude
        bce = tl.maximum(s, 0.0) - s * t + tl.log(1.0 + e)
        sig = tl.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return bce, sig, t

    @triton.jit
    def _acgan_loss_fwd_kernel(
        src_ptr, cls_ptr, lab_ptr, tgt_ptr, tgt_val, lse_ptr, part_ptr, cnt_ptr, loss_ptr, stats_ptr,
        B, K, stride_cb, stride_t, cls_weight, n_prog,
        ROWS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
        TGT_PTR: tl.constexpr, SINGLE: tl.constexpr,
    ):  # fmt: skip
        # fp32 whatever the caller's scalars are: Inductor passes Python floats as fp64
        tgt_val, cls_weight = tl.cast(tgt_val, tl.float32), tl.cast(cls_weight, tl.float32)
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
        rmask = rows < B
        bce, sig, _ = _source_terms(src_ptr, tgt_ptr, tgt_val, rows, rmask, stride_t, TGT_PTR)
        lab = tl.load(lab_ptr + rows, mask=rmask, other=0)

        # class logits, chunk by chunk: running max m, running sum of exp(x - m), the label's logit, the argmax
        m = tl.full([ROWS], float("-inf"), tl.float32)
        ssum = tl.zeros([ROWS], tl.float32)
        lab_logit = tl.zeros([ROWS], tl.float32)
        best = tl.full([ROWS], float("-inf"), tl.float32)
        best_idx = tl.zeros([ROWS], tl.int64)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
            cmask = cols < K
            mask2 = rmask[:, None] & cmask[None, :]
            x = tl.load(cls_ptr + rows[:, None] * stride_cb + cols[None, :], mask=mask2, other=0.0).to(tl.float32)
            x = tl.where(cmask[None, :], x, float("-inf"))
            cmax = tl.max(x, axis=1)
            new_m = tl.maximum(m, cmax)
            ssum = ssum * tl.exp(m - new_m) + tl.sum(tl.exp(x - new_m[:, None]), axis=1)
            m = new_m
            # first column attaining the chunk's max; a later chunk wins only if strictly larger (torch.argmax)
            idx = tl.min(tl.where(x == cmax[:, None], cols[None, :], K), axis=1)
            better = cmax > best
            best_idx = tl.where(better, idx, best_idx)
            best = tl.where(better, cmax, best)
            lab_logit += tl.sum(tl.where(cols[None, :] == lab[:, None], x, 0.0), axis=1)
        # logsumexp = m + log(ssum) kept as two parts: at |logits| ~ 1e30 their sum would absorb log(ssum)
        lsum = tl.log(ssum)
        tl.store(lse_ptr + rows, m, mask=rmask)
        tl.store(lse_ptr + B + rows, lsum, mask=rmask)
        # a label outside [0, K) makes its CE NaN (so the loss), where it would otherwise be silently wrong
        ce = tl.where((lab >= 0) & (lab < K), (m - lab_logit) + lsum, float("nan"))
        hit = (best_idx == lab).to(tl.float32)

        p_bce = tl.sum(tl.where(rmask, bce, 0.0), axis=0)
        p_ce = tl.sum(tl.where(rmask, ce, 0.0), axis=0)
        p_sig = tl.sum(tl.where(rmask, sig, 0.0), axis=0)
        p_hit = tl.sum(tl.where(rmask, hit, 0.0), axis=0)
        if SINGLE:
            inv_b = 1.0 / B
            tl.store(loss_ptr, p_bce * inv_b + cls_weight * (p_ce * inv_b))
            tl.store(stats_ptr + 0, p_bce * inv_b)
            tl.store(stats_ptr + 1, p_ce * inv_b)
            tl.store(stats_ptr + 2, p_sig * inv_b)
            tl.store(stats_ptr + 3, p_hit * inv_b)
        else:
            tl.store(part_ptr + pid * 4 + 0, p_bce)
            tl.store(part_ptr + pid * 4 + 1, p_ce)
            tl.store(part_ptr + pid * 4 + 2, p_sig)
            tl.store(part_ptr + pid * 4 + 3, p_hit)
            # acq_rel: our partials are visible before the count; the last program sees everyone's
            done = tl.atomic_add(cnt_ptr, 1, sem="acq_rel")
            if done == n_prog - 1:
                acc = tl.zeros([BLOCK_P, 4], tl.float32)
                cols4 = tl.arange(0, 4)
                for p0 in range(0, n_prog, BLOCK_P):
                    prg = p0 + tl.arange(0, BLOCK_P)
                    acc += tl.load(part_ptr + prg[:, None] * 4 + cols4[None, :], mask=prg[:, None] < n_prog,
                                   other=0.0, volatile=True)  # fmt: skip
                tot = tl.sum(acc, axis=0) / B  # [bce, ce, sig, acc] means
                tl.store(stats_ptr + cols4, tot)
                loss = tl.sum(tl.where(cols4 == 0, tot, 0.0)) + cls_weight * tl.sum(tl.where(cols4 == 1, tot, 0.0))
                tl.store(loss_ptr, loss)

    @triton.jit
    def _acgan_loss_bwd_kernel(
        grad_ptr, src_ptr, cls_ptr, lab_ptr, tgt_ptr, tgt_val, lse_ptr, dsrc_ptr, dcls_ptr,
        B, K, stride_cb, stride_t, cls_weight,
        ROWS: tl.constexpr, BLOCK_K: tl.constexpr, TGT_PTR: tl.constexpr,
    ):  # fmt: skip
        # fp32 whatever the caller's scalars are: Inductor passes Python floats as fp64
        tgt_val, cls_weight = tl.cast(tgt_val, tl.float32), tl.cast(cls_weight, tl.float32)
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
        rmask = rows < B
        g = tl.load(grad_ptr).to(tl.float32) / B  # upstream gradient of the (mean) loss
        _, sig, t = _source_terms(src_ptr, tgt_ptr, tgt_val, rows, rmask, stride_t, TGT_PTR)
        tl.store(dsrc_ptr + rows, (g * (sig - t)).to(dsrc_ptr.dtype.element_ty), mask=rmask)
        lab = tl.load(lab_ptr + rows, mask=rmask, other=0)
        m = tl.load(lse_ptr + rows, mask=rmask, other=0.0)
        lsum = tl.load(lse_ptr + B + rows, mask=rmask, other=0.0)
        gw = g * cls_weight
        valid = ((lab >= 0) & (lab < K))[:, None]  # a label outside [0, K): NaN, as the forward's CE
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
            mask2 = rmask[:, None] & (cols < K)[None, :]
            offs = rows[:, None] * stride_cb + cols[None, :]
            x = tl.load(cls_ptr + offs, mask=mask2, other=float("-inf")).to(tl.float32)
            d = gw * (tl.exp((x - m[:, None]) - lsum[:, None]) - tl.where(cols[None, :] == lab[:, None], 1.0, 0.0))
            d = tl.where(valid, d, float("nan"))
            tl.store(dcls_ptr + offs, d.to(dcls_ptr.dtype.element_ty), mask=mask2)


# ------------------------------------------------------------------------------------------------ launchers

_TILE = 4096  # elements of the class-logit tile a program holds at once
_FWD_ROWS_MAX = 64  # rows per forward program; above this, programs are added (with the counter reduction)
_BWD_ROWS_MAX = 16
# warps per program: None chooses (forward: 8 for rows of 512+ classes, else 4; backward: 4); the benchmark
# test_acgan_loss_warps_sweep sets fixed values on a GPU (at B=64 both kernels are latency-bound, and fewer warps
# mean fewer cross-warp reductions through shared memory)
_NUM_WARPS: int | None = None


def _warps(block_k: int, backward: bool = False) -> int:
    return _NUM_WARPS or (8 if block_k >= 512 and not backward else 4)


def _tiling(b: int, k: int, rows_max: int) -> tuple[int, int]:
    block_k = min(next_pow2(max(k, 16)), 2048)
    rows = max(1, min(next_pow2(b), rows_max, _TILE // block_k))
    return rows, block_k


def _target_args(src: torch.Tensor, target: torch.Tensor | None, target_value: float):
    """(pointer tensor, scalar, stride, has pointer): a per-sample or 0-d tensor target is read on the device
    (its size checked by _checked_labels)."""
    if target is None:
        return src, float(target_value), 0, False
    t = target.reshape(-1)
    return t, 0.0, (0 if t.numel() == 1 else t.stride(0)), True


def _fwd_impl(src, cls, labels, target, target_value: float, cls_weight: float):
    b, k = cls.shape
    rows, block_k = _tiling(b, k, _FWD_ROWS_MAX)
    n_prog = cdiv(b, rows)
    single = n_prog == 1
    loss = torch.empty((), device=src.device, dtype=torch.float32)
    stats = torch.empty(4, device=src.device, dtype=torch.float32)
    lse = torch.empty(2, b, device=src.device, dtype=torch.float32)  # per row: max logit, log sum exp(x - max)
    part = torch.empty(1 if single else n_prog * 4, device=src.device, dtype=torch.float32)
    # the programs' arrival counter (several programs only): a zero fill is a launch of its own, so a single
    # program (B <= 64) gets an unread placeholder instead
    cnt = (torch.empty if single else torch.zeros)(1, device=src.device, dtype=torch.int32)
    tgt, tval, stride_t, has_t = _target_args(src, target, target_value)
    launcher(_acgan_loss_fwd_kernel)[(n_prog,)](
        src, cls, labels, tgt, tval, lse, part, cnt, loss, stats,
        b, k, cls.stride(0), stride_t, float(cls_weight), n_prog,
        ROWS=rows, BLOCK_K=block_k, BLOCK_P=64, TGT_PTR=has_t, SINGLE=single, num_warps=_warps(block_k),
    )  # fmt: skip
    return loss, stats, lse


def _bwd_impl(grad, src, cls, labels, target, target_value: float, cls_weight: float, lse):
    b, k = cls.shape
    rows, block_k = _tiling(b, k, _BWD_ROWS_MAX)
    dsrc = torch.empty_like(src)
    dcls = torch.empty_like(cls)
    tgt, tval, stride_t, has_t = _target_args(src, target, target_value)
    launcher(_acgan_loss_bwd_kernel)[(cdiv(b, rows),)](
        grad, src, cls, labels, tgt, tval, lse, dsrc, dcls,
        b, k, cls.stride(0), stride_t, float(cls_weight),
        ROWS=rows, BLOCK_K=block_k, TGT_PTR=has_t, num_warps=_warps(block_k, backward=True),
    )  # fmt: skip
    return dsrc, dcls


# ------------------------------------------------------------------------------------------------ torch.library

if HAS_TRITON:

    @torch.library.triton_op("fastacgan::acgan_loss_fwd", mutates_args=())
    def _acgan_loss_fwd(
        src: torch.Tensor, cls: torch.Tensor, labels: torch.Tensor, target: OptTensor,
        target_value: float, cls_weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        return _fwd_impl(src, cls, labels, target, target_value, cls_weight)

    @torch.library.triton_op("fastacgan::acgan_loss_bwd", mutates_args=())
    def _acgan_loss_bwd(
        grad: torch.Tensor, src: torch.Tensor, cls: torch.Tensor, labels: torch.Tensor, target: OptTensor,
        target_value: float, cls_weight: float, lse: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        return _bwd_impl(grad, src, cls, labels, target, target_value, cls_weight, lse)


def _backward_with_graph(ctx, grad_loss, src, cls, labels) -> list:
    """d loss / d (src, cls) where create_graph=True asks for the gradients' own graph (a gradient penalty on
    the loss's gradient, a Hessian-vector product): the reference's, by autograd. The kernel's backward makes
    no graph, so a penalty's gradient left out the path through the loss, silently."""
    target = ctx.target if ctx.target is not None else ctx.target_value
    needs = ctx.needs_input_grad[:2]
    loss = acgan_loss_reference(src, cls, target, labels, ctx.cls_weight)[0]
    got = iter(torch.autograd.grad(loss, [t for t, n in zip((src, cls), needs) if n], grad_loss, create_graph=True))
    return [next(got) if n else None for n in needs]


class _FusedLoss(torch.autograd.Function):
    """The loss and its backward (one launch each). Plain eager calls run the launchers directly, anything that
    traces (torch.compile, make_fx) the registered ops (see _dispatch.plain_eager); the same kernels either way."""

    @staticmethod
    def forward(ctx, src, cls, labels, target, target_value, cls_weight):
        fwd = eager_on_gpu_of(_fwd_impl, src) if plain_eager(src, cls, labels, target) else _acgan_loss_fwd
        loss, stats, lse = fwd(src, cls, labels, target, target_value, cls_weight)
        ctx.mark_non_differentiable(stats)
        # no zero-filled gradient for stats (by default autograd makes one, a launch in every backward)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(src, cls, labels, lse)
        ctx.target, ctx.target_value, ctx.cls_weight = target, target_value, cls_weight
        return loss, stats

    @staticmethod
    def backward(ctx, grad_loss, grad_stats):
        if grad_loss is None:  # only stats reached the loss being differentiated: they carry no gradient
            return None, None, None, None, None, None
        src, cls, labels, lse = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return (*_backward_with_graph(ctx, grad_loss, src, cls, labels), None, None, None, None)
        bwd = eager_on_gpu_of(_bwd_impl, src) if plain_eager(grad_loss, src, cls, lse) else _acgan_loss_bwd
        dsrc, dcls = bwd(grad_loss.contiguous(), src, cls, labels, ctx.target, ctx.target_value, ctx.cls_weight,
                         lse)  # fmt: skip
        return dsrc, dcls, None, None, None, None


def _checked_labels(src_logits, cls_logits, target, labels) -> torch.Tensor:
    """Both implementations' argument check (shapes only: nothing read on the host); the labels as int64."""
    if cls_logits.ndim != 2 or src_logits.shape != cls_logits.shape[:1] or labels.shape != src_logits.shape:
        raise ValueError(
            f"acgan_loss: expected src [B], cls [B, K], labels [B]; got {tuple(src_logits.shape)}, "
            f"{tuple(cls_logits.shape)}, {tuple(labels.shape)}"
        )
    if not src_logits.device == cls_logits.device == labels.device:  # (the kernels would get a foreign pointer)
        raise ValueError(f"acgan_loss: src, cls and labels must be on one device, got {src_logits.device}, "
                         f"{cls_logits.device}, {labels.device}")  # fmt: skip
    if cls_logits.numel() == 0:  # the kernels would leave the loss unwritten (a mean of nothing)
        raise ValueError(f"acgan_loss: an empty batch or no classes: cls {tuple(cls_logits.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"acgan_loss: labels must be integer class indices, got {labels.dtype}")
    if isinstance(target, torch.Tensor) and target.numel() not in (1, src_logits.numel()):
        raise ValueError(f"acgan_loss: target has {target.numel()} elements, expected 1 or B={src_logits.numel()}")
    return labels.long()  # int32 labels too (a no-op for int64)


def acgan_loss_fused(src_logits, cls_logits, target, labels, cls_weight: float = 1.0):
    """The Triton implementation (CUDA tensors; CPU tensors too under TRITON_INTERPRET=1)."""
    if not HAS_TRITON:
        raise RuntimeError("acgan_loss_fused needs triton")
    labels = _checked_labels(src_logits, cls_logits, target, labels)
    check_device("acgan_loss_fused", "acgan_loss", _acgan_loss_fwd_kernel, src_logits.device)
    t = target if isinstance(target, torch.Tensor) else None
    tval = 0.0 if t is not None else float(target)
    if t is not None:
        t = t.detach().to(device=src_logits.device)
    return _FusedLoss.apply(src_logits.contiguous(), cls_logits.contiguous(), labels.contiguous(), t, tval,
                            float(cls_weight))  # fmt: skip


# ------------------------------------------------------------------------------------------------ reference


def acgan_loss_reference(
    src_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    target: float | torch.Tensor,
    labels: torch.Tensor,
    cls_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """src_logits [B], cls_logits [B, K], target scalar or B values in [0, 1], labels [B] integers in [0, K).

    Returns (loss: scalar, stats: [4] as in STAT_NAMES), float32 for float32/bf16/fp16 inputs (float64 for
    float64, so gradcheck can run on it); half-precision logits are upcast, so it is stable at any magnitude.
    """
    labels = _checked_labels(src_logits, cls_logits, target, labels)
    dt = torch.promote_types(src_logits.dtype, torch.float32)
    s = src_logits.to(dt)
    c = cls_logits.to(dt)
    if isinstance(target, torch.Tensor):
        t = target.to(device=s.device, dtype=dt).reshape(-1).expand_as(s)
    else:  # a fill on the device: no host-to-device copy (which CUDA graph capture refuses)
        t = torch.full_like(s, float(target))
    bce = F.binary_cross_entropy_with_logits(s, t)
    ce = F.cross_entropy(c, labels, ignore_index=_NO_IGNORE)  # a -100 label is refused too, not left out
    loss = bce + cls_weight * ce
    with torch.no_grad():
        stats = torch.stack([bce, ce, torch.sigmoid(s).mean(), (c.argmax(1) == labels).float().mean()])
    return loss, stats


def acgan_loss(src_logits, cls_logits, target, labels, cls_weight: float = 1.0):
    """The AC-GAN loss and its statistics (see the module docstring): the fused Triton kernels on CUDA tensors,
    the reference elsewhere (and on GPUs older than Triton supports: compute capability below 7.0). target: a float
    (1.0 real, 0.0 fake, 0.9 smoothed) or a per-sample tensor [B]. Inside torch.func transforms, the reference."""
    if HAS_TRITON and triton_supports(src_logits.device) and not plain_ops_only():
        return acgan_loss_fused(src_logits, cls_logits, target, labels, cls_weight)
    return acgan_loss_reference(src_logits, cls_logits, target, labels, cls_weight)
