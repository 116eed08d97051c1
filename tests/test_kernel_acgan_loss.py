"""The fused AC-GAN loss (Triton, run under TRITON_INTERPRET=1 on CPU) against the reference and plain torch."""

import contextlib
import importlib

import pytest
import torch
import torch.nn.functional as F

from fastacgan.kernels import acgan_loss, acgan_loss_reference
from fastacgan.kernels.acgan_loss import acgan_loss_fused

loss_mod = importlib.import_module("fastacgan.kernels.acgan_loss")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {  # dtype: (atol, rtol) for the loss and stats, and for gradients (in the input dtype)
    torch.float32: ((1e-5, 1e-5), (1e-7, 1e-5)),
    torch.bfloat16: ((1e-5, 1e-5), (1e-4, 1e-2)),
    torch.float16: ((1e-5, 1e-5), (1e-6, 1e-3)),
}


def inputs(b, k, dtype=torch.float32, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed + 1000 * b + k)
    src = (torch.randn(b, generator=g) * scale).to(DEVICE, dtype).requires_grad_()
    cls = (torch.randn(b, k, generator=g) * scale).to(DEVICE, dtype).requires_grad_()
    labels = torch.randint(k, (b,), generator=g).to(DEVICE)
    return src, cls, labels


def both(src, cls, target, labels, w):
    """(loss, stats, d src, d cls) of the fused op and of the reference, on the same leaves."""
    out = []
    for fn in (acgan_loss_fused, acgan_loss_reference):
        src.grad = cls.grad = None
        loss, stats = fn(src, cls, target, labels, w)
        (loss * 0.5).backward()  # an upstream gradient other than 1
        out.append((loss.detach(), stats, src.grad.clone(), cls.grad.clone()))
    return out


