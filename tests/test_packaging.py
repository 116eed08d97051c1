"""The package imports the same way installed, editable, or straight from a source checkout."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
if {forget}:  # forget any installed or editable fastacgan: only the checkout at sys.path[0] may be found
    sys.meta_path = [f for f in sys.meta_path if "editable" not in str(getattr(f, "__module__", ""))]
sys.path.insert(0, {root!r})
import fastacgan.kernels
from fastacgan.kernels.spectral_norm import spectral_norm
from fastacgan.models import Discriminator  # imports .kernels relative to the package
print(fastacgan.__file__)
print(fastacgan.kernels.__file__)
"""


@pytest.mark.parametrize("forget_installed", [True, False])
def test_source_checkout_finds_its_own_kernels(tmp_path, forget_installed):
    """Without any install; and with whatever is installed (an editable install of another checkout would
    otherwise hand this checkout's fastacgan another checkout's kernels)."""
    probe = _PROBE.format(root=str(ROOT), forget=forget_installed)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    pkg, kern = out.stdout.split()[-2:]
    assert Path(pkg) == ROOT / "fastacgan" / "__init__.py"
    assert Path(kern) == ROOT / "kernels" / "__init__.py"


def test_every_tool_has_a_console_script_that_resolves():
    """setup.py's console scripts: each names a module's main (a function taking argv), and every tool that runs
    as `python -m fastacgan.X` has one."""
    import importlib
    import re

    scripts = dict(re.findall(r'"(fastacgan-[a-z]+)=([a-z.]+:main)"', (ROOT / "setup.py").read_text()))
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target
    tools = {"train", "sample", "evaluate", "plots", "export"}
    assert {f"fastacgan-{t}": f"fastacgan.{t}:main" for t in tools}.items() <= scripts.items()


def test_python_m_fastacgan_names_the_commands_and_runs_them(tmp_path, capsys):
    """`python -m fastacgan` said only "'fastacgan' is a package and cannot be directly executed". It lists the
    commands, runs one given by name (`python -m fastacgan train --amp`, `fastacgan train` once installed), and says
    where options without a command go."""
    import re

    from fastacgan.__main__ import COMMANDS, main

    assert set(COMMANDS) == {"train", "sample", "evaluate", "plots", "export"}
    assert '"fastacgan=fastacgan.__main__:main"' in (ROOT / "setup.py").read_text()
    assert main([]) == 2
    listed = capsys.readouterr().err
    assert listed.startswith("usage: python -m fastacgan COMMAND [options]")
    assert re.findall(r"^  (\w+) ", listed, re.M) == list(COMMANDS)
    assert main(["--amp"]) == 2
    assert capsys.readouterr().err.endswith("error: options follow a command: python -m fastacgan train --amp\n")
    assert main(["trian"]) == 2 and capsys.readouterr().err.endswith("error: 'trian' is not a command\n")
    assert main(["plots", str(tmp_path / "nowhere")]) == 2  # plots' own main ran, and refused the folder
    assert "nowhere: no such file or folder (give a run folder" in capsys.readouterr().err
    out = subprocess.run([sys.executable, "-m", "fastacgan", "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m fastacgan COMMAND"), out.stderr


_NO_TRITON = """
import sys

class NoTriton:  # as on macOS, Windows or an ARM Linux, where setup.py does not ask for Triton
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "triton":
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NoTriton())
"""


def test_without_triton_the_kernels_import_and_a_run_trains(tmp_path):
    """Triton is a dependency only on x86-64 Linux: elsewhere `fastacgan.kernels` must import, its ops run their
    references, and a training run, a sample and an evaluation go as on any CPU."""
    (tmp_path / "sitecustomize.py").write_text(_NO_TRITON)
    probe = """
import sys, torch
from fastacgan.kernels import acgan_loss, acgan_loss_reference, spectral_norm, triton_supports
s, c, y = torch.randn(6), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
assert torch.equal(acgan_loss(s, c, 1.0, y)[0], acgan_loss_reference(s, c, 1.0, y)[0])
layer = spectral_norm(torch.nn.Linear(5, 3))
layer(torch.randn(2, 5)).sum().backward()
from fastacgan.train import main
assert main(["--data", "builtin:digits:200", "--image-size", "16", "--width", "0.25", "--batch-size", "16",
             "--steps", "2", "--device", "cpu", "--out", "run"]) == 0
from fastacgan.sample import main as sample
assert sample(["run", "--out", "grid.png"]) == 0
print("triton imported:", "triton" in sys.modules, "supported:", triton_supports(torch.device("cpu")))
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "triton imported: False supported: False" in out.stdout
    assert (tmp_path / "run" / "checkpoints").is_dir() and (tmp_path / "grid.png").is_file()


def test_fused_entry_points_name_the_device_they_need(tmp_path):
    """The fused ops' own entry points, called on CPU tensors without the interpreter (a user's script that takes
    acgan_loss_fused for acgan_loss): an error that names the op, the device and what to call instead, not
    Triton's "0 active drivers ([]). There should only be one."."""
    probe = """
import torch
from fastacgan.kernels import spectral_norm_sigma_fused, spectral_normalize_fused
from fastacgan.kernels.acgan_loss import acgan_loss_fused
calls = {
    "acgan_loss": lambda: acgan_loss_fused(torch.randn(3), torch.randn(3, 2), 1.0, torch.zeros(3, dtype=torch.long)),
    "spectral_normalize": lambda: spectral_normalize_fused([torch.randn(3, 2)], [torch.ones(3)], [torch.ones(2)],
                                                           [0], 1, 1e-12),
    "spectral_norm_sigma": lambda: spectral_norm_sigma_fused([torch.randn(3, 2)], [torch.ones(3)], [torch.ones(2)],
                                                             [0], 1, 1e-12),
}
for public, call in calls.items():
    try:
        call()
        print(public, "ran")
    except ValueError as e:
        print(public, "->", e)
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    if "needs triton" in out.stderr:
        pytest.skip("no triton")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out.stdout
    for public, line in zip(("acgan_loss", "spectral_normalize", "spectral_norm_sigma"), lines):
        assert line.startswith(f"{public} -> {public}_fused runs Triton kernels on CUDA tensors, got tensors on cpu"), (
            line
        )
        assert f"{public} runs its PyTorch reference there" in line


_LIFTED = """
import sys
sys.modules["fastacgan"] = None  # the rest of fastacgan is not there: any import of it fails
import torch
from torch import nn
import liftedkernels as k

