import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

from fastacgan import checkpoint as ckpt
from fastacgan import outputs, plots
from fastacgan import train as train_mod
from fastacgan.config import build_parser, parse_args
from fastacgan.train import Trainer, TrainingError, main


def run(args):
    return main([str(a) for a in args])


def final_state(out):
    return ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])


def test_the_animation_shows_at_most_25_grids_evenly_spread(tmp_path):
    """samples.gif is made at the end of a run and at each Ctrl-C from every grid in samples/: with a small
    --sample-every (300 grids of 128x128 images) that took minutes and GBs. It shows 25 of them, the first and the
    last among them, evenly spread; the PNGs are all kept."""
    from fastacgan.imaging import GIF_FRAMES, save_gif, save_png

    frames = []
    for i in range(60):  # a grid a shade lighter each time: the shade tells which grid a frame is
        frames.append(tmp_path / f"step_{i:08d}.png")
        save_png(frames[-1], np.full((6, 6, 3), 4 * i, dtype=np.uint8))
    assert save_gif(tmp_path / "samples.gif", frames) and GIF_FRAMES == 25
    gif = Image.open(tmp_path / "samples.gif")
    shown, durations = [], []
    for k in range(gif.n_frames):
        gif.seek(k)
        shown.append(gif.convert("RGB").getpixel((0, 0))[0] // 4)
        durations.append(gif.info["duration"])
    assert shown == [round(i * 59 / 24) for i in range(25)] and shown[0] == 0 and shown[-1] == 59
    assert durations == [250] * 24 + [1000]
    assert save_gif(tmp_path / "few.gif", frames[:3]) and Image.open(tmp_path / "few.gif").n_frames == 3
    assert not save_gif(tmp_path / "none.gif", []) and not (tmp_path / "none.gif").exists()


def test_an_animation_that_cannot_be_written_costs_the_run_nothing(tiny_args, tmp_path, capsys, monkeypatch):
    """samples.gif is written last, in the run's `finally`: a full disk there turned a finished run into "error: No
    space left on device" (exit 1), and would have hidden the error that ended a failed one. A warning now."""
    import errno

    def full(path, frames):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "save_gif", full)
    assert run(tiny_args + ["--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "warning: samples.gif not written (OSError: [Errno 28] No space left on device: " in out
    assert final_state(tmp_path / "run")["step"] == 4 and "done: 4 steps" in out


def test_a_short_run_leaves_every_output(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--steps", "12", "--sample-every", "4"]) == 0
    out = tmp_path / "run"
    log = capsys.readouterr().out
    assert "step 10/12" in log and "img/s" in log and "ETA" in log and "D(x)" in log
    # on a CPU the speed line names what runs there, and says what is for GPUs (--compile is on by default)
    assert "speed: fast G layers on, fast CPU dropout on, malloc cache on; torch.compile, channels-last and the " \
        "fused kernels are for CUDA GPUs\n" in log  # fmt: skip
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "digits" and cfg["spec"]["image_size"] == 16 and cfg["config"]["steps"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 12]
    for r in records:
        assert 0 <= r["d_real"] <= 1 and 0 <= r["acc_real"] <= 1 and r["loss_d"] > 0 and r["images_per_s"] > 0
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == [f"step_{s:08d}.png" for s in (0, 4, 8, 12)]
    assert (out / "samples.gif").stat().st_size > 0
    assert final_state(out)["step"] == 12
    # the curves of metrics.jsonl, and real images in the sample grids' layout (10 classes x 10, 16x16, 1 channel)
    assert Image.open(out / "curves.png").size == (plots.WIDTH, plots.PANEL_H * len(plots.PANELS))
    real, sample = np.array(Image.open(out / "real.png")), np.array(Image.open(out / "samples" / samples[-1]))
    assert real.shape == sample.shape == (10 * 18 + 2, 10 * 18 + 2)
    assert real[2:18, 2:18].std() > 0  # a digit, not an empty tile
    # train.log: what was printed, after a line that dates the run
    kept = (out / "train.log").read_text().splitlines()
    assert re.fullmatch(r"--- \d{4}-\d\d-\d\d [\d:]{8} \w+: run started, pid \d+, fastacgan .*, torch .*", kept[0])
    assert kept[1:] == log.splitlines()


def test_warnings_are_kept_in_the_log_too(tiny_args, tmp_path):
    """A warning (here: --graph-step on a CPU) is shown on stderr and kept in train.log, in its place."""
    with pytest.warns(UserWarning, match="--graph-step is off: it needs CUDA"):  # what is shown, as before
        assert run(tiny_args + ["--steps", "2", "--graph-step"]) == 0
    kept = (tmp_path / "run" / "train.log").read_text()
    assert "\nwarning: --graph-step is off: it needs CUDA\n" in kept
    assert kept.index("data: ") < kept.index("warning: --graph-step") < kept.index("done: 2 steps")


def test_a_log_file_that_cannot_be_written_costs_the_run_nothing(tmp_path):
    """train.log is a convenience: where it cannot be opened, or a write fails (a full disk), a note says so and the
    run's lines are still printed; nothing is raised."""
    import errno

    from fastacgan.runlog import RunLog

    shown = []
    log = RunLog(shown.append)
    log("before")
    (tmp_path / "train.log").mkdir()  # a folder where the file would be
    log.start(tmp_path / "train.log", "--- header")
    log("after")
    assert shown[0] == "before" and shown[1].startswith(f"note: cannot write {tmp_path / 'train.log'}")
    assert shown[2] == "after" and log.file is None
    shown.clear()
    log = RunLog(shown.append)
    log.start(tmp_path / "other.log", "--- header")
    log("kept")

    class Full:
        name = str(tmp_path / "other.log")

        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    log.file.close()
    log.file = Full()
    log("lost")
    log("after")
    assert shown == ["kept", "lost", f"note: writing {tmp_path / 'other.log'} failed (No space left on device); the "
                     "run goes on without it", "after"]  # fmt: skip
    assert (tmp_path / "other.log").read_text() == "--- header\nkept\n"


def test_a_console_that_goes_away_costs_the_run_nothing(tmp_path, capsys):
    """The terminal closed (EIO) or the reader of a pipe ended (`| tee` stopped by the Ctrl-C that stops the run):
    printing raised in the middle of a step. Now it ends the printing, once said on stderr, and the lines go on into
    train.log; the stream is pointed at /dev/null, so that Python's flush at exit has nothing to fail on."""
    import errno

    from fastacgan.runlog import RunLog, echo, echo_quietly

    def without_reader():
        read, write = os.pipe()
        os.close(read)  # the reader is gone
        return os.fdopen(write, "w")

    stream = without_reader()
    with pytest.raises(BrokenPipeError):
        echo("lost", stream)
    echo("then nothing", stream)  # into /dev/null now
    stream.close()  # (what Python's exit does with sys.stdout)
    assert echo_quietly("x", without_reader()) is False and echo_quietly("shown") is True
    assert capsys.readouterr().out == "shown\n"

    shown = []

    def show(msg):
        if len(shown) == 2:
            raise OSError(errno.EIO, "Input/output error")
        shown.append(msg)

    log = RunLog(show)
    log("early")
    log.start(tmp_path / "train.log", "--- header")
    log("one")
    log("two")  # the terminal is gone
    log("three")
    note = f"note: printing failed (Input/output error): the run goes on; its lines go on into {tmp_path / 'train.log'}"
    assert shown == ["early", "one"] and capsys.readouterr().err == note + "\n"
    log.stop()
    assert (tmp_path / "train.log").read_text() == f"--- header\nearly\none\n{note}\ntwo\nthree\n"


def test_resume_reproduces_an_uninterrupted_run(tiny_args, tmp_path):
    # 400 images / batch 16 = 25 steps per epoch: stop mid-epoch at 7, resume across the epoch boundary to 30
    a = [x.replace(str(tmp_path / "run"), str(tmp_path / "a")) for x in tiny_args]
    b = [x.replace(str(tmp_path / "run"), str(tmp_path / "b")) for x in tiny_args]
    assert run(a + ["--steps", "30"]) == 0
    assert run(b + ["--steps", "7"]) == 0
    assert run(b + ["--steps", "30", "--resume"]) == 0
    runs = [line for line in (tmp_path / "b" / "train.log").read_text().splitlines() if line.startswith("--- ")]
    assert [r.split(": ", 1)[1].split(",")[0] for r in runs] == ["run started", "run resumed from step_00000007.pt"]
    sa, sb = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert sa["step"] == sb["step"] == 30
    for part in ("G", "D"):
        for k, v in sa[part].items():
            assert torch.equal(v, sb[part][k]), f"{part}.{k} differs after resume"
    assert torch.equal(sa["noise_gen"], sb["noise_gen"])
    for ka, kb in zip(sa["opt_d"]["state"].values(), sb["opt_d"]["state"].values()):
        assert torch.equal(ka["exp_avg"], kb["exp_avg"])
    steps_b = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps_b == sorted(set(steps_b))  # no duplicated records after resuming


def test_a_resume_takes_the_options_not_given_from_its_run(tiny_args, tmp_path, capsys):
    """`--resume --out RUN` alone continues RUN as it was started (its data, model, options): each option took its
    default before, and the resume was refused (another data set, an incompatible model) or trained another run."""
    opts = ["--lr-d", "1e-4", "--hflip", "--real-label", "0.9", "--steps", "20"]
    twin = [x.replace(str(tmp_path / "run"), str(tmp_path / "twin")) for x in tiny_args]
    assert run(twin + opts) == 0  # the run never interrupted
    assert run(tiny_args + opts[:-1] + ["7"]) == 0
    capsys.readouterr()
    assert run(["--out", tmp_path / "run", "--resume", "--steps", "20", "--device", "cpu"]) == 0  # (not taken)
    out = capsys.readouterr().out
    assert f"resuming {tmp_path / 'run'}: the options not given are the run's: " in out
    said = out.split("the options not given are the run's: ")[1].split("\n")[0].split(", ")
    assert {"--data builtin:digits:400", "--image-size 16", "--width 0.25", "--lr-d 0.0001", "--hflip",
            "--workers 0", "--log-every 5"} <= set(said)  # fmt: skip
    assert not any(x.startswith(("--steps", "--device", "--out", "--resume")) for x in said)
    a, b = final_state(tmp_path / "run"), final_state(tmp_path / "twin")
    assert a["step"] == b["step"] == 20 and a["config"] == {**b["config"], "out": a["config"]["out"], "resume": True}
    assert all(torch.equal(v, b["G"][k]) for k, v in a["G"].items())
    # an option given is this run's; --epochs given: the run's --steps is not taken (it would override it)
    assert run(["--out", tmp_path / "run", "--resume", "--epochs", "1", "--lr-d", "5e-5", "--device", "cpu",
                "--preset", "digits", "--nz", "64"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "--lr-d 0.0001 -> 5e-05" in out and "--steps" not in out.split("not given are the run's")[1].split("\n")[0]
    assert "--preset" not in out and "--nz" not in out  # (what the run's `auto` and 0 chose: the same model)
    state = final_state(tmp_path / "run")
    assert state["step"] == 25 and state["opt_d"]["param_groups"][0]["lr"] == 5e-5  # an epoch of 400 / 16 steps


def test_a_resume_into_the_default_out_reads_the_data_as_its_run_did(tmp_path, monkeypatch, capsys):
    """Without --out the run folder is named after the data, so the data are listed before the run is known: where
    the run listed them with options the resume leaves out (--classes here), they are listed again with those."""
    monkeypatch.chdir(tmp_path)
    args = ["--data", "builtin:digits:200", *TINY]
    assert run(args + ["--classes", "2:6", "--max-images", "60", "--steps", "2"]) == 0
    capsys.readouterr()
    assert run(args + ["--resume", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "--classes 2:6, --max-images 60" in out and "reading the data again, as the run being resumed" in out
    # (the classes named in the line: a folder read one level too high shows its part folders as the classes)
    assert "data: builtin:digits:200 -> 60 images, 4 classes (2, 3, 4, 5), 1 channel" in out
    assert "note: the data differ" not in out
    state = final_state(tmp_path / "runs" / "digits")
    assert state["step"] == 3 and state["classes"] == ["2", "3", "4", "5"]


def test_a_resume_from_another_folder_finds_the_runs_relative_data(tmp_path, monkeypatch, capsys):
    """--data given relative to the folder the run started in: a resume started elsewhere (a job script that
    cd's somewhere else) takes it from there, and does not call it changed; fastacgan.evaluate finds it too."""
    from conftest import make_folder

    make_folder(tmp_path / "data", n_per_class=8)
    monkeypatch.chdir(tmp_path)
    assert run(["--data", "data", *TINY, "--steps", "2", "--out", "run"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    from fastacgan.evaluate import main as evaluate_main  # (its real images: the run's data, found the same way)

    args = [str(tmp_path / "run"), "--epochs", "1", "--n-per-class", "2", "--image-metrics", "0", "--device", "cpu"]
    assert evaluate_main(args) == 0
    assert f"--data {tmp_path / 'data'}: 24 images" in capsys.readouterr().err
    assert run(["--out", tmp_path / "run", "--resume", "--steps", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"the options not given are the run's: --data {tmp_path / 'data'}, " in out
    assert "differ" not in out and final_state(tmp_path / "run")["step"] == 3
    # the run's data moved away: both say whose --data it was, and what to do
    (tmp_path / "data").rename(tmp_path / "moved")
    hint = "no such file or folder (the run's --data, from its checkpoint: give --data where its images are now)"
    assert run(["--out", tmp_path / "run", "--resume", "--steps", "4", "--device", "cpu"]) == 2
    assert hint in capsys.readouterr().err
    assert evaluate_main(args) == 2 and hint in capsys.readouterr().err
    assert run(["--out", tmp_path / "run", "--resume", "--steps", "4", "--data", tmp_path / "moved"]) == 0


def test_two_data_sets_named_alike_are_told_apart_in_the_default_out(tmp_path, monkeypatch, capsys):
    """cifar/train and mnist/train both default to runs/train: the second is refused, naming the run there and
    why (it said "pass --resume to continue that run", which would resume the other data set's run)."""
    from conftest import make_folder

    for name in ("cifar", "mnist"):
        make_folder(tmp_path / name / "train", n_per_class=8)
    monkeypatch.chdir(tmp_path)
    assert run(["--data", "cifar/train", *TINY, "--steps", "1"]) == 0
    capsys.readouterr()
    assert run(["--data", "mnist/train", *TINY, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--out runs/train already holds checkpoints (step_00000001.pt) of a run on --data cifar/train" in err
    assert "mnist/train is not that run's data: give --out to keep the runs apart" in err
    assert run(["--data", "cifar/train", *TINY, "--steps", "1"]) == 2  # the same data: no such hint
    err = capsys.readouterr().err
    assert "of a run on --data cifar/train; pass --resume" in err and "keep the runs apart" not in err


def test_a_data_set_of_one_class_trains_and_says_what_that_means(tmp_path, capsys):
    """One class folder (a folder of a single set's photos, or --classes naming one): AC-GAN's class term is
    constant, so the run is a plain GAN; it trains, and says so (it said "1 classes")."""
    from conftest import make_folder

    folder = make_folder(tmp_path / "data", n_per_class=16, classes=("cat",))
    assert run(["--data", folder, *TINY, "--steps", "2", "--out", tmp_path / "run"]) == 0
    out = capsys.readouterr().out
    assert "-> 16 images, 1 class (cat), 3 channel(s)" in out
    assert "note: one class (cat): the auxiliary classifier has nothing to tell apart" in out
    assert final_state(tmp_path / "run")["classes"] == ["cat"]


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--resume", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "beside it" not in err
    assert run(tiny_args + ["--steps", "2"]) == 0
    # a --resume into another folder (without --out: runs/<the default data's name>) names the runs beside it
    other = [x.replace(str(tmp_path / "run"), str(tmp_path / "other")) for x in tiny_args]
    assert run(other + ["--resume"]) == 2
    assert f"runs beside it that have one: {tmp_path / 'run'} (give --out)" in capsys.readouterr().err
    assert run(tiny_args + ["--steps", "2"]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


def test_auto_resume_starts_or_continues_with_one_command(tiny_args, tmp_path, capsys):
    """--auto-resume: the command a cluster job runs on every attempt (the first, and each requeue after a
    preemption). Without a checkpoint it starts a run (and drops the metric records of an attempt stopped before its
    first checkpoint); with one it continues exactly as --resume does."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 5, "loss_d": 9.0}\n{"step": 10, "loss_d": 9.0}\n')  # a lost attempt
    (out / "train.lock").write_text("pid 1 on node7, since 2026-12-06 03:00:00 UTC\n")  # (as it leaves its lock file)
    assert run(tiny_args + ["--steps", "7", "--auto-resume"]) == 0
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps] == [5, 7] and steps[0]["loss_d"] != 9.0
    assert "interrupted" not in capsys.readouterr().out
    assert run(tiny_args + ["--steps", "30", "--auto-resume"]) == 0
    assert "resumed from " in capsys.readouterr().out
    twin = [x.replace(str(out), str(tmp_path / "twin")) for x in tiny_args]
    assert run(twin + ["--steps", "30"]) == 0  # the run never interrupted
    a, b = final_state(out), final_state(tmp_path / "twin")
    assert a["step"] == b["step"] == 30
    assert all(torch.equal(v, b["G"][k]) for k, v in a["G"].items())
    assert run(tiny_args + ["--steps", "30", "--auto-resume"]) == 0
    assert "nothing to train: the checkpoint is at step 30" in capsys.readouterr().out


def test_an_out_that_cannot_be_a_folder_is_refused_first(tmp_path, capsys, monkeypatch):
    """--out naming a file, or a path under one: a clear error before the data is read (not a traceback after)."""

    monkeypatch.setattr(train_mod, "open_catalog", lambda *a, **k: pytest.fail("the data was read"))
    (tmp_path / "notes.txt").write_text("x")
    under = "notes.txt/run: .*notes.txt is a file, not a folder"
    for out, msg in (
        (tmp_path / "notes.txt", "notes.txt is a file, not a folder"),
        (tmp_path / "notes.txt" / "run", under),
    ):
        assert run(["--data", "builtin:digits:100", "--out", out, "--steps", "1"]) == 2
        assert re.search(f"error: --out .*{msg}", capsys.readouterr().err)


def test_two_checkpoint_schedules_are_refused(tmp_path, capsys):
    """--ckpt-every and --ckpt-every-epochs both set: which one holds would be a guess, so neither is taken."""
    assert run(["--out", tmp_path / "o", "--ckpt-every", "100", "--ckpt-every-epochs", "2"]) == 2
    captured = capsys.readouterr()
    assert "error: --ckpt-every 100 and --ckpt-every-epochs 2: give one of the two" in captured.err
    assert "drawing the built-in" not in captured.out and not (tmp_path / "o").exists()


def test_resume_with_an_incompatible_config(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--steps", "2"]) == 0
    assert run(tiny_args + ["--steps", "4", "--resume", "--nz", "32"]) == 2
    err = capsys.readouterr().err
    assert "incompatible config" in err and "nz: checkpoint 64, this run 32" in err


def test_nan_stops_the_run_at_the_right_step_without_saving_it(tiny_args, tmp_path):
    cfg = parse_args(tiny_args + ["--steps", "20", "--log-every", "10", "--ckpt-every", "3"])
    t = Trainer(cfg, log=lambda m: None)
    real_step = t.train_step

    def poisoned(x, y):
        if t.step == 4:  # the 5th step
            with torch.no_grad():
                next(t.G.parameters()).fill_(float("nan"))
        real_step(x, y)

    t.train_step = poisoned
    with pytest.raises(TrainingError, match="non-finite loss .* at step 5"):
        t.train()
    assert [ckpt.load_checkpoint(p)["step"] for p in ckpt.list_checkpoints(t.ckpt_dir)] == [3]
    assert re.search(r"\nerror: .*non-finite loss .* at step 5.*\n$", (t.out / "train.log").read_text())


def test_checkpoints_are_pruned_and_written_atomically(tiny_args, tmp_path):
    assert run(tiny_args + ["--steps", "10", "--ckpt-every", "2", "--keep-ckpts", "2"]) == 0
    d = tmp_path / "run" / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(d)] == ["step_00000008.pt", "step_00000010.pt"]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_truncated_checkpoint_is_reported(tmp_path):
    p = tmp_path / "step_00000001.pt"
    p.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="cannot be read"):
        ckpt.load_checkpoint(p)


class _Touch:
    """Pickled as a call of Path.touch: what a tampered checkpoint could make torch.load(weights_only=False) run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_checkpoint_from_elsewhere_cannot_run_code(tiny_args, tmp_path, capsys):
    """sample, evaluate and --resume read checkpoints that may come from elsewhere (a shared run, a download); they
    were loaded with weights_only=False, which ran whatever call the file's pickle named."""
    assert run(tiny_args + ["--steps", "2"]) == 0
    file = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    state = ckpt.load_checkpoint(file)  # what fastacgan saves is read as it is
    assert state["step"] == 2 and torch.is_tensor(state["rng_cpu"])
    marker = tmp_path / "code-ran"
    torch.save({**state, "extra": _Touch(marker)}, file)
    with pytest.raises(ValueError, match=r"holds getattr, not tensors and plain values only: it is not loaded"):
        ckpt.load_checkpoint(file)
    capsys.readouterr()
    from fastacgan.sample import main as sample_main

    assert sample_main([str(file), "--out", str(tmp_path / "s.png")]) == 2
    assert "could run code" in capsys.readouterr().err and not marker.exists()
    png = tmp_path / "run" / "real.png"
    with pytest.raises(ValueError, match=f"{png} is not a fastacgan checkpoint \\(a run's are RUN/checkpoints/"):
        ckpt.load_checkpoint(png)


@pytest.mark.parametrize("native", [(False, False), (True, False), (True, True)])  # (bf16, fp16) in hardware
def test_amp_choice_and_what_it_says(monkeypatch, native):
    """--amp picks bf16 where the hardware has it (on a CPU without, fp32, and says why); an explicit
    --amp-dtype is done as asked, and on a CPU that would emulate it the log line says so."""
    import fastacgan.devices as devices

    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: native[0])
    monkeypatch.setattr(devices, "cpu_has_fp16", lambda: native[1])
    cpu = torch.device("cpu")

    def choose(*args):
        return devices.select_amp(parse_args(["--amp", *args]), cpu)

    assert devices.select_amp(parse_args([]), cpu) == (None, "fp32")
    dtype, note = choose()
    assert (dtype, "no native bf16" in note) == ((torch.bfloat16, False) if native[0] else (None, True))
    dtype, note = choose("--amp-dtype", "bf16")
    assert dtype == torch.bfloat16 and ("emulated" in note) == (not native[0])
    dtype, note = choose("--amp-dtype", "fp16")
    assert dtype == torch.float16 and note.startswith("fp16 autocast with a gradient scaler")
    assert ("no native fp16 (AMX-FP16): it is emulated" in note) == (not native[1])
    dtype, note = devices.select_amp(parse_args(["--amp-dtype", "bf16"]), cpu)  # a dtype without --amp
    assert dtype == torch.bfloat16 and note.endswith("(--amp-dtype implies --amp)")


@pytest.mark.parametrize("capability,name", [((7, 5), "Tesla T4"), ((7, 0), "Tesla V100"), ((9, 0), "H100")])
def test_amp_on_a_gpu_picks_bf16_only_where_it_is_native(monkeypatch, capability, name):
    """A T4 (Colab's) or a V100 has no bf16 arithmetic: torch.cuda.is_bf16_supported() still says yes (emulation),
    so --amp picks by compute capability: fp16 with a gradient scaler before 8.0, bf16 from it."""
    import fastacgan.devices as devices

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what torch says on all three
    gpu, native = torch.device("cuda", 0), capability >= (8, 0)
    dtype, note = devices.select_amp(parse_args(["--amp"]), gpu)
    if native:
        assert (dtype, note) == (torch.bfloat16, "bf16 autocast")
    else:
        cc = "{}.{}".format(*capability)
        want = f"fp16 autocast with a gradient scaler (this GPU, {name}, compute capability {cc}, has no native bf16)"
        assert dtype == torch.float16 and note == want
    dtype, note = devices.select_amp(parse_args(["--amp", "--amp-dtype", "bf16"]), gpu)  # as asked, said
    assert dtype == torch.bfloat16 and ("has no native bf16: it is emulated" in note) == (not native)


def test_a_numbered_gpu_is_checked_and_made_current(monkeypatch):
    """--device cuda:N: a number the machine does not have is refused with the ones it has; a valid one becomes the
    process's current CUDA device (Triton launches on the current device, whatever device its tensors are on)."""
    import fastacgan.devices as devices

    made_current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    assert devices.select_device("cuda:1") == torch.device("cuda", 1) and made_current == [torch.device("cuda", 1)]
    assert devices.select_device("cuda") == torch.device("cuda") and len(made_current) == 1  # the current one
    with pytest.raises(ValueError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        devices.select_device("cuda:2")
    assert len(made_current) == 1
    for other in ("mps", "xpu", "meta"):  # tracebacks before, from the first tensor moved there
        with pytest.raises(ValueError, match=f"--device {other}: fastacgan runs on cpu or cuda"):
            devices.select_device(other)


@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_mixed_precision_runs(tiny_args, amp_dtype):
    assert run(tiny_args + ["--steps", "3", "--amp", "--amp-dtype", amp_dtype]) == 0


def test_user_image_folder_with_preset(image_folder, tmp_path):
    args = [
        "--data",
        image_folder,
        "--preset",
        "cifar10",
        "--width",
        "0.25",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--steps",
        "3",
        "--out",
        tmp_path / "r",
        "--hflip",
        "--classes",
        "circle,square",
    ]
    assert run(args) == 0
    state = final_state(tmp_path / "r")
    assert state["classes"] == ["circle", "square"] and state["spec"]["image_size"] == 32


def test_bad_data_gives_a_clear_error(tmp_path, capsys):
    assert run(["--data", tmp_path / "nowhere", "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "nowhere: no such file or folder" in err


@pytest.mark.parametrize(
    "option,value,want",
    [("--batch-size", 0, ">= 1, got 0"), ("--steps", -5, ">= 0"), ("--lr-g", -1, "> 0, got -1"),
     ("--lr-d", "nan", "> 0, got nan"), ("--beta2", 1, ">= 0 and < 1, got 1"), ("--real-label", 0, "> 0 and <= 1"),
     ("--log-every", 0, ">= 1"), ("--max-images", -1, ">= 0"), ("--workers", -2, ">= -1"), ("--nz", -4, ">= 0"),
     ("--width", 0, "> 0, got 0"), ("--keep-ckpts", -1, ">= 0"), ("--ckpt-every-epochs", -1, ">= 0, got -1"),
     ("--fake-label", 1, ">= 0 and < 1, got 1"), ("--fake-label", -0.1, ">= 0 and < 1, got -0.1"),
     # --seed -5 failed with numpy's "expected non-negative integer" (--max-images' subset), a seed past 64 bits
     # with "Overflow when unpacking long long"
     ("--seed", -5, ">= 0 and <= 4294967295, got -5"), ("--seed", 2**64, f">= 0 and <= 4294967295, got {2**64}")],
)  # fmt: skip
def test_an_option_out_of_range_is_refused_before_any_work(tmp_path, capsys, option, value, want):
    assert run(["--out", tmp_path / "o", option, value]) == 2
    captured = capsys.readouterr()
    assert f"error: {option} must be {want}" in captured.err and "drawing the built-in" not in captured.out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "option,value,want",
    [("--preset", "cifar", "--preset 'cifar' is unknown; choose from auto, digits, mnist, cifar10"),
     ("--channels", 2, "--channels must be 1 or 3, got 2"),
     ("--image-size", 33, "--image-size 33 is not supported: use s * 2**n with n >= 1"),
     ("--conditioning", "concat", "--conditioning must be one of embed-mul, onehot-concat, onehot-replace, got 'conc")],
)  # fmt: skip
def test_a_model_option_the_models_cannot_take_is_refused_before_the_data_is_read(tmp_path, capsys, option, value,
                                                                                  want):  # fmt: skip
    """These were refused once the data had been listed and probed (the built-in set drawn; an ImageNet folder's
    1.2 million files listed), where the model was made."""
    assert run(["--out", tmp_path / "o", option, value]) == 2
    captured = capsys.readouterr()
    assert f"error: {want}" in captured.err and captured.out == "" and not (tmp_path / "o").exists()


def test_an_unknown_built_in_set_is_not_said_to_be_drawn(tmp_path, capsys):
    """--data builtin:mnist said "drawing the built-in data set builtin:mnist at 28x28 (a few seconds)", then that
    there is no such set."""
    assert run(["--out", tmp_path / "o", "--data", "builtin:mnist"]) == 2
    captured = capsys.readouterr()
    assert "unknown built-in data set (available: builtin:digits[:COUNT])" in captured.err and captured.out == ""


def test_the_fake_label_must_be_below_the_real_one(tmp_path, capsys):
    assert run(["--out", tmp_path / "o", "--real-label", "0.9", "--fake-label", "0.9"]) == 2
    want = "error: --fake-label 0.9 must be below --real-label 0.9: D's target for generated images is the lower one"
    assert want in capsys.readouterr().err and not (tmp_path / "o").exists()


def _progress(tmp_path, world: int, dt: float, steps: int) -> tuple[str, dict]:
    """The progress line and metrics record of a run at step 4 of 8 (batch 8 in each of `world` processes) that
    took dt seconds for its last `steps` steps."""
    from types import SimpleNamespace

    from fastacgan.outputs import RunOutputs

    lines, metrics = [], {k: 0.5 for k in ("loss_d", "loss_g", "d_real", "d_fake", "d_fake_g", "acc_real", "acc_fake")}
    run = SimpleNamespace(
        cfg=SimpleNamespace(batch_size=8), dist=SimpleNamespace(world=world, is_main=True), step=4, total_steps=8,
        loader=SimpleNamespace(steps_per_epoch=4), log=lines.append, out=tmp_path, check_finite=lambda: None,
        gan=SimpleNamespace(read_metrics=lambda: metrics), tensorboard=lambda values: None,
    )  # fmt: skip
    RunOutputs.report(run, dt, steps, 3.0)
    return lines[0], json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])


def test_the_progress_line_counts_every_process_images(tmp_path):
    """img/s (and metrics.jsonl's images_per_s) is the job's: N processes x --batch-size images a step. It counted
    one process's batch, so a 2-process run (torchrun) said half the images/s it trained at."""
    line, record = _progress(tmp_path, world=2, dt=0.5, steps=2)
    assert " | 64 img/s | " in line and line.endswith(" | ETA 0m01s") and record["images_per_s"] == 64


def test_a_line_at_the_end_of_the_compiling_steps_makes_up_no_rate(tmp_path):
    """With --compile, the timing starts again after the 3 compiling steps; a line due at that very step (--log-every
    1 or 3) has no step timed: it said "0 img/s" and "ETA 0m00s"."""
    line, record = _progress(tmp_path, world=1, dt=0.0, steps=0)
    assert " | -- img/s | " in line and line.endswith(" | ETA --") and record["images_per_s"] is None


def test_an_unknown_compile_backend_is_refused_before_any_work(tmp_path, capsys):
    """A misspelt backend (`aot-eager`) stopped a run (on a GPU, where --compile is on) with dynamo's InvalidBackend
    traceback after the data was read and the models were made."""
    assert run(["--out", tmp_path / "o", "--compile-backend", "aot-eager", "--compile-cpu"]) == 2
    captured = capsys.readouterr()
    assert "error: --compile-backend 'aot-eager' is not a torch.compile backend: inductor, aot_eager or eager" in (
        captured.err
    )
    assert "drawing the built-in" not in captured.out and not (tmp_path / "o").exists()


def test_cli_covers_every_config_field():
    parser = build_parser()
    opts = {a.dest for a in parser._actions}
    from dataclasses import fields

    from fastacgan.config import TrainConfig

    assert {f.name for f in fields(TrainConfig)} <= opts
    cfg = parse_args(["--no-channels-last", "--amp", "--lr-d", "1e-4"])
    assert cfg.channels_last is False and cfg.amp is True and cfg.lr_d == 1e-4


def test_cudnn_autotuning_is_left_alone_off_cuda(tiny_args, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    Trainer(parse_args(tiny_args + ["--steps", "1"]))
    assert torch.backends.cudnn.benchmark is False and "cuDNN" not in capsys.readouterr().out
    assert parse_args([]).cudnn_benchmark is True and parse_args(["--no-cudnn-benchmark"]).cudnn_benchmark is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("on", [True, False])
def test_a_cuda_run_sets_cudnn_autotuning(tmp_path, monkeypatch, capsys, on):
    """What the race's reference has (cudnn.benchmark), a training run has too, unless switched off."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not on)
    args = ["--data", "builtin:digits:400", "--image-size", "16", "--width", "0.25", "--batch-size", "16",
            "--device", "cuda", "--no-compile", "--out", str(tmp_path / "run")]  # fmt: skip
    Trainer(parse_args(args + ([] if on else ["--no-cudnn-benchmark"])))
    assert torch.backends.cudnn.benchmark is on
    assert f"cuDNN autotuning {'on' if on else 'off'}" in capsys.readouterr().out


def signal_at_step_4(args, sig, group: bool = False, hup=signal.SIG_DFL):
    """`python -m fastacgan.train ARGS` in a subprocess, sent `sig` once it has logged step 4 (or after 2 minutes),
    to its whole process group with `group`: (the finished process, the output up to then, the output after).
    `hup`: what SIGHUP does in it (SIG_IGN: as `nohup` starts it), whatever pytest's own SIGHUP does."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "fastacgan.train", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=group, preexec_fn=lambda: signal.signal(signal.SIGHUP, hup))  # fmt: skip
    lines = []
    deadline = time.time() + 120
    for line in proc.stdout:
        lines.append(line)
        if "step 4/" in line or time.time() > deadline:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            break
    rest, _ = proc.communicate(timeout=120)
    return proc, "".join(lines), rest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tiny_args, tmp_path, sig):
    """Ctrl-C, SIGTERM (a cluster preempting the job, `kill`, `timeout`) or SIGUSR1 (Slurm's warning before the
    time limit: its default action ended the run unsaved): the step finishes, a checkpoint is saved, the exit status
    is the shell's for that signal (130, 143, 138), and --resume continues."""
    proc, before, rest = signal_at_step_4(tiny_args + ["--steps", "100000", "--log-every", "2"], sig)
    assert proc.returncode == 128 + sig, before + rest
    assert "checkpoint saved" in rest and "Traceback" not in rest
    assert ("Ctrl-C" if sig == signal.SIGINT else signal.Signals(sig).name) + ": finishing this step and saving" in rest
    saved = final_state(tmp_path / "run")["step"]
    assert saved >= 4
    again = f"continue with python -m fastacgan.train --out {tmp_path / 'run'} --resume (or the same command and"
    assert again in rest
    assert main(["--out", str(tmp_path / "run"), "--resume", "--steps", str(saved + 2)]) == 0
    assert final_state(tmp_path / "run")["step"] == saved + 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_to_the_whole_process_group_still_saves(image_folder, tmp_path, sig):
    """Ctrl-C in a terminal and Slurm's SIGTERM go to every process of the job, the DataLoader's decoding workers
    too: a worker killed by SIGTERM used to stop the run with "DataLoader worker ... is killed by signal" and no
    checkpoint. The workers leave the signal to the main process, which finishes its step and saves."""
    args = ["--data", image_folder, "--loader", "torch", "--workers", "2", "--image-size", "16", "--width", "0.25",
            "--batch-size", "8", "--device", "cpu", "--steps", "100000", "--log-every", "2",
            "--out", tmp_path / "run"]  # fmt: skip
    # the main process and its workers, as a terminal or Slurm sends it
    proc, before, rest = signal_at_step_4(args, sig, group=True)
    assert proc.returncode == 128 + sig, before + rest
    assert "checkpoint saved" in rest and "exited unexpectedly" not in rest and "killed by signal" not in rest
    assert final_state(tmp_path / "run")["step"] >= 4


def test_a_closed_terminal_saves_a_checkpoint(image_folder, tmp_path):
    """A run in a terminal that closes (an ssh connection dropped, the window closed): the kernel sends SIGHUP to
    the run and its decoding workers, and writes to the terminal fail (EIO). SIGHUP's default action ended the run at
    once, unsaved. Now it stops as Ctrl-C does: the step finishes, a checkpoint is saved (train.log says so, the
    terminal being gone), exit 129."""
    import fcntl
    import select
    import termios

    try:
        master, terminal = os.openpty()
    except OSError as e:  # (a sandbox without /dev/ptmx)
        pytest.skip(f"no pseudo-terminal here: {e}")

    def its_terminal():  # the run leads a session whose controlling terminal is this one, as a login's jobs do
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = ["--data", image_folder, "--loader", "torch", "--workers", "2", "--image-size", "16", "--width", "0.25",
            "--batch-size", "8", "--device", "cpu", "--steps", "100000", "--log-every", "2",
            "--out", tmp_path / "run"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "fastacgan.train", *map(str, args)], stdin=terminal,
                            stdout=terminal, stderr=terminal, preexec_fn=its_terminal)  # fmt: skip
    os.close(terminal)
    shown, deadline = b"", time.time() + 120
    while b"step 4/" not in shown and time.time() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                shown += os.read(master, 65536)
            except OSError:  # (EIO: the run ended)
                break
    os.close(master)  # the terminal goes away
    assert proc.wait(timeout=120) == 128 + signal.SIGHUP, shown.decode(errors="replace")
    log = (tmp_path / "run" / "train.log").read_text()
    saved = final_state(tmp_path / "run")["step"]
    assert "SIGHUP: finishing this step and saving a checkpoint" in log and "note: printing failed (" in log
    assert f"interrupted: checkpoint saved at step {saved};" in log and saved >= 4
    assert "exited unexpectedly" not in log and "killed by signal" not in log


def test_nohup_keeps_the_run_going_when_its_terminal_closes(tiny_args, tmp_path):
    """`nohup python -m fastacgan.train ...`: SIGHUP is ignored, as the user asked; the run trains on to its end."""
    proc, before, rest = signal_at_step_4(tiny_args + ["--steps", "12", "--log-every", "2"], signal.SIGHUP,
                                          hup=signal.SIG_IGN)  # fmt: skip
    assert proc.returncode == 0, before + rest
    assert "done: 12 steps" in rest and "SIGHUP" not in rest
    assert final_state(tmp_path / "run")["step"] == 12


def test_ctrl_c_after_the_reader_of_the_output_has_gone_still_saves(tiny_args, tmp_path):
    """`python -m fastacgan.train ... | tee run.txt`, then Ctrl-C: the same Ctrl-C ends tee, so the run's next line
    met a closed pipe: "error: Broken pipe", exit 1, and the checkpoint the Ctrl-C asked for was never saved. Now the
    printing ends, not the run: the step finishes, the checkpoint is saved, exit 130, no traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "fastacgan.train", *tiny_args, "--steps", "100000", "--log-every", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    for line in proc.stdout:
        if "step 4/" in line or time.time() > deadline:
            break
    proc.stdout.close()  # tee has ended
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGINT, err
    log = (tmp_path / "run" / "train.log").read_text()
    saved = final_state(tmp_path / "run")["step"]
    assert f"note: printing failed (Broken pipe): the run goes on; its lines go on into {tmp_path / 'run'}" in err
    assert "Traceback" not in err and "Exception ignored" not in err and "error" not in err
    assert "Ctrl-C: finishing this step" in log and f"interrupted: checkpoint saved at step {saved};" in log
    assert saved >= 4


def test_a_stop_signal_is_said_after_the_step_not_inside_it(tiny_args, monkeypatch):
    """The handler of a stop signal printed its line itself: where the signal came during a write of the same
    stream or of train.log (a terminal closing as the run logged a step, seen in CI), Python refused the nested
    write, "reentrant call inside <_io.BufferedWriter name='.../train.log'>", and the run stopped with that error
    (exit 1) instead of its checkpoint. The handler only notes the signal; the loop says it once the step returns."""
    inside, said = [False], []
    real_step = train_mod.Trainer.train_step

    def step(self, real, labels):
        inside[0] = True
        try:
            if self.step == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # its handler runs here, inside the step
            return real_step(self, real, labels)
        finally:
            inside[0] = False

    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    trainer = Trainer(parse_args(tiny_args + ["--steps", "100"]), log=lambda msg: said.append((msg, inside[0])))
    result = trainer.train()
    assert result["interrupted"] and result["signal"] == signal.SIGTERM and result["step"] == 4
    stop = [m for m, _ in said if "SIGTERM: finishing this step and saving a checkpoint" in m]
    assert len(stop) == 1 and not any(during for _, during in said)  # said once, and nothing from inside the step


def test_a_second_stop_signal_aborts_at_once(tiny_args, tmp_path, capsys, monkeypatch):
    """SIGTERM twice (a scheduler's grace period running out, an impatient `kill`): the run stops inside the step,
    saves nothing, exits 143, and names the checkpoint that a resume would start from."""

    real_step = train_mod.Trainer.train_step

    def step(self, real, labels):
        if self.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs when the call returns: finish and save
            os.kill(os.getpid(), signal.SIGTERM)  # and this one aborts, here, before step 6 is computed
            pytest.fail("the second SIGTERM did not abort")
        return real_step(self, real, labels)

    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    before = signal.getsignal(signal.SIGTERM)
    assert run(tiny_args + ["--steps", "100", "--ckpt-every", "2"]) == 128 + signal.SIGTERM
    captured = capsys.readouterr()
    newest = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    # (the first signal's line is said when the step returns, and this one never did)
    assert "SIGTERM: finishing this step" not in captured.out
    assert f"aborted without saving; the newest checkpoint is {newest}" in captured.err
    assert ckpt.load_checkpoint(newest)["step"] == 4
    assert signal.getsignal(signal.SIGTERM) == before  # the run's handler is gone


def test_a_resume_removes_the_partial_checkpoints_of_a_killed_save(tiny_args, tmp_path, capsys):
    """A run killed while writing a checkpoint (SIGKILL: the OOM killer, a scheduler's hard kill) leaves the
    temporary file of that save, as large as a checkpoint; every later kill added one. The next run in the folder,
    holding its lock (so no save is under way), removes them and says so; other files stay."""
    assert run(tiny_args + ["--steps", "4"]) == 0
    ckpts = tmp_path / "run" / "checkpoints"
    fd, partial = tempfile.mkstemp(dir=ckpts, prefix=".step_00000008.pt.", suffix=".tmp")  # atomic_write_bytes' name
    os.write(fd, b"x" * 3_000_000)
    os.close(fd)
    others = [ckpts / ".notes.tmp", ckpts / "step_00000004.pt.bak"]
    for p in others:
        p.write_bytes(b"mine")
    capsys.readouterr()
    assert run(tiny_args + ["--steps", "6", "--resume"]) == 0
    line = f"removed 1 partial checkpoint file(s) (3 MiB) in {ckpts}, left by a save that was cut short"
    assert line in capsys.readouterr().out and line in (tmp_path / "run" / "train.log").read_text()
    assert not os.path.exists(partial) and all(p.read_bytes() == b"mine" for p in others)
    assert [p.name for p in ckpt.list_checkpoints(ckpts)] == ["step_00000004.pt", "step_00000006.pt"]


def test_a_second_ctrl_c_while_the_decoding_workers_shut_down_is_quiet(tmp_path):
    """Ctrl-C twice while the images are decoded (seen with `timeout -s INT`, which signals the run and then its
    whole process group): the first aborts the run; the second landed in the DataLoader's shutdown of its
    workers, which ran in its finalizer once the abort line was said, and printed "Exception ignored in:
    <function _MultiProcessingDataLoaderIter.__del__ ...>" and a KeyboardInterrupt traceback after it. The
    interrupted work is let go of before the line, where a second Ctrl-C cuts the shutdown short quietly. Here a
    stand-in for the loader's iterator, held by the interrupted frame, takes that second Ctrl-C in its finalizer."""
    probe = """
import signal, sys
import fastacgan.train as train_mod

class Workers:  # what the decoding loop holds: its finalizer shuts the workers down
    def __del__(self):
        print("shutting down", file=sys.stderr)
        raise KeyboardInterrupt  # the second Ctrl-C, during the shutdown

def decoding(*a, **k):
    workers = Workers()
    raise KeyboardInterrupt  # the first Ctrl-C, before the run's handlers are set

train_mod.Trainer = decoding
status = train_mod.main(["--data", "builtin:digits:100", "--out", sys.argv[1]])
print("main returned", status, file=sys.stderr)
sys.exit(status)
"""
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 130, out.stderr
    lines = out.stderr.splitlines()
    assert lines[-3:] == ["shutting down", "aborted without saving", "main returned 130"], out.stderr
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr


def test_a_ctrl_c_after_the_last_checkpoint_says_nothing_was_lost(tiny_args, tmp_path, capsys, monkeypatch):
    """SIGTERM stops the run, its checkpoint is saved, and a Ctrl-C lands while samples.gif is being written (a
    slow GIF of large grids): the run said "aborted without saving", though the checkpoint it had just saved held
    every step trained. A Ctrl-C before that checkpoint still says what it lost."""
    real_step = train_mod.Trainer.train_step

    def step(self, real, labels):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self, real, labels)

    def gif(self):
        os.kill(os.getpid(), signal.SIGINT)  # the run's handlers are gone by now: Python's own, KeyboardInterrupt

    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    monkeypatch.setattr(train_mod.Trainer, "save_animation", gif)
    assert run(tiny_args + ["--steps", "100", "--ckpt-every", "50"]) == 128 + signal.SIGINT
    err = capsys.readouterr().err
    saved = ckpt.checkpoint_path(tmp_path / "run" / "checkpoints", 3)
    assert ckpt.load_checkpoint(saved)["step"] == 3
    line = f"aborted; nothing trained is lost: {saved} holds step 3, the last (--resume continues from it)"
    assert line in err and "without saving" not in err
    assert line in (tmp_path / "run" / "train.log").read_text()


def test_an_out_holding_files_of_a_runs_names_that_are_not_a_runs_is_refused(tmp_path, capsys):
    """`--out .` in a project folder (the ImageNet/CIFAR ACGAN's --outf is '.' by default): the run overwrote its
    config.json, and would have truncated a metrics.jsonl and appended to a train.log. Refused before the data is
    read, nothing written; other files beside a run's are left alone, and a run's own folder resumes as before."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"my": "settings"}')
    (project / "notes.txt").write_text("mine")
    args = ["--data", "builtin:digits:400", *TINY, "--steps", "2"]
    assert run(args + ["--out", project]) == 2
    printed = capsys.readouterr()
    assert printed.err == (f"error: --out {project} holds config.json, not a fastacgan run's: a run writes files of "
                           f"that name there; give a new or empty folder (--out {project / 'run'})\n")  # fmt: skip
    assert "drawing the built-in" not in printed.out
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "notes.txt"]
    assert (project / "config.json").read_text() == '{"my": "settings"}'
    (project / "config.json").unlink()
    (project / "train.log").write_text("my own log")
    (project / "curves.png").write_bytes(b"x")
    assert run(args + ["--out", project]) == 2
    assert f"--out {project} holds train.log, curves.png, not a fastacgan run's: a run writes files of those names" \
        in capsys.readouterr().err  # fmt: skip
    (project / "train.log").unlink()
    (project / "curves.png").unlink()
    assert run(args + ["--out", project]) == 0  # beside other files: fine
    assert (project / "notes.txt").read_text() == "mine" and final_state(project)["step"] == 2
    assert run(args + ["--out", project, "--resume", "--steps", "4"]) == 0 and final_state(project)["step"] == 4


def test_a_full_disk_stops_the_run_with_the_file_and_the_checkpoint_to_resume_from(
    tiny_args, tmp_path, capsys, monkeypatch
):
    """The disk fills up as the step-8 checkpoint is written: the run stops with the file and the reason (not a
    traceback), leaves no temporary file, keeps step 4's checkpoint, and a resume goes on from there."""
    real_fsync = os.fsync

    def fsync(fd):
        if "step_00000008.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert run(tiny_args + ["--steps", "10", "--ckpt-every", "4", "--sample-every", "100"]) == 1
    folder = tmp_path / "run" / "checkpoints"
    err = capsys.readouterr().err
    want = (f"error: {folder / 'step_00000008.pt'}: No space left on device; the newest checkpoint is "
            f"{folder / 'step_00000004.pt'} (--resume continues from it)")  # fmt: skip
    assert want in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000004.pt"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert run(tiny_args + ["--steps", "10", "--resume"]) == 0
    assert final_state(tmp_path / "run")["step"] == 10


def test_running_out_of_memory_says_what_fits_and_where_to_resume(tiny_args, tmp_path, capsys, monkeypatch):
    """Step 7 asks the CPU's allocator for more than the machine has (the real error, not a stand-in): the run stops
    with where, with what batch and precision, the allocator's own words (without its C++ check), what fits in
    less, and the checkpoint that --resume --batch-size continues from; not a traceback. Out of memory while
    reading the data names the options that bound it."""
    real_step = train_mod.Trainer.train_step

    def step(self, real, labels):
        if self.step == 6:
            torch.empty(1 << 55)  # 128 PiB: more than any address space (47 bits, 56 with 5-level paging)
        return real_step(self, real, labels)

    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    assert run(tiny_args + ["--steps", "10", "--ckpt-every", "4", "--sample-every", "100"]) == 1
    err = capsys.readouterr().err
    newest = tmp_path / "run" / "checkpoints" / "step_00000004.pt"
    assert "Traceback" not in err and "enforce fail" not in err
    assert "error: out of memory on cpu in step 7 (batch 16 of 16x16 images, preset digits, fp32): " in err
    assert "can't allocate memory: you tried to allocate 131072.0 TiB" in err
    assert "a smaller --batch-size fits, as may --amp" in err
    assert f"; the newest checkpoint is {newest} (--resume --batch-size N continues from it)" in err
    # the short resume takes the run's options: the batch named is the run's 16, not the default 64
    assert run(["--out", tmp_path / "run", "--resume", "--steps", "10"]) == 1
    assert "out of memory on cpu in step 7 (batch 16 of 16x16 images" in capsys.readouterr().err
    monkeypatch.setattr(train_mod.Trainer, "train_step", real_step)
    assert run(tiny_args + ["--steps", "10", "--resume", "--batch-size", "8"]) == 0
    assert final_state(tmp_path / "run")["step"] == 10

    def no_room(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.00 GiB for an array with shape (100000, 3, 64, 64) and data type uint8")

    monkeypatch.setattr(train_mod, "make_loader", no_room)
    assert run(tiny_args + ["--steps", "10", "--out", tmp_path / "other"]) == 1
    err = capsys.readouterr().err
    assert "error: out of memory before training, reading the data: Unable to allocate 3.00 GiB" in err
    assert "--cache-gb (now 4) bounds" in err and "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGBUS])
def test_a_decoding_worker_that_dies_is_explained(image_folder, tmp_path, capsys, monkeypatch, sig):
    """A decoding worker killed by the kernel's out-of-memory killer (SIGKILL), or by a bus error (a Docker
    container's 64 MB /dev/shm), stopped the run with a traceback ending in "DataLoader worker (pid N) is killed by
    signal: Killed.": the error line says what that most likely is and what to change, and where to resume from."""
    import fastacgan.decode as decode_mod

    parent, real_decode, decoded = os.getpid(), decode_mod.decode_image, {}

    def decode(*args):
        pid = os.getpid()
        decoded[pid] = decoded.get(pid, 0) + 1
        if pid != parent and decoded[pid] > 30:  # in a worker, after the first checkpoint's batches
            os.kill(pid, sig)
        return real_decode(*args)

    monkeypatch.setattr(decode_mod, "decode_image", decode)
    args = ["--data", image_folder, "--loader", "torch", "--workers", "2", "--image-size", "16", "--width", "0.25",
            "--batch-size", "8", "--device", "cpu", "--steps", "100", "--ckpt-every", "2", "--log-every", "2",
            "--out", tmp_path / "run"]  # fmt: skip
    assert run(args) == 1
    err = capsys.readouterr().err
    # (the worker's signal is in the DataLoader's message only where it is iterated in the main thread)
    said = (
        r"(DataLoader worker \(pid(\(s\))? \d+\) (is killed by signal: (Killed|Bus error)|exited unexpectedly)"
        r"|its last batch could not be received: (EOFError|ConnectionResetError: .*))"
    )  # (see the next test)
    assert re.search(rf"error: a decoding worker process stopped \({said}; --workers 2\): ", err), err
    assert ("out-of-memory killer" if sig == signal.SIGKILL else "shared memory (/dev/shm)") in err
    assert "Traceback" not in err
    assert re.search(r"; the newest checkpoint is \S+step_0+\d+\.pt \(--resume continues from it\)", err), err


def dataloader_error(e: Exception) -> Exception:
    """`e` raised where a DataLoader receives a batch from its worker (as it is when the worker dies meanwhile)."""
    from torch.utils.data import DataLoader

    batches = iter(DataLoader(list(range(8)), batch_size=2, num_workers=1))

    def receive(*args, **kwargs):
        raise e

    batches._data_queue.get = receive
    try:
        next(batches)
    except type(e) as raised:
        return raised
    finally:
        batches._shutdown_workers()
    pytest.fail("not raised")


@pytest.mark.parametrize("error", [EOFError(), ConnectionResetError(104, "Connection reset by peer")])
def test_a_worker_lost_while_its_batch_is_received_is_explained(tiny_args, tmp_path, capsys, monkeypatch, error):
    """A worker that dies while the main process receives its last batch, before the DataLoader has seen it gone:
    what receiving met came out raw, 1 time in 30 or so in the test above: an EOFError traceback, or "error:
    Connection reset by peer" (taken for a write of the run's outputs that failed). Both are a lost worker."""
    from fastacgan.workers import lost_worker

    raised = dataloader_error(error)
    said = lost_worker(raised, 2)
    what = "EOFError" if isinstance(error, EOFError) else "ConnectionResetError: [Errno 104] Connection reset by peer"
    assert said.startswith(f"a decoding worker process stopped (its last batch could not be received: {what}; "
                           "--workers 2): most often the kernel's out-of-memory killer")  # fmt: skip
    assert lost_worker(type(error)(*error.args), 2) is None  # the same error elsewhere (a pipe, a socket) is not
    in_the_worker = dataloader_error(type(error)("Caught EOFError in DataLoader worker process 0."))
    assert lost_worker(in_the_worker, 2) is None  # nor one a worker raised, which the DataLoader raises again

    def step(self, real, labels):
        if self.step == 3:
            raise raised
        return real_step(self, real, labels)

    real_step = train_mod.Trainer.train_step
    monkeypatch.setattr(train_mod.Trainer, "train_step", step)
    assert run(tiny_args + ["--steps", "10", "--ckpt-every", "2"]) == 1
    err = capsys.readouterr().err
    said_here = lost_worker(raised, train_mod.workers.default_workers(parse_args(tiny_args).workers))
    assert err.startswith(f"error: {said_here}; the newest checkpoint is ") and "Traceback" not in err


def test_an_unexpected_error_with_decoding_workers_still_ends_the_process(image_folder, tmp_path):
    """A bug's traceback keeps the DataLoader alive to the end, and the decoding workers ignore SIGTERM (so that a
    terminal's Ctrl-C or Slurm's SIGTERM leaves the stopping to the main process): the process printed the
    traceback and then waited for them forever in multiprocessing's exit, a job that never ends. It ends now."""
    code = (
        "import sys, fastacgan.train as t\n"
        "step = t.Trainer.train_step\n"
        "def broken(self, real, labels):\n"
        "    if self.step == 3:\n"
        "        raise RuntimeError('a bug in step 4')\n"
        "    return step(self, real, labels)\n"
        "t.Trainer.train_step = broken\n"
        "sys.exit(t.main(sys.argv[1:]))\n"
    )
    args = ["--data", image_folder, "--loader", "torch", "--workers", "2", "--image-size", "16", "--width", "0.25",
            "--batch-size", "8", "--device", "cpu", "--steps", "100", "--out", tmp_path / "run"]  # fmt: skip
    try:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the process did not end: {e.stderr}")
    assert proc.returncode == 1
    assert proc.stderr.rstrip().endswith("RuntimeError: a bug in step 4"), proc.stderr  # nothing after it


def test_file_names_that_are_not_utf8_train_sample_and_resume(tmp_path):
    """A class folder and images named in Latin-1 (an old archive, a Windows share: Python holds the odd bytes as
    surrogates), one of them unreadable, under a terminal whose stdout is strict UTF-8 (en_US.UTF-8). Before,
    the run stopped with "'utf-8' codec can't encode character '\\udce9'" (the data's fingerprint, the log file,
    the printed warning), naming nothing."""
    root = os.fsencode(tmp_path / "latin")
    rng = np.random.default_rng(0)
    for c in (b"caf\xe9", b"tea"):
        os.makedirs(root + b"/" + c)
        for i in range(6):
            pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.fsdecode(root + b"/" + c + b"/img\xe9%d.png" % i))
    with open(root + b"/tea/bad\xe9.png", "wb") as f:
        f.write(b"not a png")
    out = tmp_path / "run"
    args = ["--data", os.fsdecode(root), *TINY, "--batch-size", "4", "--out", str(out), "--decode-cache",
            str(tmp_path / "cache")]  # fmt: skip
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    for more in (["--steps", "4"], ["--steps", "6", "--resume"]):
        proc = subprocess.run([sys.executable, "-m", "fastacgan.train", *args, *more], capture_output=True, text=True,
                              env=env, errors="backslashreplace", timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "tea/bad\\udce9.png: cannot decode" in proc.stderr  # the warning, its odd byte escaped
    log = (out / "train.log").read_text(encoding="utf-8")
    assert "tea/bad\\udce9.png: cannot decode" in log and "run resumed from step_00000004.pt" in log
    assert final_state(out)["classes"] == ["caf\udce9", "tea"]
    from fastacgan.sample import main as sample_main

    assert sample_main([str(out), "--per-class", "1", "--out", str(tmp_path / "synth"), "--image-folder"]) == 0
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == ["caf_", "tea"]


def test_images_enlarged_to_the_model_are_said_to_be(image_folder, tmp_path):
    """20-pixel images trained at 64x64 (--preset isic64 on CIFAR-10's 32, --image-size 64 on MNIST): a note says
    so; at 32 (less than 2x) and 16, nothing."""
    for size, said in ((64, True), (32, False), (16, False)):
        lines = []
        args = ["--data", str(image_folder), *TINY, "--image-size", str(size), "--out", str(tmp_path / str(size))]
        Trainer(parse_args(args), log=lines.append)
        note = [line for line in lines if line.startswith("note: the images are")]
        want = ["note: the images are 20 pixels on their short side (the first one read) and are enlarged 3.2x to "
                "the model's 64x64: G learns the enlargement's blur; a smaller --image-size (or --preset) trains "
                "nearer their own size"]  # fmt: skip
        assert note == (want if said else []), (size, note)


def test_unbalanced_classes_are_said(tmp_path):
    """HAM10000-like classes, one 10x or more rarer than another: G draws every class equally often, so D sees many
    more fakes of the rare class than real ones; a note says so (the class, the counts, how many more fakes). Classes
    within 10 to 1: nothing. Was silent."""
    for name, n in (("nv", 40), ("mel", 8), ("df", 3)):
        (tmp_path / "ham" / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (i, 0, 0)).save(tmp_path / "ham" / name / f"{i}.png")
    lines = []
    Trainer(parse_args(["--data", str(tmp_path / "ham"), *TINY, "--out", str(tmp_path / "run")]), log=lines.append)
    want = (
        "note: the classes are unbalanced, df 3 images to nv's 40: G draws every class equally often, so D sees "
        "6x as many fakes of df as real ones (--balance-classes draws the real images evenly too; --classes leaves "
        "classes out)"
    )  # (51 / 3 classes / 3 = 5.7)
    assert [line for line in lines if line.startswith("note: the classes")] == [want]
    lines.clear()
    args = ["--data", str(tmp_path / "ham"), *TINY, "--classes", "nv,mel", "--out", str(tmp_path / "run2")]
    Trainer(parse_args(args), log=lines.append)  # 40 to 8
    assert not [line for line in lines if line.startswith("note: the classes")]


@pytest.mark.parametrize("loader", ["resident", "torch"])
def test_balance_classes_draws_every_class_equally_often(tmp_path, loader, capsys):
    """--balance-classes: an epoch of N draws with replacement, each image's chance 1 / its class's count, so the
    real batches hold every class about equally often, as G's classes come; the order is a pure function of (seed,
    epoch), so a resumed run sees what the whole run saw; without it, a permutation as before."""
    from fastacgan.loaders import epoch_indices
    from fastacgan.sampling import class_weights

    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    plain = epoch_indices(1000, 3, 1)[0]
    assert sorted(plain.tolist()) == list(range(1000))
    idx = epoch_indices(1000, 3, 1, weights=class_weights(labels))[0]
    assert torch.equal(idx, epoch_indices(1000, 3, 1, weights=class_weights(labels))[0])  # seeded
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert all(270 < c < 400 for c in counts), counts  # (333 each; 900 / 90 / 10 without)
    assert len(set(idx[labels[idx] == 2].tolist())) == 10  # the rare class's images, each many times
    flips = epoch_indices(1000, 3, 1, weights=class_weights(labels))[1]
    again = [flips[idx == i] for i in range(990, 1000)]  # an image drawn many times: flipped some times, not others
    assert all(0 < int(f.sum()) < len(f) for f in again if len(f) >= 8)

    for name, n in (("nv", 40), ("mel", 8), ("df", 3)):
        (tmp_path / "ham" / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (16, 16), (i, 60 * len(name), 0)).save(tmp_path / "ham" / name / f"{i}.png")
    from fastacgan.data import open_catalog
    from fastacgan.loaders import make_loader

    cat = open_catalog(str(tmp_path / "ham"))
    served = make_loader(cat, 8, 3, 17, 0, torch.device("cpu"), False, 0, "skip", 1.0, loader, lambda m: None,
                         balance=True)  # fmt: skip
    seen = torch.cat([y.cpu() for e in range(4) for _, y in served.epoch(e)])  # the loader's own batches
    even, said = open_catalog("builtin:digits:40", image_size=8), []  # (4 of each digit)
    make_loader(even, 8, 1, 8, 0, torch.device("cpu"), False, 0, "skip", 1.0, loader, said.append, balance=True)
    assert said[-1].endswith("with replacement; the classes hold as many images each already")
    assert len(seen) == 4 * 3 * 17 and all(40 < c < 95 for c in torch.bincount(seen).tolist())  # (68 each)
    out = tmp_path / "run"
    args = ["--data", tmp_path / "ham", *TINY, "--batch-size", 17, "--loader", loader, "--out", out]
    assert run([*args, "--balance-classes", "--steps", 2]) == 0
    said = capsys.readouterr().out
    assert ("balanced classes (--balance-classes): each class's real images drawn equally often, with replacement; "
            "the rarest, df, 5.7x as often as its share of the images") in said  # fmt: skip
    assert "note: the classes are unbalanced" not in said
    assert final_state(out)["config"]["balance_classes"] is True
    assert run([*args, "--steps", 3, "--resume"]) == 0  # continued as it was
    assert "balanced classes (--balance-classes)" in capsys.readouterr().out
    assert final_state(out)["step"] == 3


def test_a_damaged_newest_checkpoint_names_the_one_before_it(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--steps", "8", "--ckpt-every", "4"]) == 0
    folder = tmp_path / "run" / "checkpoints"
    newest = folder / "step_00000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    capsys.readouterr()
    assert run(tiny_args + ["--steps", "12", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"error: checkpoint {newest} cannot be read" in err
    assert f"to resume from the checkpoint before it, step_00000004.pt, move step_00000008.pt out of {folder}" in err
    newest.rename(tmp_path / "damaged.pt")
    assert run(tiny_args + ["--steps", "12", "--resume"]) == 0
    assert final_state(tmp_path / "run")["step"] == 12


def test_a_second_run_into_a_busy_out_is_refused_and_changes_nothing(tiny_args, tmp_path, capsys):
    """A run holds --out's lock while it trains: another process starting into the same folder (the same command
    in a second terminal, a requeued job whose first attempt still runs) is refused before it writes anything, a
    --resume included (which would have cut the live run's metrics back). kill -9 of the holder frees the folder."""
    out = tmp_path / "run"
    assert run(tiny_args + ["--steps", "4"]) == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ckpt.LOCK_NAME}
    holder = subprocess.Popen(  # another process holding the lock, as a live run does, then killed without notice
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
         "f.truncate(0); f.write('pid 4242 on gpu7, since 2026-12-02 10:00:00 UTC'); f.flush(); "
         "print('held', flush=True); time.sleep(600)", str(out / ckpt.LOCK_NAME)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert run(tiny_args + ["--resume", "--steps", "8"]) == 2
        err = capsys.readouterr().err
        assert f"error: --out {out} is in use by another training run (pid 4242 on gpu7, since 2026-12-02" in err
        after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ckpt.LOCK_NAME}
        assert after == before  # no checkpoint, no config.json, no metrics record touched
    finally:
        holder.kill()
        holder.wait()
    assert run(tiny_args + ["--resume", "--steps", "8"]) == 0  # the kernel dropped the lock with its holder
    assert final_state(out)["step"] == 8
    assert (out / ckpt.LOCK_NAME).read_text().startswith(f"pid {os.getpid()} on ")  # the last holder, named


def test_a_refused_out_costs_no_data_loading(tiny_args, tmp_path, monkeypatch):
    """A run refused for its --out (a live run holds it; checkpoints there without --resume, or none with it) is
    refused before its data is listed or decoded: a second run would otherwise decode the whole set (CIFAR-10's
    JPEGs: 15 s on a 2-core CPU, competing with the live run for it; an ImageNet subset: minutes) to be refused.
    The look at the lock writes nothing: the holder's details stay in the lock file, and a free folder stays free."""

    def refused(args, error, match):
        with monkeypatch.context() as m:
            m.setattr(train_mod, "open_catalog", lambda *a, **k: pytest.fail("the data was listed before the refusal"))
            m.setattr(train_mod, "make_loader", lambda *a, **k: pytest.fail("the data was loaded before the refusal"))
            with pytest.raises(error, match=match):
                Trainer(parse_args(tiny_args + args), log=lambda m: None)

    out = tmp_path / "run"
    out.mkdir()
    refused(["--resume"], ValueError, "--resume: no checkpoint in .*run/checkpoints to resume from")
    lock = ckpt.lock_run_dir(out)
    held = (out / ckpt.LOCK_NAME).read_text()
    refused(["--steps", "2"], ckpt.RunInUse, f"--out {re.escape(str(out))} is in use by another training run")
    assert (out / ckpt.LOCK_NAME).read_text() == held
    lock.close()
    t = Trainer(parse_args(tiny_args + ["--steps", "2"]), log=lambda m: None)
    ckpt.lock_run_dir(out).close()  # the look took no lock that outlives it
    t.train()
    assert final_state(out)["step"] == 2
    refused(["--steps", "4"], ValueError, "already holds checkpoints .step_00000002.pt. of a run on --data builtin")


def test_the_lock_is_per_run_not_per_process(tiny_args, tmp_path):
    """Held only while a run trains: runs one after another in one process (a notebook, a sweep) each get it,
    and a run that checks out after another wrote checkpoints into its --out is refused rather than mixed in."""
    (tmp_path / "run_a").mkdir()
    lock = ckpt.lock_run_dir(tmp_path / "run_a")
    with pytest.raises(ckpt.RunInUse, match="run_a is in use by another training run \\(pid "):
        ckpt.lock_run_dir(tmp_path / "run_a")  # a second open file: flock is not reentrant, even in one process
    lock.close()
    ckpt.lock_run_dir(tmp_path / "run_a").close()
    t = Trainer(parse_args(tiny_args + ["--steps", "2"]), log=lambda m: None)
    assert not (tmp_path / "run").exists()  # a Trainer writes nothing before it trains
    assert run(tiny_args + ["--steps", "2"]) == 0  # meanwhile, another run into the same --out
    with pytest.raises(ValueError, match="another run wrote step_00000002.pt while this one started; run again"):
        t.train()
    assert run(tiny_args + ["--steps", "4", "--resume"]) == 0  # the refused run let the lock go


def test_a_filesystem_without_locks_trains_unlocked_and_says_so(tiny_args, tmp_path, capsys, monkeypatch):
    import errno
    import fcntl

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert run(tiny_args + ["--steps", "2"]) == 0
    assert "cannot lock files (No locks available): a second training run into the same --out would not be" in (
        capsys.readouterr().out
    )


def test_a_resume_already_past_its_steps_trains_nothing_and_says_so(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--steps", "8"]) == 0
    config = (tmp_path / "run" / "config.json").read_bytes()
    capsys.readouterr()
    assert run(tiny_args + ["--steps", "5", "--resume"]) == 0
    want = "nothing to train: the checkpoint is at step 8, and the run was asked for 5 steps (--steps 5); a larger"
    out = capsys.readouterr().out
    assert want in out and "training 5 steps" not in out
    assert (tmp_path / "run" / "config.json").read_bytes() == config  # the run's record is left as it was
    assert final_state(tmp_path / "run")["step"] == 8
    assert run(tiny_args + ["--steps", "30", "--resume"]) == 0
    capsys.readouterr()
    assert run(tiny_args + ["--epochs", "1", "--resume"]) == 0  # 400 images at batch 16: 25 steps an epoch
    assert "the run was asked for 25 steps (--epochs 1 of 25 steps)" in capsys.readouterr().out


def test_a_torn_metrics_line_does_not_stop_a_resume(tiny_args, tmp_path):
    """A run killed as it appended to metrics.jsonl leaves half a line: the resume drops it with the records after
    its checkpoint, instead of refusing to start (a JSON error, before)."""
    assert run(tiny_args + ["--steps", "10"]) == 0
    metrics = tmp_path / "run" / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 12, "epo')
    assert run(tiny_args + ["--steps", "15", "--resume"]) == 0
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [5, 10, 15]


def test_resume_with_changed_options_says_so(tiny_args, tmp_path, capsys):
    assert run(tiny_args + ["--steps", "2"]) == 0
    capsys.readouterr()
    assert run(tiny_args + ["--steps", "4", "--resume", "--lr-d", "1e-4", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "resuming with options that differ" in out and "--lr-d 0.0002 -> 0.0001" in out
    assert "--batch-size 16 -> 8" in out and "--steps" not in out.split("differ")[1].split("\n")[0]
    # and they are the ones in effect: the optimizers' settings are this run's, their moments the checkpoint's
    assert run(tiny_args + ["--steps", "5", "--resume", "--lr-d", "5e-5", "--beta1", "0.3"]) == 0
    state = final_state(tmp_path / "run")
    (d_group,), (g_group,) = state["opt_d"]["param_groups"], state["opt_g"]["param_groups"]
    assert d_group["lr"] == 5e-5 and g_group["lr"] == 2e-4 and d_group["betas"] == g_group["betas"] == (0.3, 0.999)
    assert all(float(s["step"]) == 5 for s in state["opt_d"]["state"].values())


@pytest.mark.parametrize("capturable", [True, False])
def test_a_resume_keeps_this_runs_optimizer_implementation(tiny_args, tmp_path, capturable):
    """A checkpoint's param groups also name how Adam ran (fused, capturable, foreach): an older checkpoint
    (fused=None: for-each Adam), or one of a run without --graph-step (capturable=False, which a CUDA-graph
    capture of the step refuses), must not switch this run's fused Adam off or its capturable Adam back."""
    assert run(tiny_args + ["--steps", "2"]) == 0
    path = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    state = ckpt.load_checkpoint(path)
    for key in ("opt_g", "opt_d"):
        state[key]["param_groups"][0].update(fused=None, foreach=True, capturable=capturable)
        for st in state[key]["state"].values():
            st["step"] = st["step"].double()  # as a for-each Adam keeps it under float64 as the default dtype
    ckpt.save_checkpoint(path, state)
    t = Trainer(parse_args(tiny_args + ["--steps", "3", "--resume"]))
    for opt, key in ((t.gan.opt_g, "opt_g"), (t.gan.opt_d, "opt_d")):
        (group,) = opt.param_groups
        assert (group["fused"], group["foreach"], group["capturable"]) == (True, None, False)
        steps = [opt.state[p]["step"] for p in group["params"]]
        assert all(s.dtype == torch.float32 and float(s) == 2 for s in steps)
        saved = list(state[key]["state"].values())[0]["exp_avg"]
        assert torch.equal(opt.state[group["params"][0]]["exp_avg"], saved)
    assert t.train()["step"] == 3


def test_a_gpu_checkpoint_resumes_on_a_machine_with_fewer_gpus():
    """Checkpoints hold their GPU's RNG state; older ones every visible GPU's (8 from an 8-GPU node), which the
    resume gave to GPUs 0..7 and failed with IndexError on a machine with fewer."""
    from fastacgan.devices import cuda_rng_to_restore

    states = [torch.full((16,), i, dtype=torch.uint8) for i in range(8)]
    assert cuda_rng_to_restore(states, torch.device("cuda")) is states[0]
    assert cuda_rng_to_restore(states, torch.device("cuda:3")) is states[3]
    assert cuda_rng_to_restore(states[:2], torch.device("cuda:3")) is states[0]  # saved where there was no GPU 3
    assert cuda_rng_to_restore(states[5], torch.device("cuda:1")) is states[5]  # a checkpoint of this version
    assert cuda_rng_to_restore(None, torch.device("cuda")) is None  # a CPU run's checkpoint
    assert cuda_rng_to_restore(states, torch.device("cpu")) is None  # a GPU run resumed on a CPU


def test_a_gpu_runs_checkpoint_resumes_on_a_cpu(tiny_args, tmp_path, capsys):
    """A GPU's noise generator state (philox: 16 bytes) does not fit a CPU generator (5056 bytes), which refused
    it with a traceback: the resume draws a new noise stream instead, says so, and two such resumes agree."""
    assert run(tiny_args + ["--steps", "2"]) == 0
    ckpts = tmp_path / "run" / "checkpoints"
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(ckpts)[-1])
    cuda_state = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)  # seed, offset
    state["noise_gen"] = cuda_state
    state["rng_cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 2  # as an older version saved it on 2 GPUs
    ckpt.save_checkpoint(ckpts / "step_00000002.pt", state)
    capsys.readouterr()
    finals = []
    for _ in range(2):
        assert run(tiny_args + ["--steps", "4", "--resume"]) == 0
        assert "written on another kind of device" in capsys.readouterr().out
        finals.append(final_state(tmp_path / "run"))
        (ckpts / "step_00000004.pt").unlink()
    assert finals[0]["step"] == 4 and finals[0]["noise_gen"].numel() == torch.Generator().get_state().numel()
    for k, v in finals[0]["G"].items():
        assert torch.equal(v, finals[1]["G"][k]), k


@pytest.mark.parametrize("first,then", [("fp32", "fp16"), ("fp16", "fp32"), ("bf16", "fp16")])
def test_a_resume_may_change_the_precision(tiny_args, tmp_path, first, then):
    """An fp16 run has gradient scalers, the others none: a resume across that line (a bf16 run on an A100
    resumed on a T4, where --amp picks fp16) starts or drops them instead of failing to load them."""
    amp = {"fp32": ["--no-amp"], "bf16": ["--amp-dtype", "bf16"], "fp16": ["--amp-dtype", "fp16"]}
    assert run(tiny_args + ["--steps", "2", *amp[first]]) == 0  # (--no-amp: --amp-dtype is not the run's either)
    assert run(tiny_args + ["--steps", "3", "--resume", *amp[then]]) == 0
    state = final_state(tmp_path / "run")
    assert state["step"] == 3 and bool(state["scaler_g"]) == (then == "fp16")


def test_resume_on_changed_data_says_so(tmp_path, capsys):
    """A checkpoint records the number of images and a digest of their file names and labels: resuming on other
    data says so; the same folder moved elsewhere is the same data."""
    import shutil

    from conftest import TINY, make_folder

    folder = make_folder(tmp_path / "shapes", size=(16, 16))
    out = tmp_path / "run"

    def resume(data, steps):
        assert run(["--data", data, *TINY, "--out", out, "--steps", steps, "--resume"]) == 0
        return capsys.readouterr().out

    assert run(["--data", folder, *TINY, "--out", out, "--steps", 2]) == 0
    assert final_state(out)["data"]["images"] == 24
    capsys.readouterr()
    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)
    assert "data differ" not in resume(moved, 3)
    shutil.copy(moved / "circle" / "circle_000.png", moved / "circle" / "circle_100.png")
    assert "note: the data differ from the checkpoint's (24 -> 25 images)" in resume(moved, 4)
    (moved / "circle" / "circle_100.png").rename(moved / "circle" / "circle_101.png")
    assert "(as many images, but other files or labels)" in resume(moved, 5)
    assert "data differ" not in resume(moved, 6)


def test_the_reference_implementations_commands_run_as_they_are(tmp_path, capsys):
    """The seeds' command lines (the ImageNet/CIFAR ACGAN's, the PyTorch ACGAN's), read as fastacgan's options."""
    from fastacgan.reference_options import translate_reference_args

    seed_004 = ("--outf=/out --niter=500 --batchSize=100 --cuda --dataset=cifar10 --imageSize=32 "
                "--dataroot=/data/cifar10 --gpu=0").split()  # fmt: skip
    cfg = parse_args(seed_004)
    got = (cfg.out, cfg.epochs, cfg.batch_size, cfg.preset, cfg.image_size, cfg.data, cfg.device)
    assert got == ("/out", 500, 100, "cifar10", 32, "/data/cifar10", "cuda:0")
    seed_001 = "--root_dir d --num_workers 2 --batch_size 32 --nz 110 --num_epochs 3 --lr 1e-4 --beta1 0.4 --outdir o"
    cfg = parse_args(seed_001.split())
    got = (cfg.data, cfg.workers, cfg.batch_size, cfg.nz, cfg.epochs, cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.out)
    assert got == ("d", 2, 32, 110, 3, 1e-4, 1e-4, 0.4, "o")
    cfg = parse_args(["--path", "isic/", "--manualSeed", "7", "--dataset", "imagenet", "--no_compile", "--ngpu=1"])
    assert (cfg.data, cfg.seed, cfg.preset, cfg.compile) == ("isic/", 7, "imagenet128", False)
    # fastacgan's own spellings pass through untouched, and nothing is noted for them
    argv = ["--data", "x=1", "--lr-g", "3e-4", "--no-amp", "--classes", "--dataset", "--", "--dataset"]
    assert translate_reference_args(argv) == (argv, [])
    # the ISIC AC-GAN's main.py (its README: `python main.py -h`), '_' spellings too
    seed_000 = ("--path isic/ --n-epochs 3 --batch-size 16 --lr 1e-4 --b1 0.4 --b2 0.99 --n-cpu 4 --latent-dim 600 "
                "--img-size 64 --channels 3 --sample-interval 100 --print-interval 5 --save-model-interval 10 "
                "--load-model True").split()  # fmt: skip
    cfg = parse_args(seed_000)
    names = "data epochs batch_size lr_g lr_d beta1 beta2 workers nz image_size channels sample_every log_every"
    got = tuple(getattr(cfg, k) for k in names.split() + ["ckpt_every_epochs", "resume", "image_metrics"])
    assert got == ("isic/", 3, 16, 1e-4, 1e-4, 0.4, 0.99, 4, 600, 64, 3, 100, 5, 10, True, True)
    notes = []
    cfg = parse_args(["--path", "x", "--n_epochs", "2", "--load_model", "False", "--img_size", "32"], notes)
    assert (cfg.epochs, cfg.resume, cfg.image_size, cfg.image_metrics) == (2, False, 32, False)
    parse_args(["--path", "x", "--sample_interval", "9"], notes)
    assert notes[-1].endswith("--sample_interval as --sample-every (with --image-metrics)")
    assert parse_args(["--path", "x", "--load-model"]).resume
    notes = []
    cfg = parse_args(["--batchSize", "8", "--log_every", "3", "lr_g=3e-4", "--outdir", "a=b"], notes)
    assert (cfg.lr_g, cfg.out) == (3e-4, "a=b") and notes == [
        "options read as fastacgan's: --batchSize as --batch-size, --log_every as --log-every, lr_g= as --lr-g, "
        "--outdir as --out"
    ]


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--netG", "netG_epoch_9.pth"], "--netG .* has no equivalent here: fastacgan resumes its own checkpoints"),
        (["--ndf", "32"], "--ndf .* --width multiplies them"),
        (["--num_classes", "10"], "the classes come from the data"),
        (["--n-classes", "2"], "--n-classes .* the classes come from the data"),
        (["--n_classes", "2"], "--n_classes .* the classes come from the data"),
        (["--eval", "True"], "--eval .* python -m fastacgan.sample --ckpt RUN"),
        (["--load-model", "maybe"], "--load-model maybe: expected True or False"),
        (["--dataset", "cifar10"], "--dataset cifar10: fastacgan downloads nothing; give the images with --data"),
        (["--data", "d", "--dataset", "lsun"], "--dataset lsun: choose the architecture with --preset"),
        (["--ngpu", "4"], "--ngpu 4: several GPUs train with torchrun --nproc_per_node=4"),
        (["--lr"], "--lr: expected a value"),
        (["--batchsize", "8"], "unrecognized arguments: --batchsize"),
        # `--data imgs/*.jpg` unquoted: argparse said "unrecognized arguments: imgs/b.jpg imgs/c.jpg"
        (["--data", "imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg", "--steps", "3"], r"--data takes one path, got 3 "
         r"\(imgs/a\.jpg, imgs/b\.jpg \.\.\.\): a pattern the shell expanded\? give the folder that holds them"),
        (["--csv", "a.csv", "b.csv"], r"--csv takes one path, got 2 \(a\.csv, b\.csv \.\.\.\)"),
        (["--data", "d", "--steps", "3", "stray"], "unrecognized arguments: stray"),
        (["experiment=mnist_ACGAN.yaml"], "experiment=mnist_ACGAN.yaml: fastacgan takes options .* --preset mnist"),
        (["trainer.max_epochs=3"], "trainer.max_epochs=3: fastacgan takes options .*and trainer.max_epochs is not"),
    ],
)  # fmt: skip
def test_reference_options_without_an_equivalent_say_what_to_use(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(args)
    assert e.value.code == 2
    import re

    assert re.search(msg, capsys.readouterr().err)


def test_a_run_notes_the_reference_options_it_read(tiny_args, tmp_path, capsys):
    args = [a.replace("--batch-size", "--batchSize").replace("--out", "--outf") for a in tiny_args]
    assert run(args + ["--niter", "1", "--steps", "2"]) == 0
    log = capsys.readouterr().out
    assert log.startswith("options read as fastacgan's: --batchSize as --batch-size, --outf as --out, --niter as")
    assert (tmp_path / "run" / "checkpoints").is_dir()


def test_a_failure_drawing_the_curves_does_not_stop_training(tiny_args, tmp_path, capsys, monkeypatch):

    def broken(*a):
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "save_curves", broken)
    assert run(tiny_args + ["--steps", "6", "--sample-every", "2"]) == 0
    log = capsys.readouterr().out
    assert log.count("warning: curves.png not drawn (OSError: disk full); training goes on") == 1
    assert final_state(tmp_path / "run")["step"] == 6


def test_checkpoints_every_n_epochs(tiny_args, tmp_path):
    """--ckpt-every-epochs (the ISIC AC-GAN's --save-model-interval): 400 images / batch 16 = 25 steps an epoch."""
    assert run(tiny_args + ["--steps", "60", "--ckpt-every-epochs", "2", "--keep-ckpts", "0"]) == 0
    steps = [ckpt.load_checkpoint(p)["step"] for p in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert steps == [50, 60]  # every 2 epochs, and the last step


def test_image_metrics_with_each_sample_grid(tmp_path, capsys, monkeypatch):
    """--image-metrics (the ISIC AC-GAN's metrics_report.log): with each grid, its images against real.png's, tile
    by tile; 45 digits fill 45 of real.png's 100 tiles (4 or 5 a class), the flat empty ones are left out."""
    from fastacgan.image_metrics import seed000_metrics

    seen = []
    monkeypatch.setattr(outputs, "seed000_metrics", lambda f, r: seen.append((f, r)) or seed000_metrics(f, r))
    out = tmp_path / "run"
    base = ["--data", "builtin:digits:45", "--image-size", "16", "--width", "0.25", "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--out", out, "--sample-every", "3", "--image-metrics"]  # fmt: skip
    assert run([*base, "--steps", "6", "--ckpt-every", "3"]) == 0
    ckpt.list_checkpoints(out / "checkpoints")[-1].unlink()  # resumed from step 3: step 6's record is not repeated
    assert run([*base, "--steps", "9", "--resume"]) == 0
    log = capsys.readouterr().out
    assert "image metrics at step 3 (45 pairs): PSNR " in log and "HaarPSI" in log
    recs = [json.loads(x) for x in (out / "image_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 3, 6, 9] and {r["pairs"] for r in recs} == {45}

    def tiles(png):  # the 100 16x16 tiles of a grid, [100, 1, 16, 16]
        a = torch.from_numpy(np.array(Image.open(png))).float()
        return torch.stack([a[2 + r * 18 : 18 + r * 18, 2 + c * 18 : 18 + c * 18] for r in range(10)
                            for c in range(10)])[:, None]  # fmt: skip

    real, fake = tiles(out / "real.png"), tiles(out / "samples" / "step_00000009.png")
    filled = real.flatten(1).amax(1) > 0
    assert int(filled.sum()) == 45
    got_fake, got_real = seen[-1]  # step 9's: the grid's images in [-1, 1] and real.png's, the filled tiles
    assert torch.equal(got_real, real[filled])
    assert (((got_fake + 1) * 127.5).round() - fake[filled]).abs().max() <= 1  # the PNG holds them rounded
    assert recs[-1] == {"step": 9, "pairs": 45, **seed000_metrics(got_fake, got_real)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_image_metrics_on_cuda(tmp_path):
    """On a GPU the figures are computed there (the grid's images never leave it); the same as on the host."""
    from fastacgan.image_metrics import seed000_metrics

    out = tmp_path / "run"
    args = ["--data", "builtin:digits:200", "--image-size", "16", "--width", "0.25", "--batch-size", "16",
            "--device", "cuda", "--no-compile", "--steps", "2", "--image-metrics", "--out", out]  # fmt: skip
    assert run(args) == 0
    rec = json.loads((out / "image_metrics.jsonl").read_text().splitlines()[-1])
    f, r = torch.rand(4, 3, 32, 32, device="cuda"), torch.rand(4, 3, 32, 32, device="cuda")
    on_gpu, on_cpu = seed000_metrics(f, r), seed000_metrics(f.cpu(), r.cpu())
    assert rec["pairs"] == 100 and all(v == pytest.approx(on_cpu[k], rel=1e-9) for k, v in on_gpu.items())


def test_warnings_of_fastacgan_read_as_its_other_lines(tmp_path):
    """A warning fastacgan gives (an image skipped, a fallback taken) is printed `warning: ...`, as in train.log,
    not in Python's form: the path of the module that warned, "UserWarning:", and the source line of the call
    under it, which read as a crash. Other packages' warnings keep Python's form, which says where they come from."""
    import warnings

    from conftest import make_folder

    from fastacgan import runlog

    data = make_folder(tmp_path / "shapes", n_per_class=6)
    (data / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    args = ["--data", data, *TINY, "--steps", "1", "--workers", "0", "--out", tmp_path / "run"]
    done = subprocess.run([sys.executable, "-m", "fastacgan.train", *map(str, args)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = f"warning: skipped {data / 'circle' / 'broken.png'}: "
    assert any(line.startswith(said) for line in done.stderr.splitlines()), done.stderr
    assert "UserWarning" not in done.stderr and "warnings.warn(" not in done.stderr and "decode_all(" not in done.stderr
    # (PIL's words named the file object it was given: "cannot identify image file <_io.BytesIO object at 0x7f...>")
    pil = "cannot identify image file: not an image, or of a format PIL does not read"
    assert f"{said}cannot decode image ({pil})" in done.stderr
    assert said in (tmp_path / "run" / "train.log").read_text()

    default, shown = warnings.formatwarning, {}

    @runlog.plain_warnings
    def command():
        for who, where in (("ours", runlog.__file__), ("torch's", torch.__file__)):
            shown[who] = warnings.formatwarning(f"{who} words", UserWarning, where, 7, "warnings.warn(...)")
        return 3

    assert command() == 3 and warnings.formatwarning is default
    assert shown["ours"] == "warning: ours words\n"
    assert shown["torch's"] == f"{torch.__file__}:7: UserWarning: torch's words\n  warnings.warn(...)\n"


def test_grey_images_stored_in_colour_make_a_greyscale_model(tmp_path, capsys, monkeypatch):
    """Chest X-rays are greyscale, some saved as RGB JPEGs (R = G = B): the model was RGB wherever one of those was
    probed; now greyscale, said. A run made RGB so before resumes as it was (its checkpoint's channels)."""
    from conftest import TINY

    import fastacgan.run_state as run_state
    from fastacgan.data import open_catalog
    from fastacgan.decode import probe

    rng = np.random.default_rng(0)
    for c in ("NORMAL", "PNEUMONIA"):
        (tmp_path / "xray" / c).mkdir(parents=True)
        for i in range(6):
            grey = Image.fromarray(rng.integers(0, 256, (16, 20), dtype=np.uint8))
            (grey.convert("RGB") if i % 2 else grey).save(tmp_path / "xray" / c / f"{i}.jpeg", quality=90)
    said = []
    assert probe(open_catalog(str(tmp_path / "xray")), log=said.append) == (16, 1)
    assert said == ["note: 6 of the 12 images probed are stored in colour but hold grey alone (R = G = B): the model "
                    "is greyscale, 1 channel (--channels 3 for RGB)"]  # fmt: skip
    tinted = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    Image.fromarray(tinted).save(tmp_path / "xray" / "NORMAL" / "9.png")
    assert probe(open_catalog(str(tmp_path / "xray"))) == (16, 3)  # one in colour: RGB, as before
    (tmp_path / "xray" / "NORMAL" / "9.png").unlink()

    out, args = tmp_path / "run", ["--data", tmp_path / "xray", *TINY, "--batch-size", 4, "--out", tmp_path / "run"]
    real_probe = run_state.probe
    monkeypatch.setattr(run_state, "probe", lambda cat, log, channels=0: (real_probe(cat)[0], 3))  # as made before
    assert run([*args, "--steps", 2]) == 0
    monkeypatch.setattr(run_state, "probe", real_probe)
    assert final_state(out)["spec"]["channels"] == 3
    assert run([*args, "--steps", 3, "--resume"]) == 0
    assert final_state(out)["spec"]["channels"] == 3 and final_state(out)["step"] == 3
    assert "hold grey alone" not in capsys.readouterr().out  # (the resume's channels are its checkpoint's)
    assert run([*args[:-1], tmp_path / "grey", "--steps", 2]) == 0
    assert final_state(tmp_path / "grey")["spec"]["channels"] == 1
    assert "hold grey alone" in capsys.readouterr().out
    sprite = Image.new("RGBA", (20, 16), (0, 0, 0, 0))  # a transparent image: said whatever sets the channels
    sprite.paste((200, 200, 200, 255), (5, 5, 15, 12))
    sprite.save(tmp_path / "xray" / "NORMAL" / "clear.png")
    assert run([*args[:-1], tmp_path / "given", "--steps", 1, "--channels", 3]) == 0
    said = capsys.readouterr().out
    assert "images probed have transparent pixels" in said and "hold grey alone" not in said