def assert_close(a, b, atol, rtol, what):
    assert not torch.isnan(a).any(), f"{what}: NaN"
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("b", [1, 3, 257, 1024])
@pytest.mark.parametrize("k", [1, 2, 10, 1000, 1001])
def test_fp32_against_reference_and_plain_torch(b, k):
    src, cls, labels = inputs(b, k)
    (lf, sf, dsf, dcf), (lr, sr, dsr, dcr) = both(src, cls, 1.0, labels, 0.7)
    assert lf.dtype == torch.float32 and lf.shape == () and sf.shape == (4,)
    assert_close(lf, lr, 1e-5, 1e-5, "loss")
    assert_close(sf, sr, 1e-5, 1e-5, "stats")
    assert_close(dsf, dsr, 1e-7, 1e-5, "d src")
    assert_close(dcf, dcr, 1e-7, 1e-5, "d cls")
    plain = F.binary_cross_entropy_with_logits(src, torch.ones_like(src)) + 0.7 * F.cross_entropy(cls, labels)
    assert_close(lf, plain.detach(), 1e-5, 1e-5, "loss vs plain torch")
    gs, gc = torch.autograd.grad(plain * 0.5, (src, cls))
    assert_close(dsf, gs, 1e-7, 1e-5, "d src vs plain torch")
    assert_close(dcf, gc, 1e-7, 1e-5, "d cls vs plain torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("b,k", [(3, 10), (257, 1001), (64, 4096)])
def test_dtypes(dtype, b, k):
    (atol, rtol), (gatol, grtol) = TOL[dtype]
    src, cls, labels = inputs(b, k, dtype)
    (lf, sf, dsf, dcf), (lr, sr, dsr, dcr) = both(src, cls, 0.0, labels, 1.0)
    assert lf.dtype == torch.float32 and dsf.dtype == dtype and dcf.dtype == dtype
    assert_close(lf, lr, atol, rtol, "loss")
    assert_close(sf, sr, atol, rtol, "stats")
    assert_close(dsf, dsr, gatol, grtol, "d src")
    assert_close(dcf, dcr, gatol, grtol, "d cls")


@pytest.mark.parametrize(
    "make_target",
    [
        lambda b: torch.full((b,), 0.9),  # one-sided label smoothing, per sample
        lambda b: torch.rand(b, generator=torch.Generator().manual_seed(3)),
        lambda b: torch.tensor(0.9),  # a 0-d tensor
    ],
)
def test_tensor_targets(make_target):
    src, cls, labels = inputs(130, 10)
    target = make_target(130).to(DEVICE)
    (lf, sf, dsf, dcf), (lr, sr, dsr, dcr) = both(src, cls, target, labels, 2.0)
    assert_close(lf, lr, 1e-5, 1e-5, "loss")
    assert_close(sf, sr, 1e-5, 1e-5, "stats")
    assert_close(dsf, dsr, 1e-7, 1e-5, "d src")
    assert_close(dcf, dcr, 1e-7, 1e-5, "d cls")


@pytest.mark.parametrize(
    "dtype,big",
    [
        (torch.float32, 1e4),
        (torch.float32, 1e30),
        (torch.float16, 65504.0),
        (torch.bfloat16, 1e37),
    ],
)
def test_extreme_logits(dtype, big):
    src = torch.tensor([big, -big, 0.0, big], device=DEVICE, dtype=dtype, requires_grad=True)
    cls = torch.tensor([[big, -big, 0.0], [-big, big, big], [0.0, 0.0, 0.0], [-big, -big, -big]], device=DEVICE,
                       dtype=dtype, requires_grad=True)  # fmt: skip
    labels = torch.tensor([0, 2, 1, 2], device=DEVICE)
    for target in (0.0, 1.0):
        (lf, sf, dsf, dcf), (lr, sr, dsr, dcr) = both(src, cls, target, labels, 1.0)
        for name, a, r in (("loss", lf, lr), ("stats", sf, sr), ("d src", dsf, dsr), ("d cls", dcf, dcr)):
            assert torch.isfinite(a).all(), f"{name} not finite at {big} ({dtype})"
            assert_close(a, r, 1e-3, 1e-5, name)


def test_argmax_ties_follow_torch():
    cls = torch.zeros(6, 5, device=DEVICE)  # all tied: torch.argmax says 0
    cls[3, 2] = cls[3, 4] = 1.0  # first maximum wins
    labels = torch.tensor([0, 1, 0, 2, 4, 0], device=DEVICE)
    _, stats = acgan_loss_fused(torch.zeros(6, device=DEVICE), cls, 1.0, labels)
    _, ref = acgan_loss_reference(torch.zeros(6, device=DEVICE), cls, 1.0, labels)
    assert stats[3].item() == ref[3].item() == pytest.approx(4 / 6)


def test_multi_program_reduction_is_deterministic():
    src, cls, labels = inputs(1024, 10)  # several programs: the counter path
    a = acgan_loss_fused(src, cls, 1.0, labels)
    b = acgan_loss_fused(src, cls, 1.0, labels)  # the counter must have been reset by the first call
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_no_grad_and_shape_errors():
    src, cls, labels = inputs(8, 3)
    with torch.no_grad():
        loss, stats = acgan_loss_fused(src, cls, 1.0, labels)
    assert not loss.requires_grad and torch.isfinite(stats).all()
    # both implementations refuse the same arguments: the reference took a src of another length silently (its
    # BCE a mean over other rows), which the kernel would have read past the end of
    for fn in (acgan_loss_fused, acgan_loss_reference):
        for bad_src, bad_labels in ((src[:4], labels), (src[:, None], labels), (src, labels[:, None])):
            with pytest.raises(ValueError, match=r"expected src \[B\], cls \[B, K\]"):
                fn(bad_src, cls, 1.0, bad_labels)
        with pytest.raises(ValueError, match="target has 5 elements"):
            fn(src, cls, torch.ones(5, device=DEVICE), labels)
        with pytest.raises(TypeError, match="labels must be integer class indices, got torch.float32"):
            fn(src, cls, 1.0, labels.float())
        # a mean over no rows: the kernel left the loss unwritten (what the allocator had there), the reference NaN
        with pytest.raises(ValueError, match=r"an empty batch or no classes: cls \(0, 3\)"):
            fn(src[:0], cls[:0], 1.0, labels[:0])
        with pytest.raises(ValueError, match=r"an empty batch or no classes: cls \(8, 0\)"):
            fn(src, cls[:, :0], 1.0, labels)
        with pytest.raises(ValueError, match=r"src, cls and labels must be on one device, got .*, meta"):
            fn(src, cls, 1.0, labels.to("meta"))  # (labels left on the CPU beside CUDA logits, say)


@pytest.mark.parametrize("target", [0.9, "per-sample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_second_derivatives_through_the_loss(target, dtype):
    """create_graph=True, as a gradient penalty on the loss's gradient makes it (DRAGAN, R1 written on the loss):
    the penalty's gradient with respect to the input and to the weights before the loss is the reference's. The
    kernel's backward made no graph: the gradient lacked the path through the loss, silently."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(6, 5, generator=g).to(DEVICE, dtype)
    lin = torch.nn.Linear(5, 1 + 4).to(DEVICE, dtype)
    labels = torch.randint(4, (6,), generator=g).to(DEVICE)
    t = torch.rand(6, generator=g).to(DEVICE) if target == "per-sample" else target
    got = []
    for fn in (acgan_loss_fused, acgan_loss_reference):
        x = x0.clone().requires_grad_()
        out = lin(x)
        loss, _ = fn(out[:, 0], out[:, 1:], t, labels, 0.7)
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        penalty = gx.float().square().sum()
        got.append(torch.autograd.grad(penalty, (x, lin.weight, lin.bias)))
    for name, a, b in zip(("x", "weight", "bias"), *got):
        assert b.abs().max() > 0
        assert_close(a, b, 1e-6, 1e-2 if dtype == torch.bfloat16 else 1e-5, f"d penalty / d {name}")


def test_torch_func_transforms_take_the_reference(monkeypatch):
    """acgan_loss on a GPU inside torch.func.grad, and vmap over it (per-sample gradients): the reference's
    gradients. The fused op's autograd.Function cannot run in a transform ("it must override the setup_context
    staticmethod"): the entry point takes the reference there."""
    from torch.func import grad, vmap

    monkeypatch.setattr(loss_mod, "triton_supports", lambda device: True)  # the fused path, as on a GPU
    src, cls, labels = inputs(6, 5)
    src, cls = src.detach(), cls.detach()
    t = torch.rand(6, device=DEVICE)

    def loss(fn, s, c, lab, tt):
        return fn(s, c, tt, lab, 0.7)[0]

    for args, dims in (((src, cls, labels, t), None), ((src[:, None], cls[:, None], labels[:, None], t[:, None]), 0)):
        got = []
        for fn in (acgan_loss, acgan_loss_reference):
            g = grad(lambda s, c, lab, tt, fn=fn: loss(fn, s, c, lab, tt), argnums=(0, 1))
            got.append(g(*args) if dims is None else vmap(g)(*args))
        for a, b, what in zip(*got, ("src", "cls")):
            assert_close(a, b, 1e-7, 1e-5, f"d loss / d {what}{' per sample' if dims is not None else ''}")


@pytest.mark.parametrize("b", [5, 300])  # one program, and several (the counter reduction)
def test_int32_labels_and_a_column_of_targets(b):
    """Labels of any integer type, and a per-sample target of B values in any shape ([B, 1] from a D that keeps
    its last dimension), give what int64 labels and a [B] target give, in both implementations."""
    src, cls, labels = inputs(b, 10)
    t = torch.rand(b, 1, device=DEVICE)
    want = both(src, cls, t.reshape(-1), labels, 0.7)
    for got, ref in zip(both(src, cls, t, labels.int(), 0.7), want):
        for a, r in zip(got, ref):
            assert torch.equal(a, r)


@pytest.mark.parametrize("b", [5, 300])  # one program, and several (the counter reduction)
def test_a_label_out_of_range_gives_nan_not_a_wrong_loss(b):
    """No host check (it would be a sync): a label outside [0, K) makes the CE, the loss and that row's class
    gradient NaN, where they would be silently wrong; every other row and the BCE side are untouched."""
    src, cls, labels = inputs(b, 10)
    for bad in (-1, 10, -100):  # -100: cross_entropy's ignore_index, which this loss does not have
        lab = labels.clone()
        lab[3] = bad
        src.grad = cls.grad = None
        loss, stats = acgan_loss_fused(src, cls, 1.0, lab)
        loss.backward()
        assert torch.isnan(loss) and torch.isnan(stats[1]), bad
        assert torch.isfinite(stats[[0, 2, 3]]).all() and torch.isfinite(src.grad).all()
        rows = torch.isnan(cls.grad).all(1)
        assert rows[3] and not rows[torch.arange(b) != 3].any() and torch.isfinite(cls.grad[rows.logical_not()]).all()
        with pytest.raises((IndexError, RuntimeError)):  # the reference on CPU refuses it, as cross_entropy does
            acgan_loss_reference(src.detach().cpu(), cls.detach().cpu(), 1.0, lab.cpu())


def test_public_entry_point_picks_by_device():
    src, cls, labels = inputs(4, 3)
    loss, _ = acgan_loss(src, cls, 1.0, labels)
    ref, _ = acgan_loss_reference(src, cls, 1.0, labels)
    assert torch.allclose(loss, ref)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_compile_fullgraph_without_graph_breaks():
    src, cls, labels = inputs(256, 10)

    @torch.compile(fullgraph=True)  # the forward in one graph; its backward is compiled with it (AOTAutograd)
    def step(s, c, y):
        return acgan_loss(s, c, 0.9, y, 1.0)

    loss, stats = step(src, cls, labels)
    loss.backward()
    s2, c2 = src.detach().requires_grad_(), cls.detach().requires_grad_()
    ref, rstats = acgan_loss_reference(s2, c2, 0.9, labels)
    ref.backward()
    assert_close(loss.detach(), ref.detach(), 1e-5, 1e-5, "compiled loss")
    assert_close(stats, rstats, 1e-5, 1e-5, "compiled stats")
    assert_close(src.grad, s2.grad, 1e-6, 1e-5, "compiled gradient of the source logits")
    assert_close(cls.grad, c2.grad, 1e-6, 1e-5, "compiled gradient of the class logits")


@cuda
def test_cuda_graph_capture_and_replay():
    src, cls, labels = inputs(1024, 1000)
    static_src, static_cls = src.detach().clone(), cls.detach().clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            acgan_loss_fused(static_src, static_cls, 1.0, labels)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss, stats = acgan_loss_fused(static_src, static_cls, 1.0, labels)
    for seed in range(3):
        new_src, new_cls, _ = inputs(1024, 1000, seed=seed + 10)
        static_src.copy_(new_src.detach())
        static_cls.copy_(new_cls.detach())
        graph.replay()
        ref, rstats = acgan_loss_reference(static_src, static_cls, 1.0, labels)
        assert_close(loss, ref, 1e-5, 1e-5, "replayed loss")
        assert_close(stats, rstats, 1e-5, 1e-5, "replayed stats")


@pytest.mark.parametrize("target", [0.9, "tensor"])
def test_eager_fast_path_and_registered_op_agree(monkeypatch, target):
    """Plain eager calls skip torch.library's dispatch (a host-time saving); what torch.compile traces is the
    registered op. Both: the same loss, statistics and gradients, bit for bit (the same kernels)."""
    import importlib

    mod = importlib.import_module("fastacgan.kernels.acgan_loss")  # plain_eager as the module imported it
    src, cls, labels = inputs(37, 11)
    tgt = torch.rand(37, generator=torch.Generator().manual_seed(5)).to(DEVICE) if target == "tensor" else target
    out = []
    for eager in (True, False):
        monkeypatch.setattr(mod, "plain_eager", lambda *t, e=eager: e)
        s, c = src.detach().clone().requires_grad_(), cls.detach().clone().requires_grad_()
        loss, stats = mod.acgan_loss_fused(s, c, tgt, labels, 1.3)
        loss.backward()
        out.append((loss.detach(), stats, s.grad, c.grad))
    for a, b in zip(*out):
        assert torch.equal(a, b)


@pytest.mark.parametrize("b,k,fwd_ops", [(64, 10, {}), (257, 1001, {"zeros": 1})])
def test_one_launch_each_way_and_nothing_else(b, k, fwd_ops, device_work):
    """Forward: one launch (plus, with several programs, the zero fill of their arrival counter); backward: one
    launch, and no zero-filled gradient for the statistics output (autograd's default for an unused output)."""
    src, cls, labels = inputs(b, k)
    one = torch.ones((), device=DEVICE)
    with device_work:
        loss, stats = acgan_loss_fused(src, cls, 0.9, labels, 1.0)
    assert (dict(device_work.ops), dict(device_work.launches)) == (fwd_ops, {"_acgan_loss_fwd_kernel": 1})
    with device_work:
        torch.autograd.grad(loss, (src, cls), one)
    assert (dict(device_work.ops), dict(device_work.launches)) == ({}, {"_acgan_loss_bwd_kernel": 1})
    with pytest.raises(RuntimeError, match="does not require grad"):  # stats carry no gradient
        torch.autograd.grad(stats.sum(), (src, cls))


def test_plain_launches_go_to_the_tensors_gpu(monkeypatch):
    """Triton launches on the current CUDA device: the fused ops' eager launches make their tensors' device current
    for the launch when another one is (a tensor on cuda:1 while cuda:0 is current), and change nothing otherwise."""
    from fastacgan.kernels import _dispatch

    class OnGpu:  # what on_device_of reads of a tensor
        is_cuda = True

        def __init__(self, index):
            self.device = torch.device("cuda", index)

    entered = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", lambda d: entered.append(d) or contextlib.nullcontext())
    with _dispatch.on_device_of(OnGpu(1)):
        pass
    assert entered == [torch.device("cuda", 1)]
    for t in (OnGpu(0), torch.zeros(1)):  # already current; a CPU tensor (the interpreter's)
        with _dispatch.on_device_of(t):
            pass
    assert entered == [torch.device("cuda", 1)]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_fused_loss_on_the_second_gpu_while_the_first_is_current():
    torch.manual_seed(0)
    src, cls = torch.randn(300, device="cuda:1", requires_grad=True), torch.randn(300, 10, device="cuda:1")
    labels = torch.randint(0, 10, (300,), device="cuda:1")
    with torch.cuda.device(0):
        loss, stats = acgan_loss_fused(src, cls, 0.9, labels)
        loss.backward()
    ref_src = src.detach().clone().requires_grad_()
    ref, ref_stats = acgan_loss_reference(ref_src, cls, 0.9, labels)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(stats, ref_stats)
    torch.testing.assert_close(src.grad, ref_src.grad)
