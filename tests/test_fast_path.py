"""The fast path must not change what is learned, and must not recompile after warm-up."""

import contextlib
import importlib
import json
import re
import warnings

import pytest
import torch
import torch._dynamo

from fastacgan.config import parse_args
from fastacgan.models import Dropout, UpsampleConv2d
from fastacgan.train import Trainer


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def run(args, out, steps_hook=None, log=None):
    t = Trainer(parse_args(args + ["--out", str(out)]), log=log or (lambda m: None))
    if steps_hook:
        real_step = t.train_step

        def step(x, y):
            real_step(x, y)
            steps_hook(t)

        t.train_step = step
    t.train()
    return records(out)


def assert_same_training(a_run, b_run, images_per_record=10 * 32):
    """Two runs' metric records agree to rounding: the losses and D(x) to rel 1e-3. The accuracies are counts of
    images (1/320 apart per record here), and an argmax between two near-equal class logits flips under rounding,
    so they may differ by up to 2 images per record (seen on an AMX CPU: fast vs plain layers, 1 fake of 320)."""
    assert [r["step"] for r in a_run] == [r["step"] for r in b_run]
    for a, b in zip(a_run, b_run):
        for key in ("loss_d", "loss_g", "d_real"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (a["step"], key)
        for key in ("acc_real", "acc_fake"):
            assert abs(b[key] - a[key]) <= 2 / images_per_record + 1e-6, (a["step"], key, a[key], b[key])


BASE = ["--data", "builtin:digits:640", "--image-size", "16", "--width", "0.25", "--batch-size", "32",
        "--workers", "0", "--log-every", "10", "--sample-every", "7", "--seed", "3", "--device", "cpu"]  # fmt: skip


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize(
    "fast",
    [
        pytest.param(["--compile-cpu", "--compile-backend", "aot_eager"], id="cpu"),  # dynamo + AOTAutograd
        pytest.param(["--device", "cuda", "--amp"], marks=CUDA, id="cuda"),  # inductor, CUDA graphs, fused kernels
    ],
)
def test_no_recompilation_after_warm_up(tmp_path, fast):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    graphs = []
    hook = lambda t: graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])  # noqa: E731
    # 30 steps cross an epoch boundary (20 steps/epoch), sampling (G in eval) and logging in between
    lines = []
    run(BASE + ["--steps", "30", *fast], tmp_path / "c", hook, lines.append)
    assert graphs[2] > 0, "nothing was compiled"
    said = [i for i, line in enumerate(lines) if line.startswith(("compiling the step", "first 3 steps"))]
    assert len(said) == 2 and lines[said[0]].startswith("compiling") and said[1] > said[0]  # before, then how long
    assert graphs[-1] == graphs[2], f"recompiled after warm-up: graphs per step {graphs}"
    if "cuda" in fast:  # the D and G losses run as CUDA graphs: Inductor did not fall back (e.g. mutated inputs)
        assert torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] == 0


def test_compiled_run_learns_what_eager_learns(tmp_path):
    """On the CPU: the compiled step (dynamo + AOTAutograd, aot_eager) against plain eager fp32, same seed."""
    torch._dynamo.reset()
    eager = run(BASE + ["--steps", "100", "--no-compile"], tmp_path / "e")
    fast = run(BASE + ["--steps", "100", "--compile-cpu", "--compile-backend", "aot_eager"], tmp_path / "f")
    assert_same_training(eager, fast)


def test_fast_layers_learn_what_plain_layers_learn(tmp_path):
    """G's exact rewrites (here the upsample convolutions of the digits preset) against PyTorch's plain layers,
    same seed: the same training to rounding, and --no-fast-layers builds the plain ones."""
    plain_run = Trainer(parse_args(BASE + ["--steps", "30", "--no-fast-layers", "--out", str(tmp_path / "p")]),
                        log=lambda m: None)  # fmt: skip
    assert not any(isinstance(m, UpsampleConv2d) for m in plain_run.G.modules())
    plain_run.train()
    plain, fast = records(tmp_path / "p"), run(BASE + ["--steps", "30"], tmp_path / "f")
    assert [r["step"] for r in plain] == [10, 20, 30]
    assert_same_training(plain, fast)