torch.manual_seed(0)
src, cls, labels = torch.randn(5, requires_grad=True), torch.randn(5, 4, requires_grad=True), torch.arange(5) % 4
loss, stats = k.acgan_loss(src, cls, 0.9, labels, 1.0)
want = (torch.nn.functional.binary_cross_entropy_with_logits(src, torch.full((5,), 0.9))
        + torch.nn.functional.cross_entropy(cls, labels))
assert torch.allclose(loss, want), (loss, want)
loss.backward()
d = nn.Sequential(k.spectral_norm(nn.Conv2d(3, 4, 3)), nn.Flatten(), k.spectral_norm(nn.Linear(4 * 4 * 4, 1)))
group = k.SpectralNormGroup(d)
group.update(True)
d(torch.randn(2, 3, 6, 6)).sum().backward()
assert len(group) == 2 and d[0].parametrizations.weight.original.grad is not None
print("lifted ok")
"""


def test_the_kernels_folder_lifts_into_another_project(tmp_path):
    """DESIGN.md: kernels/ imports only torch and triton, never the rest of fastacgan, so that it can be copied into
    another project under another name: it imports and its ops run there (on the CPU: the references)."""
    import shutil

    shutil.copytree(ROOT / "kernels", tmp_path / "liftedkernels", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _LIFTED], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "lifted ok", out.stderr[-3000:]


def test_source_files_keep_to_the_design_length():
    """DESIGN.md: files of at most 400 lines, named for what they hold (decode.py had grown to 403 unnoticed)."""
    files = [p for folder in ("fastacgan", "kernels") for p in sorted((ROOT / folder).glob("*.py"))]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"over 400 lines: {long}"


def test_the_readmes_tables_keep_each_row_on_one_line():
    """A Markdown table's row ends at its line: the data forms' first row had run on over three lines, which broke
    the table where it is shown (its next lines a row of one cell each)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    for k, line in enumerate(lines[1:], start=1):
        if lines[k - 1].startswith("|") and line.strip() and not line.startswith(("|", "#", "```")):
            raise AssertionError(f"README.md line {k + 1} continues the table row above it: {line[:60]!r}")
        if line.startswith("|") and lines[k - 1].startswith("|"):
            cells = len(re.sub(r"`[^`]*`|\\\|", "", line).strip().strip("|").split("|"))
            header = next(lines[j] for j in range(k, -1, -1) if j == 0 or not lines[j - 1].startswith("|"))
            assert cells == len(header.strip().strip("|").split("|")), f"README.md line {k + 1}: {cells} cells"
