"""Fused spectral norm against torch.nn.utils.parametrizations.spectral_norm (kernel under TRITON_INTERPRET=1)."""

import copy
import importlib
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from fastacgan.config import TrainConfig, resolve_spec
from fastacgan.kernels import (
    SpectralNormGroup,
    spectral_norm,
    spectral_norm_sigma_fused,
    spectral_norm_sigma_reference,
    spectral_normalize,
    spectral_normalize_eager,
    spectral_normalize_fused,
    spectral_normalize_reference,
)
from fastacgan.kernels.spectral_norm import _matrix_to_weight, weight_to_matrix
from fastacgan.models import Discriminator

sn_mod = importlib.import_module("fastacgan.kernels.spectral_norm")  # the module; the package exports a function
fused_mod = importlib.import_module("fastacgan.kernels.spectral_norm_fused")  # its launchers and autograd functions
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(params=["reference", "eager", "fused"])
def impl(request, monkeypatch):
    """Run a test with the PyTorch reference path forced; with the eager CPU path (the reference's maths with a
    hand-written backward: what CPU tensors get outside torch.compile; CUDA tensors get the reference there); and
    with the Triton kernel forced (interpreted on CPU tensors without a GPU; with one, for CUDA tensors: a
    module's initial power iterations run before .to())."""
    if request.param == "fused":
        monkeypatch.setattr(sn_mod, "_use_fused", lambda ws, *a: ws[0].is_cuda or not torch.cuda.is_available())
    else:
        monkeypatch.setattr(sn_mod, "_use_fused", lambda *a: False)
    if request.param == "reference":
        monkeypatch.setattr(sn_mod, "spectral_normalize_eager", spectral_normalize_reference)
    return request.param


LAYERS = {
    "linear": lambda: nn.Linear(7, 5),
    "linear_1x1": lambda: nn.Linear(1, 1),
    "conv": lambda: nn.Conv2d(6, 9, 3),
    "conv_k4": lambda: nn.Conv2d(3, 17, 4, 2, 1),
    "conv_channels_last": lambda: nn.Conv2d(5, 8, 3).to(memory_format=torch.channels_last),
    "conv_transpose": lambda: nn.ConvTranspose2d(6, 10, 4, 2, 1),  # dim=1
    "embedding": lambda: nn.Embedding(11, 6),
}


def make_pair(kind, n_iter=1):
    """(ours, PyTorch's) on identical weights and identical RNG draws for u and v."""
    torch.manual_seed(0)
    base = LAYERS[kind]().to(DEVICE)
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(1)
    spectral_norm(a, n_power_iterations=n_iter)
    torch.manual_seed(1)
    parametrizations.spectral_norm(b, n_power_iterations=n_iter)
    return a, b


def sn_state(m):
    p = m.parametrizations.weight
    return p[0]._u, p[0]._v, m.weight


def assert_close(a, b, what, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda msg: f"{what}: {msg}")


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("steps", [1, 5, 50])
def test_layer_matches_pytorch(kind, steps, impl):
    a, b = make_pair(kind)
    assert_close(a.parametrizations.weight[0]._u, b.parametrizations.weight[0]._u, "initial u", 1e-6, 1e-5)
    x = torch.randint(11, (4,), device=DEVICE) if kind == "embedding" else None
    for _ in range(steps):
        wa, _ = a.weight, b.weight  # each access in training mode runs the power iteration
    for name, ta, tb in zip(("u", "v", "normalised weight"), sn_state(a), sn_state(b)):
        assert_close(ta, tb, f"{kind} after {steps} steps: {name}")
    # gradient of a loss through the normalised weight, with respect to the raw weight
    probe = torch.randn_like(wa)
    ga = torch.autograd.grad((a.weight * probe).sum(), a.parametrizations.weight.original)[0]
    gb = torch.autograd.grad((b.weight * probe).sum(), b.parametrizations.weight.original)[0]
    # the gradient is (probe - (u . probe v) u v^T) / sigma: its two terms cancel (exactly, for a 1x1 weight),
    # leaving rounding of the size of probe / sigma
    raw = a.parametrizations.weight.original.detach().flatten()
    sigma = raw.dot(raw) / raw.dot(wa.detach().flatten())  # wa = raw / sigma
    assert_close(ga, gb, f"{kind} gradient", atol=1e-5 * max(1.0, float(probe.abs().max() / sigma)))
    if x is not None:
        assert_close(a(x), b(x), "embedding output")


@pytest.mark.parametrize("kind", ["conv", "conv_transpose", "linear"])
def test_eval_mode_does_not_update_and_matches(kind, impl):
    a, b = make_pair(kind)
    a.eval()
    b.eval()
    u0 = a.parametrizations.weight[0]._u.clone()
    wa, wb = a.weight, b.weight
    assert torch.equal(a.parametrizations.weight[0]._u, u0)
    assert_close(wa, wb, "eval weight")