def test_fast_dropout_option_reaches_the_discriminator(tmp_path):
    """--no-fast-dropout builds nn.Dropout itself (the reference's draws); the default, the CPU's fast masks; the
    speed line says which."""
    for flag, fast in (([], True), (["--no-fast-dropout"], False)):
        lines = []
        t = Trainer(parse_args(BASE + flag + ["--out", str(tmp_path / str(fast))]), log=lines.append)
        drops = [m for m in t.D.modules() if isinstance(m, torch.nn.Dropout)]
        assert drops and all(isinstance(m, Dropout) == fast for m in drops)
        assert any(f"fast CPU dropout {'on' if fast else 'off'}" in line for line in lines if line.startswith("speed"))


@CUDA
def test_cuda_fast_path_learns_what_eager_fp32_learns(tmp_path):
    """The whole fast path (inductor + CUDA graphs, bf16, channels-last, fused kernels) vs eager fp32 NCHW:
    the loss curves agree within the noise of bf16 training and both classify their fakes alike."""
    torch._dynamo.reset()
    args = [a if a != "cpu" else "cuda" for a in BASE] + ["--steps", "100"]
    eager = run(args + ["--no-compile", "--no-channels-last", "--no-fused-kernels"], tmp_path / "e")
    fast = run(args + ["--amp"], tmp_path / "f")
    for key, tol in (("loss_d", 0.15), ("loss_g", 0.25), ("acc_real", 0.1)):
        diffs = [abs(a[key] - b[key]) for a, b in zip(eager, fast)]
        assert sum(diffs) / len(diffs) < tol, (key, diffs)
    assert abs(eager[-1]["acc_fake"] - fast[-1]["acc_fake"]) < 0.15


def _spec():
    from fastacgan.config import TrainConfig, resolve_spec

    return resolve_spec(TrainConfig(width=0.25, image_size=16), "isic64", 1, 4)


def test_a_compiler_failure_costs_speed_not_the_run():
    from fastacgan.step import ACGANStep

    def broken_backend(gm, example_inputs):
        raise RuntimeError("this compiler cannot build the graph")

    torch._dynamo.reset()
    torch.manual_seed(0)
    gan = ACGANStep(_spec(), torch.device("cpu"), compile=True, compile_backend=broken_backend)
    real, labels = torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(4, (8,))
    with pytest.warns(UserWarning, match="torch.compile of .* failed .*runs eagerly") as record:
        gan(real, labels)
    # each of the step's three regions says so once, by name
    failed = sorted(re.search(r"torch.compile of (\w+) failed", str(w.message))[1] for w in record)
    assert failed == ["d_losses", "g_forward", "g_losses"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile of")
        gan(real, labels)  # later steps run eagerly, without warning again
    assert gan.metric_steps == 2 and all(v == v for v in gan.read_metrics().values())


@pytest.mark.parametrize("when", ["compiling", "running"])
def test_running_out_of_memory_is_not_a_compiler_failure(when):
    """A batch too large for the GPU fails in the first (compiled) step, while CUDA graphs record or while Inductor
    compiles: that is raised, not warned about as a compiler failure and hidden behind an eager run (slower, and
    as likely as not out of memory too)."""
    from fastacgan.step import ACGANStep

    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                     "15.77 GiB of which 1.02 GiB is free")  # fmt: skip

    def backend(gm, example_inputs):
        return oom(gm) if when == "compiling" else oom

    torch._dynamo.reset()
    gan = ACGANStep(_spec(), torch.device("cpu"), compile=True, compile_backend=backend)
    real, labels = torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(4, (8,))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(Exception) as raised:
            gan(real, labels)
    from fastacgan.devices import memory_error, memory_error_text

    assert not [w for w in record if "torch.compile of" in str(w.message)]
    assert memory_error(raised.value) is not None
    assert memory_error_text(raised.value).startswith("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_fused_kernel_self_check(monkeypatch):
    """On CUDA the step checks the fused kernels once before using them; here under the Triton interpreter."""
    import importlib

    from fastacgan import fallbacks

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert fallbacks.check_fused_kernels(dev) is None
    sn_real = fallbacks.kernels.spectral_normalize_fused
    monkeypatch.setattr(fallbacks.kernels, "spectral_normalize_fused", lambda *a: [y * 1.01 for y in sn_real(*a)])
    assert "differs from the reference" in fallbacks.check_fused_kernels(dev)
    monkeypatch.setattr(fallbacks.kernels, "spectral_normalize_fused", sn_real)
    loss_mod = importlib.import_module("fastacgan.kernels.acgan_loss")
    real = loss_mod.acgan_loss_fused
    monkeypatch.setattr(fallbacks.kernels, "acgan_loss_fused", lambda *a: (real(*a)[0] * 1.01, real(*a)[1]))
    assert "differs from the reference" in fallbacks.check_fused_kernels(dev)
    monkeypatch.setattr(fallbacks.kernels, "acgan_loss_fused", lambda *a: 1 / 0)
    assert fallbacks.check_fused_kernels(dev).startswith("ZeroDivisionError")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "aot_eager"])
