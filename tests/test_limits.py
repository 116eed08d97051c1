"""A container's or job's CPU limit (cgroup v1 and v2): read, and kept to by torch's threads and the workers."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

import fastacgan.limits as limits
from fastacgan.limits import cpu_limit, cpus_within_limit, fit_threads
from fastacgan.workers import default_workers


def cgroup_tree(tmp_path, proc_line: str, files: dict) -> tuple[Path, Path]:
    """A /proc/self/cgroup holding proc_line and a /sys/fs/cgroup with files {relative path: text}."""
    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(proc_line + "\n")
    for rel, text in files.items():
        (cg / rel).parent.mkdir(parents=True, exist_ok=True)
        (cg / rel).write_text(text + "\n")
    return proc, cg


def test_the_cpu_limit_of_a_cgroup_or_an_ancestor(tmp_path):
    # v2: no limit on the step, 1.5 CPUs on its job (Kubernetes' 1500m, Slurm's cgroup), 4 further up
    proc, cg = cgroup_tree(tmp_path / "a", "0::/job_7/step_0", {"job_7/step_0/cpu.max": "max 100000",
                                                                "job_7/cpu.max": "150000 100000",
                                                                "cpu.max": "400000 100000"})  # fmt: skip
    assert cpu_limit(proc, cg) == 1.5
    # v1, Docker's --cpus 2: the container's own mount, where the path /proc names does not exist: its root's
    proc, cg = cgroup_tree(tmp_path / "b", "4:cpu,cpuacct:/docker/abc", {"cpu/cpu.cfs_quota_us": "200000",
                                                                        "cpu/cpu.cfs_period_us": "100000"})  # fmt: skip
    assert cpu_limit(proc, cg) == 2.0
    # no limit anywhere (v1's -1, v2's max), an unreadable tree, no /proc (macOS)
    proc, cg = cgroup_tree(tmp_path / "c", "1:cpu:/\n0::/x", {"cpu/cpu.cfs_quota_us": "-1",
                                                             "cpu/cpu.cfs_period_us": "100000",
                                                             "x/cpu.max": "max 100000"})  # fmt: skip
    assert cpu_limit(proc, cg) is None
    proc, cg = cgroup_tree(tmp_path / "d", "0::/", {"cpu.max": "garbage"})
    assert cpu_limit(proc, cg) is None
    assert cpu_limit(tmp_path / "none", cg) is None


def test_workers_and_threads_keep_to_the_limit(monkeypatch):
    """--workers -1 and torch's threads: at most the limit, rounded up (1.5 CPUs: 2); not where OMP_NUM_THREADS
    chose the threads; untouched without a limit."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(limits, "cpu_limit", lambda: 1.5)
    assert cpus_within_limit(32) == 2 and cpus_within_limit(1) == 1 and default_workers(-1) == 2
    monkeypatch.setattr(limits, "cpu_limit", lambda: 0.25)
    assert default_workers(-1) == 1 and default_workers(6) == 6  # (a number given is kept)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        said = []
        fit_threads(said.append)
        assert torch.get_num_threads() == 1
        assert said == ["note: this process may use 0.25 CPU(s) (its cgroup's CPU limit: a container's --cpus), fewer "
                        "than torch's 3 threads, which would wait on each other: set to 1 (OMP_NUM_THREADS sets "
                        "them)"]  # fmt: skip
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        fit_threads(said.append)
        assert torch.get_num_threads() == 3 and len(said) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(limits, "cpu_limit", lambda: None)
        fit_threads(said.append)
        assert torch.get_num_threads() == 3 and len(said) == 1
        assert default_workers(-1) == 8
    finally:
        torch.set_num_threads(before)


def _new_cpu_cgroup(quota_us: int) -> Path:
    """A real cgroup with a CPU quota (v2 where /sys/fs/cgroup is unified, else v1's cpu hierarchy); skip where
    one cannot be made (no permission, a read-only /sys/fs/cgroup)."""
    root = Path("/sys/fs/cgroup")
    v2 = (root / "cgroup.controllers").exists()
    folder = (root if v2 else root / "cpu") / f"fastacgan-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir()
    except OSError as e:
        pytest.skip(f"cannot make a cgroup here ({e})")
    try:
        if v2:  # (cpu.max exists where the parent hands the cpu controller down)
            (folder / "cpu.max").write_text(f"{quota_us} 100000")
        else:
            (folder / "cpu.cfs_period_us").write_text("100000")
            (folder / "cpu.cfs_quota_us").write_text(str(quota_us))
    except OSError as e:
        folder.rmdir()
        pytest.skip(f"cannot give a cgroup a CPU quota here ({e})")
    return folder


def test_a_run_in_a_cgroup_with_a_cpu_limit_keeps_to_it(tmp_path):
    """The real thing: a process in a cgroup of 1 CPU (cpu.max / cpu.cfs_quota_us) reads its limit, and a training
    run sets torch's threads to it and says so. (Measured on a 2-core machine in such a cgroup: the default digits
    run 485 -> 570 images/s, CIFAR-10 102 -> 138, with 1 thread instead of torch's 2.)"""
    folder = _new_cpu_cgroup(100000)
    probe = (
        "import sys, torch\n"
        "from fastacgan.limits import cpu_limit\n"
        "from fastacgan.train import main\n"
        "print('limit', cpu_limit(), 'threads', torch.get_num_threads())\n"
        f"sys.exit(main(['--data', 'builtin:digits:200', '--image-size', '16', '--width', '0.25', '--steps', '2',\n"
        f"               '--device', 'cpu', '--workers', '0', '--out', {str(tmp_path / 'run')!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        out = subprocess.run(["sh", "-c", f'echo $$ > {folder}/cgroup.procs || exit 77; exec "$0" -c "$1"',
                              sys.executable, probe], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    finally:
        folder.rmdir()  # (empty again: the process has ended)
    if out.returncode == 77:
        pytest.skip(f"cannot move a process into a cgroup here ({out.stderr.strip()})")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "limit 1.0 threads " in out.stdout
    if "threads 1\n" not in out.stdout:  # (torch started more than one thread: a machine of 2 cores or more)
        assert "note: this process may use 1 CPU(s) (its cgroup's CPU limit" in out.stdout
        assert "set to 1 (OMP_NUM_THREADS sets them)" in out.stdout
