"""The package imports the same way installed, editable, or straight from a source checkout."""

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
    tools = {"train", "sample", "evaluate", "plots"}
    assert {f"fastacgan-{t}": f"fastacgan.{t}:main" for t in tools}.items() <= scripts.items()
