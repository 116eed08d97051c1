"""--g-ema: a moving average of G's weights, updated every step, saved, resumed, sampled from."""

import json

import pytest
import torch
from conftest import TINY, DeviceWork
from torch import nn

from fastacgan import checkpoint as ckpt
from fastacgan.ema import MovingAverage
from fastacgan.train import main


def run(args):
    return main([str(a) for a in args])


def final_state(out):
    return ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])


def _average_by_hand(states: list[dict], decay: float) -> dict:
    """The moving average of a sequence of state dicts (states[0]: the start, then one per update), written out:
    beta_t = min(decay, (1 + t) / (10 + t)); integer entries are the newest state's."""
    avg = {k: v.clone().double() if v.is_floating_point() else v.clone() for k, v in states[0].items()}
    for t, s in enumerate(states[1:], start=1):
        beta = min(decay, (1 + t) / (10 + t))
        for k, v in s.items():
            avg[k] = beta * avg[k] + (1 - beta) * v.double() if v.is_floating_point() else v.clone()
    return avg


def test_the_average_follows_the_formula_parameters_and_buffers():
    torch.manual_seed(0)
    src = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    ema = MovingAverage(src, 0.9)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    states, updates = [{k: v.clone() for k, v in src.state_dict().items()}], torch.zeros((), dtype=torch.long)
    for _ in range(100):  # the ramp, (1 + t) / (10 + t), reaches 0.9 at t = 80: both regimes
        with torch.no_grad():
            for p in src.parameters():
                p.add_(torch.randn_like(p))
        src(torch.randn(8, 5))  # BatchNorm's running statistics and its update count move
        updates += 1
        ema.update(updates)
        states.append({k: v.clone() for k, v in src.state_dict().items()})
    want = _average_by_hand(states, 0.9)
    got = ema.state_dict()
    assert got.keys() == want.keys() and got["1.num_batches_tracked"] == 100
    for k, v in want.items():
        torch.testing.assert_close(got[k].to(v.dtype), v, rtol=1e-5, atol=1e-6, msg=k)
    # the average differs from the last weights (else nothing was averaged) and from the first
    assert not torch.allclose(got["0.weight"], src[0].weight) and not torch.allclose(
        got["0.weight"], states[0]["0.weight"]
    )
    ema.reset()
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in ema.state_dict().items())


def test_the_decay_caps_the_ramp():
    """Late in a run beta is the decay itself: one update moves the average (1 - decay) of the way to G."""
    src = nn.Linear(2, 2, bias=False)
    ema = MovingAverage(src, 0.99)
    with torch.no_grad():
        src.weight.add_(1.0)
    before = ema.module.weight.clone()
    ema.update(torch.tensor(10_000))
    torch.testing.assert_close(ema.module.weight, before + 0.01 * (src.weight - before))


def test_the_update_never_reads_a_device_value_on_the_host():
    """The step count is a device tensor and beta is computed from it on the device: nothing waits for the GPU (a
    CUDA graph could not hold a host read; a fused lerp given beta as a tensor reads it as a Python number)."""
    ema = MovingAverage(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 0.999)
    with DeviceWork() as work:
        ema.update(torch.tensor(5))
    reads = {"_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero"}
    assert work.ops["_foreach_mul_"] == 1 and not reads & set(work.ops), work.ops


def _step_spec():
    from fastacgan.config import TrainConfig, resolve_spec

    return resolve_spec(TrainConfig(width=0.25, image_size=16), "cifar10", 1, 4)  # (G has BatchNorm)


def test_the_training_step_averages_g_after_each_update():
    """ACGANStep(g_ema=...): after every step the average is the formula's over G's weights after each G update;
    G and D train exactly as without it; the sample grids come from the average."""
    from fastacgan.step import ACGANStep

    def train(g_ema):
        torch.manual_seed(0)
        gan = ACGANStep(_step_spec(), torch.device("cpu"), g_ema=g_ema)
        states = [{k: v.clone() for k, v in gan.G.state_dict().items()}]
        g = torch.Generator().manual_seed(1)
        for _ in range(12):
            gan(torch.rand(8, 1, 16, 16, generator=g) * 2 - 1, torch.randint(4, (8,), generator=g))
            states.append({k: v.clone() for k, v in gan.G.state_dict().items()})
        return gan, states

    plain, _ = train(0.0)
    gan, states = train(0.95)
    assert plain.g_ema is None and "G_ema" not in plain.state_dict()
    for k, v in plain.G.state_dict().items():  # the average is read, never written back
        assert torch.equal(v, gan.G.state_dict()[k]), k
    want = _average_by_hand(states, 0.95)
    for k, v in gan.state_dict()["G_ema"].items():
        torch.testing.assert_close(v.to(want[k].dtype), want[k], rtol=1e-5, atol=1e-6, msg=k)
    z, y = torch.randn(4, gan.spec.nz), torch.arange(4)
    with torch.no_grad():
        assert torch.equal(gan.generate(z, y), gan.g_ema.module(z, y).float())
        assert not torch.allclose(gan.generate(z, y), gan.G.eval()(z, y))
    gan.train(True)  # generate leaves G's mode and the average's as they were
    gan.generate(z, y)
    assert gan.G.training and not gan.g_ema.module.training


