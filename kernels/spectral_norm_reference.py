"""Spectral normalisation in plain PyTorch: the reference that the fused kernels are tested against and that
serves every tensor they do not take, op for op what torch.nn.utils.parametrizations.spectral_norm computes;
its eager form with a hand-written backward (CPU tensors outside torch.compile); the argument check that every
implementation makes; and the backward through PyTorch's graph that create_graph=True asks for."""

import torch
import torch.nn.functional as F


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
