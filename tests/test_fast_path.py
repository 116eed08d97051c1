"""The fast path must not change what is learned, and must not recompile after warm-up."""

import json

import pytest
import torch
import torch._dynamo

from fastacgan.config import parse_args
from fastacgan.train import Trainer


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def run(args, out, steps_hook=None):
    t = Trainer(parse_args(args + ["--out", str(out)]), log=lambda m: None)
    if steps_hook:
        real_step = t.train_step

        def step(x, y):
            real_step(x, y)
            steps_hook(t)

        t.train_step = step
    t.train()
    return records(out)


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
    graphs = []
    hook = lambda t: graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])  # noqa: E731
    # 30 steps cross an epoch boundary (20 steps/epoch), sampling (G in eval) and logging in between
    run(BASE + ["--steps", "30", *fast], tmp_path / "c", hook)
    assert graphs[2] > 0, "nothing was compiled"
    assert graphs[-1] == graphs[2], f"recompiled after warm-up: graphs per step {graphs}"


def test_compiled_run_learns_what_eager_learns(tmp_path):
    """On the CPU: the compiled step (dynamo + AOTAutograd, aot_eager) against plain eager fp32, same seed."""
    torch._dynamo.reset()
    eager = run(BASE + ["--steps", "100", "--no-compile"], tmp_path / "e")
    fast = run(BASE + ["--steps", "100", "--compile-cpu", "--compile-backend", "aot_eager"], tmp_path / "f")
    assert [r["step"] for r in eager] == [r["step"] for r in fast]
    for a, b in zip(eager, fast):
        for key in ("loss_d", "loss_g", "acc_real", "acc_fake", "d_real"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (a["step"], key)


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
    with pytest.warns(UserWarning, match="torch.compile of g_forward failed .*runs eagerly"):
        gan(real, labels)
    gan(real, labels)  # later steps run eagerly, without warning again
    assert gan.metric_steps == 2 and all(v == v for v in gan.read_metrics().values())


def test_fused_kernel_self_check(monkeypatch):
    """On CUDA the step checks the fused kernels once before using them; here under the Triton interpreter."""
    import importlib

    from fastacgan import step as step_mod

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert step_mod.check_fused_kernels(dev) is None
    loss_mod = importlib.import_module("fastacgan.kernels.acgan_loss")
    real = loss_mod.acgan_loss_fused
    monkeypatch.setattr(step_mod.kernels, "acgan_loss_fused", lambda *a: (real(*a)[0] * 1.01, real(*a)[1]))
    assert "differs from the reference" in step_mod.check_fused_kernels(dev)
    monkeypatch.setattr(step_mod.kernels, "acgan_loss_fused", lambda *a: 1 / 0)
    assert step_mod.check_fused_kernels(dev).startswith("ZeroDivisionError")


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