def test_a_resumed_run_continues_the_average(tmp_path):
    """Stopped at step 7 and resumed to 30: the same average as a run never stopped (it is in the checkpoint), and
    --g-ema is taken from the run like its other options."""
    args = lambda name: ["--data", "builtin:digits:400", *TINY, "--log-every", "5", "--out", tmp_path / name]  # noqa: E731
    assert run(args("a") + ["--steps", "30", "--g-ema", "0.9"]) == 0
    assert run(args("b") + ["--steps", "7", "--g-ema", "0.9"]) == 0
    assert run(["--out", tmp_path / "b", "--resume", "--steps", "30"]) == 0
    sa, sb = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert sb["config"]["g_ema"] == 0.9 and sa["step"] == sb["step"] == 30
    for k, v in sa["G_ema"].items():
        assert torch.equal(v, sb["G_ema"][k]), k
    assert any(not torch.equal(v, sa["G"][k]) for k, v in sa["G_ema"].items() if v.is_floating_point())


def test_an_average_begun_on_resuming_starts_from_g(tmp_path, capsys):
    """--g-ema given when resuming a run that had none: the average starts from G's weights at the checkpoint
    (not from a new G's), and the change is named."""
    args = ["--data", "builtin:digits:400", *TINY, "--out", tmp_path / "run"]
    assert run(args + ["--steps", "10"]) == 0
    at10 = final_state(tmp_path / "run")
    assert "G_ema" not in at10
    capsys.readouterr()
    assert run(args + ["--steps", "11", "--resume", "--g-ema", "0.999"]) == 0
    out = capsys.readouterr().out
    assert "--g-ema 0.0 -> 0.999" in out and "samples from G's moving average (decay 0.999)" in out
    at11 = final_state(tmp_path / "run")
    beta = min(0.999, 12 / 21)  # one update, the 11th: t = 11
    for k, v in at11["G_ema"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, beta * at10["G"][k] + (1 - beta) * at11["G"][k], msg=k)


def test_sample_and_evaluate_use_the_average_unless_told_not_to(tmp_path, capsys):
    from fastacgan import evaluate, sample

    args = ["--data", "builtin:digits:400", *TINY, "--out", tmp_path / "run", "--steps", "20", "--g-ema", "0.9"]
    assert run(args) == 0
    state = final_state(tmp_path / "run")
    g_avg, _, _ = sample.generator_state(str(tmp_path / "run"))
    g_own, _, _ = sample.generator_state(str(tmp_path / "run"), ema=False)
    assert all(torch.equal(v, state["G_ema"][k]) for k, v in g_avg.state_dict().items())
    assert all(torch.equal(v, state["G"][k]) for k, v in g_own.state_dict().items())
    capsys.readouterr()
    assert sample.main([str(tmp_path / "run"), "--out", str(tmp_path / "a.png")]) == 0
    assert "(G's moving average: --no-ema for G's own weights)" in capsys.readouterr().out
    assert sample.main([str(tmp_path / "run"), "--out", str(tmp_path / "b.png"), "--no-ema"]) == 0
    assert "moving average" not in capsys.readouterr().out
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    base = [str(tmp_path / "run"), "--epochs", "1", "--n-per-class", "4", "--image-metrics", "0", "--workers", "0"]
    for extra, which in (([], "G_ema"), (["--no-ema"], "G")):
        assert evaluate.main(base + extra) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["generator"] == which
        assert ("its moving average" in captured.err) == (which == "G_ema")


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan"])
def test_a_decay_out_of_range_is_refused(tmp_path, capsys, value):
    args = ["--data", "builtin:digits:400", *TINY, "--out", tmp_path / "run", "--steps", "2", "--g-ema", value]
    assert run(args) == 2
    assert "--g-ema must be >= 0 and < 1, got " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
