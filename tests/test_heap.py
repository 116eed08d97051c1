"""--malloc-cache: glibc's malloc keeps freed tensor memory for the next step (fastacgan/heap.py)."""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from fastacgan.config import parse_args
from fastacgan.heap import _why_not, is_set, keep_freed_memory
from fastacgan.train import Trainer

GLIBC = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc"
)
TINY = ["--data", "builtin:digits:320", "--image-size", "16", "--width", "0.25", "--batch-size", "32",
        "--workers", "0", "--log-every", "5", "--seed", "1", "--device", "cpu", "--steps", "10"]  # fmt: skip

# page faults while a 64 MiB tensor is made, written and freed 10 times, after 10 rounds to warm up (the heap
# settles in the first 6 or so)
FAULTS = textwrap.dedent("""
    import resource, sys, torch
    from fastacgan.heap import keep_freed_memory
    print(keep_freed_memory() if sys.argv[1] == "on" else "untouched")
    def rounds(n):
        for _ in range(n):
            torch.empty(16 << 20, dtype=torch.float32).fill_(1.0)
    rounds(10)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rounds(10)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def child(code: str, *args: str, env: dict | None = None) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {})})  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\n")


@GLIBC
def test_keep_freed_memory_stops_the_page_faults_of_a_tensor_made_again_and_again():
    """Without it every round maps the 64 MiB anew (16,384 pages of 4 KiB, faulted in as they are written);
    with it the rounds reuse the heap's memory and fault almost nothing."""
    said, faults = child(FAULTS, "off")[:2]
    assert said == "untouched" and int(faults) > 10 * 16384 // 2
    said, faults = child(FAULTS, "on")[:2]
    assert said == "on" and int(faults) < 10 * 16384 // 50


@GLIBC
def test_a_tuned_or_preloaded_malloc_is_left_as_it_is():
    assert _why_not({}) is None
    assert _why_not({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}) == "jemalloc is preloaded"
    assert _why_not({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}) == "tcmalloc is preloaded"
    assert _why_not({"MALLOC_TRIM_THRESHOLD_": "0"}) == "MALLOC_TRIM_THRESHOLD_ is set"
    assert _why_not({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}) == "GLIBC_TUNABLES is set"
    assert _why_not({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}) is None  # not malloc's
    # and the process's own setting stands: with MALLOC_MMAP_THRESHOLD_ set, nothing is changed, faults stay
    said, faults = child(FAULTS, "on", env={"MALLOC_MMAP_THRESHOLD_": "131072"})[:2]
    assert said == "off (MALLOC_MMAP_THRESHOLD_ is set)" and int(faults) > 10 * 16384 // 2


def test_the_trainer_sets_it_on_a_cpu_and_says_so(tmp_path):
    first = keep_freed_memory()  # (a process-wide setting: once on, a later --no-malloc-cache cannot undo it)
    for flag, said in (([], first), (["--no-malloc-cache"], "on (set earlier in this process)" if is_set() else "off")):
        lines = []
        Trainer(parse_args(TINY + flag + ["--out", str(tmp_path / said[:3])]), log=lines.append)
        assert f", malloc cache {said}; " in [line for line in lines if line.startswith("speed")][0]


@GLIBC
def test_it_changes_no_result(tmp_path):
    """The same run with and without it, each in a process of its own: the same metrics and weights, bit for bit."""
    results = []
    for flag in ("--malloc-cache", "--no-malloc-cache"):
        out = tmp_path / flag
        run = subprocess.run([sys.executable, "-m", "fastacgan.train", *TINY, flag, "--out", str(out)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert f"malloc cache {'on' if flag == '--malloc-cache' else 'off'}" in run.stdout
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        for r in records:
            r.pop("images_per_s"), r.pop("elapsed_s")
        state = torch.load(sorted((out / "checkpoints").glob("*.pt"))[-1], weights_only=False)
        results.append((records, state["G"], state["D"]))
    (rec_a, g_a, d_a), (rec_b, g_b, d_b) = results
    assert len(rec_a) == 2 and rec_a == rec_b
    for a, b in ((g_a, g_b), (d_a, d_b)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_byte_size_writes_amounts_as_the_messages_give_them():
    """One way of writing an amount of memory in every message (the loader's budget, /dev/shm's room, an
    allocation that failed): binary units, as free -h, Docker's --shm-size and PyTorch's allocator count."""
    from fastacgan.heap import byte_size

    assert [byte_size(n) for n in (0, 1023, 1024, 18 * 1024, 2**20, 216 * 2**20, 2**30, 1.5 * 2**30, 3 * 2**40)] == [
        "0 bytes", "1023 bytes", "1 KiB", "18 KiB", "1 MiB", "216 MiB", "1.00 GiB", "1.50 GiB", "3.0 TiB"]  # fmt: skip
