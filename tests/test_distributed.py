"""Data-parallel training on the CPU (gloo): 2 processes launched by torchrun, as a user would."""

import json
import subprocess
import sys

import pytest
import torch

from fastacgan import checkpoint as ckpt
from fastacgan.train import main

# a preset without dropout (isic-style: spectral-norm D, no BatchNorm in D) so the only difference between
# 2 processes and 1 is G's BatchNorm, whose statistics are per process (SyncBatchNorm needs CUDA)
ARGS = ["--data", "builtin:digits:256", "--preset", "isic64", "--image-size", "16", "--width", "0.125",
        "--workers", "0", "--log-every", "2", "--sample-every", "3", "--seed", "5", "--device", "cpu",
        "--g-ema", "0.9"]  # fmt: skip


def torchrun(nproc, args, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "fastacgan.train", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def final(out):
    return ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "two"
    proc = torchrun(2, ARGS + ["--batch-size", "8", "--steps", "6", "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_two_processes_match_one_with_the_same_global_batch(two_process_run, tmp_path):
    out2, _ = two_process_run
    assert main(ARGS + ["--batch-size", "16", "--steps", "6", "--out", str(tmp_path / "one")]) == 0
    s2, s1 = final(out2), final(tmp_path / "one")
    assert s2["step"] == s1["step"] == 6
    # same data, same noise, averaged gradients: only G's BatchNorm statistics differ (per process). So the
    # weight matrices agree closely; the 1-D parameters (biases, BatchNorm's) start at 0 or 1 and have moved by a
    # few Adam steps of at most ~lr each, so a relative measure means nothing there: they are compared absolutely.
    lr, steps = 2e-4, 6
    for part in ("G", "D"):
        for k, a in s1[part].items():
            b = s2[part][k]
            if not a.is_floating_point() or "running" in k:
                continue
            if a.ndim == 1 and "._u" not in k and "._v" not in k:
                assert (a - b).abs().max() <= 2 * lr * steps, k
            else:
                rel = ((a - b).norm() / a.norm().clamp_min(1e-12)).item()
                assert rel < 0.05, (part, k, rel)
    r1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    r2 = [json.loads(x) for x in (out2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in r1] == [r["step"] for r in r2]
    for a, b in zip(r1, r2):
        assert b["loss_d"] == pytest.approx(a["loss_d"], rel=0.05)


def test_only_rank_zero_speaks_and_writes(two_process_run):
    out, stdout = two_process_run
    assert stdout.count("step 6/6") == 1 and stdout.count("distributed: 2 processes") == 1
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]  # one writer, no duplicates
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"step_{s:08d}.png" for s in (0, 3, 6)]
    state = final(out)
    assert not any(k.startswith("module.") for k in state["G"])  # unwrapped: resumable on any number of processes
    assert state["G_ema"].keys() == state["G"].keys()  # (--g-ema: the average of the unwrapped G)
    assert any(not torch.equal(v, state["G"][k]) for k, v in state["G_ema"].items())


def test_resume_a_two_process_checkpoint_in_one_process(two_process_run, tmp_path):
    out, _ = two_process_run
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(out, resumed)
    assert main(ARGS + ["--batch-size", "16", "--steps", "8", "--resume", "--out", str(resumed)]) == 0
    state = final(resumed)
    assert state["step"] == 8
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_after_a_resume_each_rank_draws_dropout_of_its_own(tiny_args, tmp_path):
    """A checkpoint holds rank 0's random streams: rank 0 continues them, every other rank draws its own (before,
    every rank took rank 0's, so their dropout masks were the same from the resume on)."""
    from fastacgan.config import parse_args
    from fastacgan.distributed import Dist
    from fastacgan.train import Trainer

    assert main(tiny_args + ["--steps", "2"]) == 0
    path = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    saved = ckpt.load_checkpoint(path)["rng_cpu"]
    t = Trainer(parse_args(tiny_args + ["--steps", "4", "--resume"]))
    states = []
    for rank in range(3):
        t.dist = Dist(rank, 3)
        t.load(path)
        states.append(torch.get_rng_state())
    assert torch.equal(states[0], saved)
    assert not torch.equal(states[1], saved) and not torch.equal(states[2], saved)
    assert not torch.equal(states[1], states[2])


def test_sync_bn_in_one_process_says_it_does_nothing(tiny_args):
    with pytest.warns(UserWarning, match="--sync-bn is off: one process has no other batch statistics"):
        assert main(tiny_args + ["--steps", "1", "--sync-bn"]) == 0


def test_sync_bn_without_cuda_is_a_clear_error(tmp_path):
    proc = torchrun(2, ARGS + ["--batch-size", "8", "--steps", "2", "--sync-bn", "--out", str(tmp_path / "s")])
    assert proc.returncode != 0 and "--sync-bn needs CUDA" in proc.stderr + proc.stdout