def test_a_uint8_batch_is_converted_inside_the_step(channels_last, compiled):
    """The loader's uint8 [B, H, W, C] batch goes into the step as it is (converted in the compiled region, and
    with --graph-step inside the graph): the same training, bit for bit, as the batch converted beforehand."""
    from fastacgan.loaders import to_model_input
    from fastacgan.step import ACGANStep

    torch._dynamo.reset()
    kw = {"channels_last": channels_last, "compile": compiled, "compile_backend": "aot_eager"}
    torch.manual_seed(0)
    raw = ACGANStep(_spec(), torch.device("cpu"), **kw)
    torch.manual_seed(0)
    pre = ACGANStep(_spec(), torch.device("cpu"), **kw)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        x = torch.randint(0, 256, (8, 16, 16, 1), dtype=torch.uint8, generator=g)
        y = torch.randint(4, (8,), generator=g)
        torch.manual_seed(1)
        raw(x, y)
        torch.manual_seed(1)
        pre(to_model_input(x, channels_last), y)
    for a, b in zip(raw.G.state_dict().values(), pre.G.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(raw.D.state_dict().values(), pre.D.state_dict().values()):
        assert torch.equal(a, b)
    assert raw.read_metrics() == pre.read_metrics()


def test_g_step_leaves_d_gradients_alone():
    from fastacgan.step import ACGANStep

    torch.manual_seed(0)
    gan = ACGANStep(_spec(), torch.device("cpu"))
    seen = {}
    real_step = gan.opt_d.step

    def snapshot(*a, **k):
        seen["grads"] = [p.grad.clone() for p in gan.d_params]
        return real_step(*a, **k)

    gan.opt_d.step = snapshot
    gan(torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(4, (8,)))
    assert all(p.requires_grad for p in gan.d_params)
    for p, g in zip(gan.d_params, seen["grads"]):
        assert torch.equal(p.grad, g)  # the G step's backward did not add to D's gradients
    assert all(p.grad is not None for p in gan.G.parameters())


def test_adam_is_fused_on_a_cpu_and_updates_as_adam_does():
    """Both optimizers are PyTorch's fused Adam on a CPU (one kernel per update); an update equals the for-loop
    Adam's from the same state to rounding, over a few steps."""
    from fastacgan.step import ACGANStep

    torch.manual_seed(0)
    gan = ACGANStep(_spec(), torch.device("cpu"))
    assert gan.opt_g.defaults["fused"] and gan.opt_d.defaults["fused"]
    params = [p.detach().clone().requires_grad_() for p in gan.G.parameters()]
    plain = torch.optim.Adam(params, 2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p, q in zip(gan.G.parameters(), params):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        gan.opt_g.step()
        plain.step()
    for p, q in zip(gan.G.parameters(), params):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)


def test_the_label_targets_reach_the_d_loss():
    """--real-label / --fake-label: D's BCE targets for real and generated images (the ISIC AC-GAN's 0.9 / 0.1); G's
    target stays 1. Compared with torch's own BCE-with-logits + cross-entropy on the same D outputs (eval mode)."""
    import torch.nn.functional as F

    from fastacgan.step import ACGANStep

    torch.manual_seed(0)
    gan = ACGANStep(_spec(), torch.device("cpu"), real_label=0.9, fake_label=0.1)
    gan.D.eval()
    real, fake = torch.rand(8, 1, 16, 16) * 2 - 1, torch.rand(8, 1, 16, 16) * 2 - 1
    labels, c = torch.randint(4, (8,)), torch.randint(4, (8,))
    with torch.no_grad():
        loss_d, _, _ = gan._d_losses(real, fake, labels, c)
        loss_g, _ = gan._g_losses(fake, c)
        (src_r, cls_r), (src_f, cls_f) = gan.D(real), gan.D(fake)

    def want(src, cls, target, y):
        return F.binary_cross_entropy_with_logits(src, torch.full_like(src, target)) + F.cross_entropy(cls, y)

    torch.testing.assert_close(loss_d, want(src_r, cls_r, 0.9, labels) + want(src_f, cls_f, 0.1, c))
    torch.testing.assert_close(loss_g, want(src_f, cls_f, 1.0, c))
    assert not torch.allclose(loss_d, want(src_r, cls_r, 0.9, labels) + want(src_f, cls_f, 0.0, c))


def test_graph_step_needs_cuda_and_says_so():
    from fastacgan.step import ACGANStep

    with pytest.warns(UserWarning, match="--graph-step is off: it needs CUDA"):
        gan = ACGANStep(_spec(), torch.device("cpu"), graph_step=True)
    assert not gan.graph_step
    gan(torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(4, (8,)))
    assert gan.metric_steps == 1


def _twin_runs(steps: int, shapes, **kw):
    """(the step captured in one CUDA graph, the same step without) from one seed on the same batches:
    their parameters, metrics and step counters after `steps` steps, batch shapes cycling through `shapes`."""
    from fastacgan.step import ACGANStep

    out = []
    for graph_step in (True, False):
        torch._dynamo.reset()
        torch.manual_seed(0)
        gan = ACGANStep(_spec(), torch.device("cuda"), graph_step=graph_step, **kw)
        g = torch.Generator().manual_seed(1)
        for i in range(steps):
            b = shapes[i % len(shapes)]
            real = (torch.rand(b, 1, 16, 16, generator=g) * 2 - 1).cuda()
            gan(real, torch.randint(4, (b,), generator=g).cuda())
        params = [p.detach().clone() for p in (*gan.G.parameters(), *gan.D.parameters())]
        out.append((gan, params, gan.read_metrics(), int(gan.dev_step), len(gan._graphs)))
    return out


@CUDA
def test_graph_step_trains_as_the_plain_step(monkeypatch):
    """fp32, no compile: the captured step replays the very kernels of the plain one, so after 3 warm-up steps,
    the capture and 11 replays (new noise each: drawn into the graph's input) the weights agree to rounding;
    a batch of another shape in between gets its own entry (a warm-up step) and leaves the captured one be."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # the same convolution algorithms in both
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    (graphed, pg, mg, steps_g, n_graphs), (_, pp, mp, steps_p, _) = _twin_runs(16, [8, 8, 8, 8, 8, 8, 8, 8, 6],
                                                                              compile=False)  # fmt: skip
    assert graphed.graph_step and n_graphs == 2 and steps_g == steps_p == 16
    for a, b in zip(pg, pp):  # Adam moves a weight by up to lr = 2e-4 a step, whatever the gradient's size
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for k in mp:  # the losses depend on the noise: a graph that kept reading old noise would be far off
        assert mg[k] == pytest.approx(mp[k], rel=1e-3, abs=1e-5), k


@CUDA
def test_graph_step_holds_the_moving_average_of_g(monkeypatch):
    """--g-ema inside the captured step: its update reads the step count from the device, so each replay moves
    the average with that step's beta, as the plain step does."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    (graphed, *_), (plain, *_) = _twin_runs(16, [8], compile=False, g_ema=0.9)
    assert graphed.graph_step and graphed._graphs
    for k, v in plain.g_ema.state_dict().items():
        torch.testing.assert_close(graphed.g_ema.state_dict()[k], v, rtol=1e-4, atol=1e-4, msg=k)
    assert any(not torch.equal(v, plain.G.state_dict()[k]) for k, v in plain.g_ema.state_dict().items())


@CUDA
@pytest.mark.parametrize("graph_step", [False, True], ids=["compiled-cuda-graphs", "graph-step"])
def test_diffaug_on_the_fast_path(graph_step):
    """--diffaug's random draws inside the compiled regions (CUDA graph trees) or the captured step (eager ops: the
    capture is what is under test): no failed compile or capture, a finite training whose D sees the augmentation
    (its losses differ from a run without it, from the same seed)."""
    from fastacgan.step import ACGANStep

    metrics = {}
    for policy in ("", "all"):
        torch._dynamo.reset()
        torch.manual_seed(0)
        gan = ACGANStep(_spec(), torch.device("cuda"), compile=not graph_step, graph_step=graph_step, diffaug=policy,
                        amp_dtype=torch.bfloat16, channels_last=True)  # fmt: skip
        g = torch.Generator().manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a failed capture or compile warns
            for _ in range(8):
                x = torch.randint(0, 256, (8, 16, 16, 1), dtype=torch.uint8, generator=g).cuda()
                gan(x, torch.randint(4, (8,), generator=g).cuda())
        assert gan.graph_step == graph_step and (bool(gan._graphs) if graph_step else gan.cuda_graphs)
        metrics[policy] = gan.read_metrics()
        assert all(v == v and abs(v) < 1e4 for v in metrics[policy].values()), metrics[policy]
    assert metrics["all"]["loss_d"] != metrics[""]["loss_d"]


@CUDA
def test_graph_step_with_the_whole_fast_path():
    """compile (Inductor, no CUDA graphs of its own), bf16 autocast, channels-last, fused kernels, in one graph:
    the same training as without the graph within bf16's noise."""
    (graphed, pg, mg, steps_g, _), (_, pp, mp, _, _) = _twin_runs(
        12, [8], compile=True, amp_dtype=torch.bfloat16, channels_last=True
    )
    assert graphed.graph_step and graphed._graphs and steps_g == 12
    for k in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert mg[k] == pytest.approx(mp[k], rel=0.05, abs=0.02), k
    diff = max(float((a - b).abs().max()) for a, b in zip(pg, pp))
    assert diff < 5e-2, diff


class _StandInCuda:
    """Stand-ins for the torch.cuda calls of the whole-step graph, for a CPU: a capture records the step's call
    instead of running it, and a replay runs that call again on the same tensors, which is what a CUDA graph
    does with the kernels it recorded. What this checks is fastacgan's bookkeeping: warm-up, the graph's input
    tensors refilled each step (noise and batch), one graph per batch shape, counters, the fallback."""

    def __init__(self, monkeypatch, gan, fail_capture=False):
        self.capturing, self.captures, self.replays, self.fail = None, 0, 0, fail_capture
        stand_in = self

        class Graph:
            def __init__(self):
                self.call = None

            def replay(self):
                stand_in.replays += 1
                real_step(*self.call)

        class Capture:
            def __init__(self, graph, stream=None, capture_error_mode="global"):
                self.graph = graph

            def __enter__(self):
                stand_in.capturing = self.graph

            def __exit__(self, *exc):
                stand_in.capturing = None
                stand_in.captures += 1
                if stand_in.fail:
                    raise RuntimeError("operation not permitted when stream is capturing")

        class Stream:
            def __init__(self, *a, **k):
                pass

            def wait_stream(self, other):
                pass

        real_step = gan._step

        def step(*args):
            if stand_in.capturing is not None:
                stand_in.capturing.call = args
            else:
                real_step(*args)

        monkeypatch.setattr(gan, "_step", step)
        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", Capture)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)


@pytest.mark.parametrize(
    "fail_capture,compiled",
    [(False, False), (True, False), (False, True)],
    ids=["captured", "capture-fails", "captured-compiled"],
)
def test_graph_step_bookkeeping_with_stand_in_graphs(monkeypatch, fail_capture, compiled):
    from fastacgan import step as step_mod

    kw = {"compile": True, "compile_backend": "aot_eager"} if compiled else {}

    def train(graph_step):
        torch._dynamo.reset()
        torch.manual_seed(0)
        gan = step_mod.ACGANStep(_spec(), torch.device("cpu"), **kw)
        gan.graph_step = graph_step
        cuda = _StandInCuda(monkeypatch, gan, fail_capture) if graph_step else None
        g = torch.Generator().manual_seed(1)
        for b in [8] * 6 + [6] * 4 + [8] * 2:  # the loader's uint8 batches, as the trainer passes them
            x = torch.randint(0, 256, (b, 16, 16, 1), dtype=torch.uint8, generator=g)
            gan(x, torch.randint(4, (b,), generator=g))
        params = [p.detach().clone() for p in (*gan.G.parameters(), *gan.D.parameters())]
        return gan, cuda, params, gan.read_metrics()

    plain, _, p_plain, m_plain = train(False)
    if fail_capture:
        with pytest.warns(UserWarning, match="capturing the training step in a CUDA graph failed"):
            graphed, cuda, p_graph, m_graph = train(True)
        assert not graphed.graph_step and cuda.captures == 1 and cuda.replays == 0
    else:
        graphed, cuda, p_graph, m_graph = train(True)
        # batch 8: 3 warm-up steps, the capture (and its replay), 2 replays, then 2 more after the 6s;
        # batch 6: 3 warm-up steps and the capture's replay
        assert cuda.captures == 2 and cuda.replays == 6 and len(graphed._graphs) == 2
    assert int(graphed.dev_step) == int(plain.dev_step) == 12
    for a, b in zip(p_graph, p_plain):  # the same noise and batches in the same order: the same training
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert m_graph == pytest.approx(m_plain, rel=1e-6)


@pytest.fixture
def gpu_of_capability(monkeypatch):
    """Make torch report cuda:0 as a GPU of the given compute capability (a P100 is 6.0), afresh for each call."""
    from fastacgan.kernels import _dispatch

    def make(capability, name="Tesla P100-PCIE-16GB"):
        monkeypatch.setattr(_dispatch, "_capable", {})
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    return make


def test_gpus_older_than_triton_supports_are_told_apart(gpu_of_capability):
    """Triton (and Inductor) compile for compute capability 7.0+; on a Pascal GPU the loss kernel does not even
    assemble (ptxas: ".acq_rel requires sm_70"), so the fused ops take their references and the trainer says why."""
    from fastacgan.devices import triton_unsupported
    from fastacgan.kernels import triton_supports

    assert not triton_supports(torch.device("cpu")) and triton_unsupported(torch.device("cpu")) is None
    for capability, ok in (((6, 0), False), ((6, 1), False), ((7, 0), True), ((7, 5), True), ((9, 0), True)):
        gpu_of_capability(capability)
        assert triton_supports(torch.device("cuda")) is ok and triton_supports(torch.device("cuda:0")) is ok
        note = triton_unsupported(torch.device("cuda:0"))
        if ok:
            assert note is None
        else:
            assert f"Tesla P100-PCIE-16GB, compute capability {capability[0]}.{capability[1]}" in note
            assert "torch.compile and the fused kernels are off" in note
    gpu_of_capability((6, 0))
    torch.version.hip = "6.2"  # ROCm: Triton's AMD backend
    assert triton_supports(torch.device("cuda:0"))


@CUDA
def test_on_a_gpu_older_than_triton_supports_everything_runs_without_it(gpu_of_capability, monkeypatch):
    """This GPU reported as a P100: the public ops give their references' results without launching a kernel, and
    the step runs with neither the fused kernels nor Inductor (which would refuse the GPU)."""
    from fastacgan import kernels
    from fastacgan.step import ACGANStep

    # the modules (the package's `acgan_loss` and `spectral_norm` are functions: patched there, nothing changed)
    AL = importlib.import_module("fastacgan.kernels.acgan_loss")
    SN = importlib.import_module("fastacgan.kernels.spectral_norm")

    gpu_of_capability((6, 0))
    for mod, name in ((AL, "acgan_loss_fused"), (SN, "spectral_normalize_fused"), (SN, "spectral_norm_sigma_fused")):
        monkeypatch.setattr(mod, name, lambda *a, **k: pytest.fail("a Triton kernel was launched"))
    src, cls, labels = torch.randn(9, device="cuda"), torch.randn(9, 5, device="cuda"), torch.arange(9).cuda() % 5
    want = kernels.acgan_loss_reference(src, cls, 0.9, labels)
    assert all(torch.equal(a, b) for a, b in zip(kernels.acgan_loss(src, cls, 0.9, labels), want))
    w = torch.randn(6, 4, device="cuda")
    u, v = torch.nn.functional.normalize(torch.ones(6, device="cuda"), dim=0), torch.ones(4, device="cuda") / 2
    got = kernels.spectral_normalize([w], [u.clone()], [v.clone()], [0], 3)
    assert torch.equal(got[0], kernels.spectral_normalize_reference([w], [u.clone()], [v.clone()], [0], 3)[0])
    gan = ACGANStep(_spec(), torch.device("cuda"), compile=True, fused_kernels=True)
    assert not gan.fused_kernels and not gan.compile and not gan.cuda_graphs
    gan((torch.rand(8, 1, 16, 16) * 2 - 1).cuda(), torch.randint(4, (8,)).cuda())
    assert gan.metric_steps == 1