INPUTS = {"linear": (4, 7), "conv": (2, 6, 7, 7), "conv_channels_last": (2, 5, 6, 6), "conv_transpose": (2, 6, 4, 4)}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_second_derivatives_match_pytorch(kind, impl):
    """create_graph=True, as a gradient penalty makes it: one on the input (R1, WGAN-GP) and one on the weight's
    own gradient (a Hessian-vector product, which differentiates the normalisation's backward): the penalty's
    gradient with respect to the raw weight is PyTorch's (the kernels' backward made no graph: an error, or a
    gradient short of the path through sigma)."""
    torch.backends.cudnn.allow_tf32 = False  # (a GPU's TF32 convolutions would round W / sigma's last bits apart)
    a, b = make_pair(kind)
    x = torch.randn(*INPUTS[kind], generator=torch.Generator().manual_seed(2)).to(DEVICE)
    got = []
    for m in (a, b):
        w, xi = m.parametrizations.weight.original, x.clone().requires_grad_()
        gx, gw = torch.autograd.grad(torch.tanh(m(xi)).square().sum(), (xi, w), create_graph=True)
        got.append(torch.autograd.grad(gx.square().sum() + gw.square().sum(), w)[0])
    assert got[1].abs().max() > 0
    assert_close(got[0], got[1], f"{kind}: d penalty / d W", atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("normalized", [True, False], ids=["normalize", "sigma"])
def test_grouped_second_derivatives_match_the_reference(normalized, impl):
    """The same for every implementation's grouped call, over layers of different shapes (each layer's u and v
    found in the shared snapshot): the gradient of a penalty on the weights' gradients."""
    ws, dims, us, vs, _ = normalize_inputs(7)
    got = []
    for fn in ("impl", "reference"):
        u2, v2 = [u.clone() for u in us], [v.clone() for v in vs]
        if normalized:
            call = spectral_normalize if fn == "impl" else spectral_normalize_reference
            outs = call(ws, u2, v2, dims, 1, 1e-12)
            loss = sum(torch.tanh(y).square().sum() for y in outs)
        else:
            call = sn_mod.spectral_norm_sigma if fn == "impl" else spectral_norm_sigma_reference
            loss = call(ws, u2, v2, dims, 1, 1e-12).pow(3).sum()  # (tanh would saturate: sigma is 1 to 40 here)
        gws = torch.autograd.grad(loss, ws, create_graph=True)
        got.append(torch.autograd.grad(sum(g.square().sum() for g in gws), ws))
    assert all(ref.abs().max() > 0 for ref in got[1][:4])  # (the 1x1 layer's W / sigma is constant)
    for i, (g, ref) in enumerate(zip(*got)):
        assert_close(g, ref, f"layer {i}", atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_torch_func_transforms_match_pytorch(kind, impl):
    """torch.func.grad through the layer in training mode (the power iteration runs), and per-sample gradients in
    eval mode (vmap over grad, as DP-SGD takes them): PyTorch's gradients and buffers. The fused ops' own
    autograd.Functions cannot run inside a transform ("it must override the setup_context staticmethod"): their
    references do."""
    from torch.func import functional_call, grad, vmap

    torch.backends.cudnn.allow_tf32 = False  # (restored after the test: conftest's _cudnn_flags_restored)
    a, b = make_pair(kind)
    x = torch.randn(*INPUTS[kind], generator=torch.Generator().manual_seed(3)).to(DEVICE)
    got = []
    for m in (a, b):
        buffers = dict(m.named_buffers())

        def loss(params, xi, m=m, buffers=buffers):
            return torch.tanh(functional_call(m, {**params, **buffers}, (xi,))).square().sum()

        params = {k: v.detach() for k, v in m.named_parameters()}
        trained = grad(loss)(params, x)
        m.eval()
        per_sample = vmap(grad(loss), in_dims=(None, 0))(params, x.unsqueeze(1))
        got.append((trained, per_sample, sn_state(m)[:2]))
    (ta, pa, ba), (tb, pb, bb) = got
    for k in tb:
        assert pb[k].shape[0] == x.shape[0]
        assert_close(ta[k], tb[k], f"{k}: gradient")
        assert_close(pa[k], pb[k], f"{k}: per-sample gradients")
    for ours, theirs, name in zip(ba, bb, "uv"):
        assert_close(ours, theirs, f"{name} after the training-mode call")


def test_jit_trace_matches_pytorch(impl):
    """torch.jit.trace of a model with spectral-norm layers in eval mode (a TorchScript or legacy ONNX export of a
    generator that uses them, BigGAN-style): the traced model computes what PyTorch's does, without a tracer
    warning. It failed with "unordered_map::at" (the fused ops' autograd.Functions: the references run there)."""
    torch.backends.cudnn.allow_tf32 = False
    models = []
    for sn in (spectral_norm, parametrizations.spectral_norm):
        torch.manual_seed(4)
        models.append(nn.Sequential(sn(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU(),
                                    sn(nn.ConvTranspose2d(8, 4, 4, 2, 1)), nn.Flatten(), sn(nn.Linear(4 * 8 * 8, 5)))
                      .to(DEVICE).eval())  # fmt: skip
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # (torch 2.13 deprecates jit.trace; it still runs)
        traced = torch.jit.trace(models[0], x)
    y = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(6)).to(DEVICE)  # (another batch)
    assert_close(traced(y), models[1](y), "traced, against PyTorch's")
    assert_close(models[0](y), models[1](y), "eager, against PyTorch's")


def test_a_copy_made_between_a_group_update_and_the_forward():
    """copy.deepcopy of a model after SpectralNormGroup.update() and before its forward (an EMA model, a snapshot)
    failed: the pending W / sigma is a tensor of the original's graph. The copy leaves it out and computes its own,
    the same values; the original still takes its pending one."""
    torch.manual_seed(0)
    model = nn.Sequential(spectral_norm(nn.Linear(8, 5)), nn.Tanh(), spectral_norm(nn.Linear(5, 2))).to(DEVICE)
    group = SpectralNormGroup(model)
    ys = group.update(True)
    twin = copy.deepcopy(model)
    assert all(p.pending is None for *_, p in SpectralNormGroup(twin).entries)
    assert all(p.pending is y for y, (*_, p) in zip(ys, group.entries))  # the original's, untouched
    twin.eval()  # (no further power iteration: the buffers are the original's after its update)
    x = torch.randn(3, 8, device=DEVICE)
    assert_close(twin(x), model(x), "the copy against the original")


def test_state_dict_round_trips_both_ways():
    a, b = make_pair("conv")
    assert (
        set(a.state_dict())
        == set(b.state_dict())
        == {"bias", "parametrizations.weight.original", "parametrizations.weight.0._u", "parametrizations.weight.0._v"}
    )
    for _ in range(3):
        b.weight  # noqa: B018 - advance PyTorch's buffers
    a.load_state_dict(b.state_dict())
    assert_close(a.weight, b.weight, "ours after loading PyTorch's state")
    for _ in range(2):
        a.weight  # noqa: B018
    b.load_state_dict(a.state_dict())
    for ta, tb in zip(sn_state(a), sn_state(b)):
        assert_close(ta, tb, "PyTorch's after loading ours")


def unit_buffers(ws, dims, g):
    """Random unit vectors u [h] and v [w] for each weight (W_mat's shape), drawn from g: every u, then every v."""
    shapes = [weight_to_matrix(w, d).shape for w, d in zip(ws, dims)]
    us = [nn.functional.normalize(torch.randn(h, generator=g), dim=0).to(DEVICE) for h, _ in shapes]
    vs = [nn.functional.normalize(torch.randn(w, generator=g), dim=0).to(DEVICE) for _, w in shapes]
    return us, vs


@pytest.mark.parametrize(
    "shape,dim,steps",
    [
        ((1, 1), 0, 3),
        ((3, 5), 0, 5),
        ((13, 7, 3, 3), 0, 5),
        ((7, 13, 4, 4), 1, 5),
        ((129, 257), 0, 2),
        ((2100, 7), 0, 2),  # more rows than the finalize kernel's block (2048): u past its first block
        ((512, 256, 3, 3), 0, 1),
    ],
)
def test_grouped_kernel_against_reference(shape, dim, steps):
    g = torch.Generator().manual_seed(sum(shape))
    w = torch.randn(*shape, generator=g).to(DEVICE).requires_grad_()
    h, wd = weight_to_matrix(w, dim).shape
    u = nn.functional.normalize(torch.randn(h, generator=g), dim=0).to(DEVICE)
    v = nn.functional.normalize(torch.randn(wd, generator=g), dim=0).to(DEVICE)
    # a second, smaller layer in the same launch: the group mixes shapes
    w2 = torch.randn(4, 6, generator=g).to(DEVICE).requires_grad_()
    u2 = nn.functional.normalize(torch.randn(4, generator=g), dim=0).to(DEVICE)
    v2 = nn.functional.normalize(torch.randn(6, generator=g), dim=0).to(DEVICE)
    bufs = [[t.clone() for t in (u, v, u2, v2)] for _ in range(2)]
    for _ in range(steps):
        sf = spectral_norm_sigma_fused([w, w2], bufs[0][0::2], bufs[0][1::2], [dim, 0], 1, 1e-12)
        sr = spectral_norm_sigma_reference([w, w2], bufs[1][0::2], bufs[1][1::2], [dim, 0], 1, 1e-12)
    assert_close(sf, sr, "sigma")
    for a, b in zip(bufs[0], bufs[1]):
        assert_close(a, b, "u/v")
    weights = torch.tensor([0.7, -1.3], device=DEVICE)
    gf = torch.autograd.grad((sf * weights).sum(), (w, w2))
    gr = torch.autograd.grad((sr * weights).sum(), (w, w2))
    for a, b in zip(gf, gr):
        assert_close(a, b, "d sigma / d W")


@pytest.mark.parametrize(
    "n_iter,tiles",
    [(0, None), (1, None), (3, None), (2, ((16, 1024, 128), (256, 64, 16))), (2, ((64, 256, 32), (64, 256, 32)))],
)
def test_group_of_multi_tile_layers(n_iter, tiles, monkeypatch):
    """Several layers that each span many tiles in both passes, in one group: the tile -> (layer, row tile,
    column tile) mapping of the later slots, channels-last addressing, and eval mode (n_iter = 0); and under
    other tile shapes (the benchmark sweeps them on a GPU: any of its shapes must give the same numbers)."""
    if tiles:
        monkeypatch.setattr(fused_mod, "_WV", tiles[0])
        monkeypatch.setattr(fused_mod, "_WTU", tiles[1])
    g = torch.Generator().manual_seed(n_iter)
    conv = torch.randn(40, 20, 3, 3, generator=g).to(memory_format=torch.channels_last)
    ws = [torch.randn(5, 9, generator=g), torch.randn(70, 600, generator=g), conv, torch.randn(2100, 40, generator=g)]
    ws = [w.to(DEVICE).requires_grad_() for w in ws]
    us, vs = unit_buffers(ws, [0] * 4, g)
    ref = [t.clone() for t in us + vs]
    sf = spectral_norm_sigma_fused(ws, us, vs, [0] * 4, n_iter, 1e-12)
    sr = spectral_norm_sigma_reference(ws, ref[:4], ref[4:], [0] * 4, n_iter, 1e-12)
    assert_close(sf, sr, "sigma")
    for a, b in zip(us + vs, ref):
        assert_close(a, b, "u/v")
    weights = torch.tensor([0.5, -1.0, 2.0, 0.25], device=DEVICE)
    for a, b in zip(torch.autograd.grad((sf * weights).sum(), ws), torch.autograd.grad((sr * weights).sum(), ws)):
        assert_close(a, b, "d sigma / d W")


def normalize_inputs(seed: int):
    """Weights of every layout the kernels address (channels-last conv spanning several tiles, a Linear of many
    tiles in both passes, a ConvTranspose's dim=1, a strided view, 1x1) with their dims and u, v buffers."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(40, 20, 3, 3), (70, 600), (6, 10, 4, 4), (12, 30), (1, 1), (5, 9)]
    ws = [torch.randn(*s, generator=g) for s in shapes]
    ws[0] = ws[0].to(memory_format=torch.channels_last)
    ws[3] = ws[3][:, ::2]  # gaps between columns
    ws = [w.to(DEVICE).requires_grad_() for w in ws]
    dims = [0, 0, 1, 0, 0, 0]
    return ws, dims, *unit_buffers(ws, dims, g), g


def normalize_both(fn, n_iter: int, out_dtype):
    """fn and the reference on normalize_inputs(n_iter), each with its own copy of the buffers: the weights, the
    generator, fn's normalised weights, the reference's, fn's buffers (every u, then every v), the reference's."""
    ws, dims, us, vs, g = normalize_inputs(n_iter)
    ref_u, ref_v = [u.clone() for u in us], [v.clone() for v in vs]
    ys = fn(ws, us, vs, dims, n_iter, 1e-12, out_dtype)
    yr = spectral_normalize_reference(ws, ref_u, ref_v, dims, n_iter, 1e-12, out_dtype)
    return ws, g, ys, yr, us + vs, ref_u + ref_v


@pytest.mark.parametrize("out_dtype,rtol", [(None, 1e-5), (torch.bfloat16, 8e-3), (torch.float16, 1e-3)])
@pytest.mark.parametrize("n_iter", [0, 1, 2])
def test_normalize_against_reference(n_iter, out_dtype, rtol):
    """spectral_normalize_fused (the power iteration, then W / sigma for every layer in one launch; backward
    dW = G / sigma - (sum(G W) / sigma^2) u v^T in two) against the reference: normalised weights (dtype, layout
    and values; in half precision both round the fp32 quotient, so at most an ulp apart where sigma's last bit
    differs), u and v, and the raw weights' gradients for given gradients of the normalised ones, one of them in
    another layout than its weight's (autograd can give that; the launcher copies it)."""
    ws, g, yf, yr, uv, ref_uv = normalize_both(spectral_normalize_fused, n_iter, out_dtype)
    for i, (a, b) in enumerate(zip(yf, yr)):
        assert a.dtype == b.dtype == (out_dtype or torch.float32)
        if i != 3:  # the strided view's result is contiguous (so are the reference's)
            assert a.stride() == ws[i].stride(), f"layer {i}: not in its weight's layout"
        assert_close(a.float(), b.float(), f"layer {i}: W / sigma", atol=1e-6, rtol=rtol)
    for a, b in zip(uv, ref_uv):
        assert_close(a, b, "u/v")
    gys = [torch.randn(y.shape, generator=g).to(DEVICE, y.dtype) for y in yf]
    gys[0] = gys[0].contiguous()  # the channels-last conv's: another layout
    gf = torch.autograd.grad(yf, ws, gys)
    gr = torch.autograd.grad(yr, ws, gys)
    for i, (a, b) in enumerate(zip(gf, gr)):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        # two terms that cancel, each summed in another order: rounding relative to the largest element
        assert_close(a, b, f"layer {i}: d/dW", atol=1e-5 * max(1.0, float(b.abs().max())), rtol=1e-4)


@pytest.mark.parametrize("out_dtype", [None, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n_iter", [0, 1, 2])
def test_eager_normalize_is_the_reference(n_iter, out_dtype):
    """spectral_normalize_eager (CPU tensors outside torch.compile) against the reference on every layout:
    the same u, v and normalised weights bit for bit (the same ops forward), and the raw weights' gradients from
    its hand-written backward to rounding, for given gradients of the normalised weights, one in another layout
    than its weight's, one layer unused (its gradient zero). The gradient's two terms cancel (by ~1000x without a
    power iteration), so both implementations err by up to a few 1e-6 of its largest element, in ways that differ
    with the CPU's kernels: the eager one must be as close to the float64 gradient as the reference is."""
    ws, g, ye, yr, uv, ref_uv = normalize_both(spectral_normalize_eager, n_iter, out_dtype)
    for i, (a, b) in enumerate(zip(ye, yr)):
        assert a.dtype == b.dtype == (out_dtype or torch.float32)
        assert torch.equal(a, b), f"layer {i}: W / sigma"
    for a, b in zip(uv, ref_uv):
        assert torch.equal(a, b), "u/v"
    gys = [torch.randn(y.shape, generator=g).to(DEVICE, y.dtype) for y in ye]
    gys[0] = gys[0].contiguous()  # the channels-last conv's: another layout
    used = [0, 1, 2, 3, 5]  # layer 4 takes no part in the loss
    ge = torch.autograd.grad([ye[i] for i in used], ws, [gys[i] for i in used])
    gr = torch.autograd.grad([yr[i] for i in used], ws, [gys[i] for i in used])
    assert torch.count_nonzero(ge[4]) == torch.count_nonzero(gr[4]) == 0  # a zero gradient, not None: Adam steps
    dims = normalize_inputs(n_iter)[1]
    k = len(ws)
    # without a power iteration the terms cancel by ~1000x, and a threaded CPU sum's order varies from run to run:
    # on one 2-core Intel CPU the same call erred by 6e-6 to 1e-5 (eager) and 4e-6 to 8e-6 (reference) of the largest
    # element, either one ahead. Below 3e-5 (~250 fp32 ulps of it) that is rounding; with iterations, 1e-7 as before
    floor = 3e-5 if n_iter == 0 else 0.0
    for i in used:
        a, b = ge[i], gr[i]
        assert a.dtype == torch.float32 and a.shape == ws[i].shape
        assert_close(a, b, f"layer {i}: d/dW", atol=1e-5 * max(1.0, float(b.abs().max())), rtol=1e-4)
        exact = sn_weight_grad64(ws[i], gys[i], uv[i], uv[k + i], dims[i])
        err_eager, err_ref = (float((x.double() - exact).abs().max() / exact.abs().max()) for x in (a, b))
        assert err_eager <= max(1.5 * err_ref + 3e-7, floor), (i, err_eager, err_ref, floor)


def sn_weight_grad64(w, gy, u, v, dim):
    """dW of sum(gy * W / sigma) in float64, sigma = u^T W v with u and v held constant (PyTorch's rule), W as the
    matrix [W.shape[dim], rest]."""
    wm, gm = weight_to_matrix(w.detach().double(), dim), weight_to_matrix(gy.double(), dim)
    u, v = u.double(), v.double()
    sigma = u @ wm @ v
    return _matrix_to_weight(gm / sigma - (gm * wm).sum() / sigma**2 * torch.outer(u, v), w, dim)


def test_eager_normalize_gradcheck():
    """The hand-written backward against finite differences, float64, no power iteration (so u and v are the
    constants the gradient treats them as): dims 0 and 1, channels-last, a strided view, a Linear."""
    g = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    ws = [rand(5, 3, 3, 3).to(memory_format=torch.channels_last), rand(4, 6, 2, 2), rand(6, 14)[:, ::2], rand(3, 4)]
    dims = [0, 1, 0, 0]
    ws = [w.requires_grad_() for w in ws]
    us, vs = unit_buffers(ws, dims, g)
    us, vs = [u.double() for u in us], [v.double() for v in vs]
    assert torch.autograd.gradcheck(lambda *w: tuple(spectral_normalize_eager(w, us, vs, dims, 0, 1e-12)), ws)


def test_spectral_normalize_takes_the_eager_path_on_a_cpu_only_outside_compile(monkeypatch):
    """CPU tensors called eagerly go to spectral_normalize_eager; under torch.compile to the reference, whose ops
    the compiler fuses itself (the hand-written autograd.Function is not traced)."""
    calls = []
    monkeypatch.setattr(sn_mod, "_use_fused", lambda *a: False)
    monkeypatch.setattr(
        sn_mod, "spectral_normalize_eager", lambda *a: calls.append(1) or spectral_normalize_reference(*a)
    )
    w = torch.randn(6, 4, requires_grad=True)
    (u,), (v,) = unit_buffers([w], [0], torch.Generator().manual_seed(0))
    eager = spectral_normalize([w], [u.clone()], [v.clone()], [0], 1)[0]
    assert calls == [1]
    compiled = torch.compile(lambda w, u, v: spectral_normalize([w], [u], [v], [0], 1)[0], backend="aot_eager")
    assert_close(compiled(w, u.clone(), v.clone()), eager, "compiled")
    assert calls == [1]


def test_normalize_gradient_of_unused_outputs_is_zero():
    """Layers whose normalised weight takes no part in the loss get a zero gradient (autograd hands the fused
    backward zeros for them), as the reference, where they are not reached at all, implies."""
    ws, dims, us, vs, _ = normalize_inputs(5)
    ys = spectral_normalize_fused(ws, us, vs, dims, 1, 1e-12)
    grads = torch.autograd.grad((ys[1] * ys[1]).sum(), ws)
    ref = torch.autograd.grad((spectral_normalize_reference(ws, us, vs, dims, 0, 1e-12)[1] ** 2).sum(), ws[1])[0]
    assert_close(grads[1], ref, "the used layer", atol=1e-5, rtol=1e-4)  # u, v moved one step: 0 iterations here
    for i in (0, 2, 3, 4, 5):
        assert torch.count_nonzero(grads[i]) == 0, f"layer {i}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_discriminator_under_autocast_makes_its_weights_in_the_autocast_dtype(impl, dtype):
    """Under autocast the discriminator makes its normalised weights in the autocast dtype, as conv and linear
    would cast them: the same rounding of the same fp32 quotient, so outputs and gradients are bit for bit those
    of fp32 weights cast by autocast; and close to PyTorch's spectral norm (16-bit rounding apart)."""
    if dtype == torch.bfloat16 and impl == "fused" and DEVICE == "cpu":
        pytest.skip(
            "the Triton interpreter rounds fp32 -> bf16 toward zero (a GPU to nearest, as torch does: "
            "tests/test_kernel_aot.py checks the kernels' cvt.rn)"
        )
    torch.manual_seed(0)
    spec = small_sn_spec()
    ours = Discriminator(spec).to(DEVICE)
    cast = copy.deepcopy(ours)
    update = cast.sn_group.update
    cast.sn_group.update = lambda training, out_dtype=None: update(training)  # fp32 weights, autocast casts them
    theirs = Discriminator(spec, sn_impl="torch").to(DEVICE)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    outs = []
    for model in (ours, cast, theirs):
        with torch.autocast(torch.device(DEVICE).type, dtype=dtype):
            src, cls = model(x)
        (src.float().sum() + cls.float().square().sum()).backward()
        outs.append([src.detach(), cls.detach()] + [p.grad for p in model.parameters()])
    for i, (a, b, c) in enumerate(zip(*outs)):
        assert torch.equal(a, b), f"output/gradient {i}: bf16 weights made directly differ from cast ones"
        scale = max(1.0, float(c.abs().max()))
        assert_close(a.float(), c.float(), f"output/gradient {i} vs PyTorch's", atol=5e-2 * scale, rtol=2e-2)


@pytest.mark.parametrize("n_layers,launches", [(6, 6), (sn_mod.GROUP + 3, 12)])
def test_group_forward_and_backward_launch_count(n_layers, launches, monkeypatch, device_work):
    """What the fusion is for: a training-mode update of a group of up to 8 layers, every layer's weight access
    and the backward to the raw weights is 6 kernel launches (power iteration 3, W / sigma 1, backward 2) and no
    other op that would run a kernel; a second group of layers, 6 more. (PyTorch's parametrization: 22 ops per
    layer.)"""
    monkeypatch.setattr(sn_mod, "_use_fused", lambda *a: True)
    layers = nn.ModuleList(spectral_norm(nn.Linear(5 + i, 4 + 2 * i)) for i in range(n_layers - 1))
    layers.append(spectral_norm(nn.Conv2d(3, 8, 4, 2, 1).to(memory_format=torch.channels_last)))
    group = SpectralNormGroup(layers.to(DEVICE))
    raw = [m.parametrizations.weight.original for m in layers]
    grads = [torch.ones_like(w) for w in raw]
    with device_work:
        group.update(True)
        torch.autograd.grad([m.weight for m in layers], raw, grads)
    assert dict(device_work.ops) == {}
    assert sum(device_work.launches.values()) == launches, device_work.launches
    assert set(device_work.launches) == {"_sn_wv_kernel", "_sn_wtu_kernel", "_sn_finalize_kernel",
                                         "_sn_scale_kernel", "_sn_gw_kernel", "_sn_bwd_kernel"}  # fmt: skip


@pytest.mark.parametrize(
    "make,dim,cl,dense",
    [
        (lambda: torch.empty(5, 7), 0, 0, True),  # Linear
        (lambda: torch.empty(11, 6), 0, 0, True),  # Embedding
        (lambda: torch.empty(8, 5, 3, 3), 0, 0, True),  # Conv2d
        (lambda: torch.empty(8, 5, 3, 3).to(memory_format=torch.channels_last), 0, 1, True),
        (lambda: torch.empty(8, 1, 4, 4).to(memory_format=torch.channels_last), 0, 0, True),  # one channel: both
        (lambda: torch.empty(8, 5, 1, 1).to(memory_format=torch.channels_last), 0, 0, True),  # 1x1: both
        (lambda: torch.empty(6, 10, 4, 4), 1, 0, False),  # ConvTranspose2d: rows are dim 1
        (lambda: torch.empty(7, 5).t(), 0, 0, False),  # a transposed view
        (lambda: torch.empty(4, 12)[:, ::2], 0, 0, False),  # gaps between columns
    ],
)
def test_layouts_read_in_memory_order(make, dim, cl, dense):
    """Which weights the kernels read in memory order (each row's columns one contiguous block: a warp reads
    consecutive addresses), and in which column order: channels-last conv weights hold a row as (y, x, a).
    The numbers do not depend on it (the other tests), the speed does: a strided read of a channels-last
    weight would use a few bytes of every 32-byte sector fetched."""
    lay = sn_mod._layout(make(), dim)
    assert (lay[8], lay[9]) == (cl, dense)


def test_more_layers_than_one_launch_holds():
    """11 layers: two launch groups, for sigma and for the normalised weights and their gradients."""
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(3 + i, 4, generator=g).to(DEVICE).requires_grad_() for i in range(sn_mod.GROUP + 3)]
    dims = [0] * len(ws)
    us, vs = unit_buffers(ws, dims, g)
    ref_u, ref_v = [u.clone() for u in us], [v.clone() for v in vs]
    sf = spectral_norm_sigma_fused(ws, us, vs, dims, 2, 1e-12)
    sr = spectral_norm_sigma_reference(ws, ref_u, ref_v, dims, 2, 1e-12)
    assert_close(sf, sr, "sigma over two launches")
    yf = spectral_normalize_fused(ws, us, vs, dims, 1, 1e-12)
    yr = spectral_normalize_reference(ws, ref_u, ref_v, dims, 1, 1e-12)
    gys = [torch.randn(w.shape, generator=g).to(DEVICE) for w in ws]
    for i, (a, b, ga, gb) in enumerate(zip(yf, yr, torch.autograd.grad(yf, ws, gys), torch.autograd.grad(yr, ws, gys))):
        assert_close(a, b, f"layer {i} (launch {i // sn_mod.GROUP}): W / sigma")
        assert_close(ga, gb, f"layer {i} (launch {i // sn_mod.GROUP}): d/dW")


def small_sn_spec():
    return resolve_spec(TrainConfig(width=0.125, image_size=32), "isic64", 3, 5)


def test_discriminator_training_matches_pytorch_spectral_norm(impl):
    torch.manual_seed(0)
    spec = small_sn_spec()
    ours = Discriminator(spec).to(DEVICE)
    theirs = Discriminator(spec, sn_impl="torch").to(DEVICE)
    theirs.load_state_dict(ours.state_dict())  # the same keys: weights and u/v buffers move across
    assert ours.sn_group is not None and len(ours.sn_group) == 5  # 3 convs (32 -> 4) + 2 heads
    opts = [torch.optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999)) for m in (ours, theirs)]
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(8, 3, 32, 32, generator=g).to(DEVICE)
        y = torch.randint(5, (8,), generator=g).to(DEVICE)
        for model, opt in zip((ours, theirs), opts):
            src_r, cls_r = model(x)  # two forwards per step, as in a D step: two power iterations
            src_f, cls_f = model(-x)
            loss = (src_r - src_f).mean() + nn.functional.cross_entropy(cls_r, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert_close(a, b, f"after 4 steps: {k}", atol=1e-5, rtol=1e-3)
    ours.eval()
    theirs.eval()
    x = torch.randn(4, 3, 32, 32, generator=g).to(DEVICE)
    for a, b in zip(ours(x), theirs(x)):
        assert_close(a, b, "eval outputs", atol=1e-4, rtol=1e-3)


def test_group_rejects_mixed_settings():
    m = nn.Sequential(spectral_norm(nn.Linear(3, 4)), spectral_norm(nn.Linear(4, 2), n_power_iterations=2))
    with pytest.raises(ValueError, match="one n_power_iterations"):
        SpectralNormGroup(m)


def test_normalize_rejects_a_non_float_out_dtype():
    w = torch.randn(3, 4, device=DEVICE)
    u, v = torch.ones(3, device=DEVICE), torch.ones(4, device=DEVICE)
    with pytest.raises(ValueError, match="out_dtype must be a floating-point dtype"):
        sn_mod.spectral_normalize([w], [u], [v], [0], 1, out_dtype=torch.int32)


@pytest.mark.parametrize(
    "fn",
    [spectral_normalize, spectral_normalize_reference, spectral_normalize_eager, spectral_normalize_fused,
     spectral_norm_sigma_reference, spectral_norm_sigma_fused],
)  # fmt: skip
def test_buffers_of_the_wrong_size_are_refused_by_every_implementation(fn):
    """A u or v of the wrong size: the reference resized the caller's buffer (normalize(out=u)) and went on, the
    kernels would have read and written past its end; so would one list shorter than the others."""
    w = torch.randn(6, 2, 5, device=DEVICE)
    u, v = torch.ones(6, device=DEVICE) / 6**0.5, torch.ones(10, device=DEVICE) / 10**0.5
    for us, vs, dims, msg in (
        ([u[:4]], [v], [0], r"layer 0 \(weight \(6, 2, 5\), dim 0\) needs u of 6 and v of 10 entries, got u \(4,\)"),
        ([u], [torch.ones(12, device=DEVICE)], [0], r"got u \(6,\) and v \(12,\)"),
        ([u], [v], [1], r"dim 1\) needs u of 2 and v of 30 entries"),
        ([u], [v], [3], "dim 3 is not a dimension of its 3-d weight"),
        ([u, u], [v], [0], "1 weights, 2 u, 1 v and 1 dims"),
        ([u], [v.to("meta")], [0], "layer 0: weight, u and v must be on one device, got .*, meta"),
    ):
        before = [x.clone() for x in (*us, *vs) if not x.is_meta]
        with pytest.raises(ValueError, match=msg):
            fn([w], us, vs, dims, 1, 1e-12)
        assert all(torch.equal(a, b) for a, b in zip(before, (*us, *vs)))  # the buffers as they were


def test_bad_arguments_like_pytorch():
    with pytest.raises(ValueError, match="no parameter or buffer"):
        spectral_norm(nn.Linear(2, 2), name="nope")
    with pytest.raises(ValueError, match="positive"):
        spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(IndexError):
        spectral_norm(nn.Linear(2, 2), dim=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compile_fullgraph_and_cuda_graph_capture():
    torch.manual_seed(0)
    d = Discriminator(resolve_spec(TrainConfig(width=0.25), "isic64", 3, 10)).cuda()
    x = torch.randn(16, 3, 64, 64, device="cuda")
    ref = copy.deepcopy(d)
    compiled = torch.compile(d, fullgraph=True)
    out_c = compiled(x)
    out_r = ref(x)
    for a, b in zip(out_c, out_r):
        assert_close(a, b, "compiled D", atol=1e-3, rtol=1e-3)
    static_x = x.clone()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        d(static_x)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        out = d(static_x)
    u_before = d.sn_group.entries[0][2]._u.clone()
    g.replay()
    assert not torch.equal(d.sn_group.entries[0][2]._u, u_before)  # the replay ran the power iteration
    assert torch.isfinite(out[0]).all()


def test_eager_fast_path_and_registered_ops_agree(monkeypatch):
    """Plain eager calls run the launchers directly; what torch.compile traces is the registered ops. Both: the
    same sigma, u and v updates and gradients, bit for bit (the same kernels)."""
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(*s, generator=g).to(DEVICE) for s in ((9, 5, 3, 3), (7, 30), (6, 10, 4, 4))]
    dims = [0, 0, 1]
    u0, v0 = unit_buffers(ws, dims, g)
    out = []
    for eager in (True, False):
        monkeypatch.setattr(fused_mod, "plain_eager", lambda *t, e=eager: e)
        w = [x.clone().requires_grad_() for x in ws]
        us, vs = [x.clone() for x in u0], [x.clone() for x in v0]
        sig = spectral_norm_sigma_fused(w, us, vs, dims, 2, 1e-12)
        grads = torch.autograd.grad((sig * torch.arange(1.0, 4.0, device=DEVICE)).sum(), w)
        ys = spectral_normalize_fused(w, us, vs, dims, 1, 1e-12, torch.bfloat16)
        ygrads = torch.autograd.grad(ys, w, [y.detach() for y in ys])
        out.append([sig.detach(), *us, *vs, *grads, *[y.detach() for y in ys], *ygrads])
    for a, b in zip(*out):
        assert torch.equal(a, b)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_fused_spectral_norm_on_the_second_gpu_while_the_first_is_current():
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(6 + i, 5, generator=g).to("cuda:1").requires_grad_() for i in range(3)]
    dims = [0] * len(ws)
    us, vs = ([t.to("cuda:1") for t in ts] for ts in unit_buffers(ws, dims, g))
    ref_u, ref_v = [u.clone() for u in us], [v.clone() for v in vs]
    gys = [torch.randn(w.shape, generator=g).to("cuda:1") for w in ws]
    with torch.cuda.device(0):
        sf = spectral_norm_sigma_fused(ws, us, vs, dims, 2, 1e-12)
        yf = spectral_normalize_fused(ws, us, vs, dims, 1, 1e-12)
        gf = torch.autograd.grad(yf, ws, gys)
    sr = spectral_norm_sigma_reference(ws, ref_u, ref_v, dims, 2, 1e-12)
    yr = spectral_normalize_reference(ws, ref_u, ref_v, dims, 1, 1e-12)
    assert_close(sf, sr, "sigma on cuda:1")
    for a, b, ga, gb in zip(yf, yr, gf, torch.autograd.grad(yr, ws, gys)):
        assert_close(a, b, "W / sigma on cuda:1")
        assert_close(ga, gb, "d/dW on cuda:1")
