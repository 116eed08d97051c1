"""fastacgan.export: a run's generator as a torch.export program, loaded and run without fastacgan."""

import io
import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY

from fastacgan import checkpoint as ckpt
from fastacgan.config import PRESETS, TrainConfig, resolve_spec
from fastacgan.export import META, export_generator
from fastacgan.export import main as export_main
from fastacgan.models import Generator, ModelSpec
from fastacgan.train import main as train_main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    args = ["--data", "builtin:digits:200", *TINY, "--steps", "3", "--g-ema", "0.9", "--out", str(out)]
    assert train_main(args) == 0
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_presets_generator_exports_for_any_batch(preset):
    """The program computes G's images (every architecture and conditioning), for batch sizes other than the one
    it was traced with, 1 included; META holds what it was given."""
    torch.manual_seed(0)
    g = Generator(resolve_spec(TrainConfig(width=0.25), preset, 3, 7)).eval()
    with torch.no_grad():  # BatchNorm's running statistics made non-trivial, so eval mode shows
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
    extra = {META: ""}
    program = torch.export.load(io.BytesIO(export_generator(g, {"classes": list("abcdefg")})), extra_files=extra)
    assert json.loads(extra[META]) == {"classes": list("abcdefg")}
    for b in (1, 5):
        z, labels = torch.randn(b, g.spec.nz), torch.randint(0, 7, (b,))
        with torch.no_grad():
            torch.testing.assert_close(program.module()(z, labels), g(z, labels), atol=1e-6, rtol=1e-5)


def test_the_file_runs_without_fastacgan(run_dir, tmp_path, capsys):
    """The CLI's file, loaded in a process where fastacgan cannot be imported, gives the images of the run's moving
    average (by default) or of G (--no-ema)."""
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(run_dir / "checkpoints")[-1])
    z, labels = torch.randn(6, state["spec"]["nz"]), torch.arange(6)
    torch.save({"z": z, "labels": labels}, tmp_path / "inputs.pt")
    script = (
        "import sys, json, torch\n"
        "sys.modules['fastacgan'] = None\n"  # any import of it fails
        "extra = {'fastacgan.json': ''}\n"
        "g = torch.export.load(sys.argv[1], extra_files=extra).module()\n"
        "x = torch.load(sys.argv[2])\n"
        "torch.save({'images': g(x['z'], x['labels']), 'meta': json.loads(extra['fastacgan.json'])}, sys.argv[3])\n"
    )
    for which, extra_args in (("G_ema", []), ("G", ["--no-ema"])):
        out = tmp_path / f"{which}.pt2"
        assert export_main([str(run_dir), "--out", str(out), *extra_args]) == 0
        said = capsys.readouterr().out
        assert said.startswith(f"wrote {out} (") and "10 classes, noise of 64, 1x16x16 images" in said
        done = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "inputs.pt"),
                               str(tmp_path / "got.pt")], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        got = torch.load(tmp_path / "got.pt")
        g = Generator(ModelSpec(**state["spec"])).eval()
        g.load_state_dict(state[which])
        with torch.no_grad():
            torch.testing.assert_close(got["images"], g(z, labels), atol=1e-6, rtol=1e-5)
        assert got["meta"]["classes"] == [str(i) for i in range(10)] and got["meta"]["generator"] == which
        assert (got["meta"]["nz"], got["meta"]["image_size"], got["meta"]["channels"]) == (64, 16, 1)
        assert got["meta"]["step"] == 3


def test_bad_arguments_are_refused_by_name(run_dir, tmp_path, capsys):
    assert export_main([str(run_dir), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --out {str(tmp_path)!r}: give a file name (generator.pt2)\n"
    assert export_main([str(tmp_path / "none")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert export_main([str(run_dir), "--out", "/proc/no/g.pt2"]) == 2
    assert capsys.readouterr().err.startswith("error: --out /proc/no/g.pt2: cannot write it")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_program_exported_on_a_gpu_runs_there(run_dir, tmp_path):
    out = tmp_path / "g.pt2"
    assert export_main([str(run_dir), "--out", str(out), "--device", "cuda"]) == 0
    g = torch.export.load(out).module()
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(run_dir / "checkpoints")[-1])
    want = Generator(ModelSpec(**state["spec"])).eval().cuda()
    want.load_state_dict(state["G_ema"])
    z, labels = torch.randn(9, state["spec"]["nz"], device="cuda"), torch.arange(9, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(g(z, labels), want(z, labels), atol=1e-3, rtol=0)  # (TF32 convolutions)


def test_a_program_that_differs_from_g_is_not_written(run_dir, tmp_path, capsys, monkeypatch):
    """The check before writing can fail: a program whose images are off by 0.01 is refused, nothing written."""
    real_export = torch.export.export

    class Off:
        def __init__(self, program):
            self.program = program

        def module(self):
            return lambda z, labels: self.program.module()(z, labels) + 0.01

    monkeypatch.setattr(torch.export, "export", lambda *a, **k: Off(real_export(*a, **k)))
    with pytest.raises(RuntimeError, match=r"the exported generator differs from G \(by up to 0.01"):
        export_main([str(run_dir), "--out", str(tmp_path / "g.pt2")])
    assert not (tmp_path / "g.pt2").exists()
