"""Shared benchmark machinery: device choice, sizes, and a throughput table printed after pytest-benchmark's.

Each benchmark times one callable that synchronises the device before it returns (pytest-benchmark reads the
host clock). On a GPU the suites run at full size; on a CPU at small sizes, the Triton kernels under the
interpreter, so the suite still runs (and must pass) everywhere.
"""

import os
import time
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import importlib.util  # noqa: E402

import pytest  # noqa: E402

if os.environ.get("TRITON_INTERPRET") == "1":  # Triton 3.6's interpreter beside numpy 2.4: tests/triton_compat.py
    _compat = Path(__file__).resolve().parents[1] / "tests" / "triton_compat.py"
    _spec = importlib.util.spec_from_file_location("triton_compat", _compat)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.fix_interpreter_index()

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# the CIFAR-10 JPEG archives: ../shared/data beside the checkout, or $FASTACGAN_DATA (a GPU machine gets a copy)
CIFAR = (
    Path(os.environ.get("FASTACGAN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") / "cifar10-jpeg"
)

FULL = DEVICE.type == "cuda"
_ROWS: list[tuple[str, str, str, dict]] = []


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# How the kernel benchmarks launch their work. "eager": one call per round from Python, as an eager training
# loop runs it (the host's dispatch and launch costs included: small ops are host-bound). "graph" (CUDA only):
# GRAPH_REPS calls captured in one CUDA graph and replayed, the device time of each call, which is what a step
# compiled with CUDA graphs (the trainer's fast path) pays.
LAUNCHES = ["eager", "graph"] if FULL else ["eager"]
GRAPH_REPS = 20


def launched(body, launch: str):
    """(a callable for run_bench that runs body and synchronises, calls of body per run). body must not
    synchronise; for "graph" it must be capturable (no host sync; fixed shapes)."""
    if launch == "eager":

        def run():
            out = body()
            sync()
            return out

        return run, 1
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream: compilation, autotuning, lazy allocations
        for _ in range(3):
            body()
    side.synchronize()
    graph = torch.cuda.CUDAGraph()
    # captured on the warm-up's stream: autograd's gradient-accumulation nodes made in the warm-up (a leaf keeps
    # its node) then run on the capturing stream, not beside it
    with torch.cuda.graph(graph, stream=side):
        for _ in range(GRAPH_REPS):
            out = body()

    def replay():
        graph.replay()
        sync()
        return out

    return replay, GRAPH_REPS


@pytest.fixture
def run_bench(benchmark):
    """run_bench(fn, work=N, unit="images/s") times fn (which must synchronise) and records N / median."""

    def go(fn, work: float, unit: str, rounds: int | None = None):
        fn()  # warm-up: compilation, autotuning, allocator
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
        # on a GPU: 50 rounds, fewer for slow work (about 5 s of it, at least 5 rounds), so that the whole suite
        # fits the time a rented GPU gives; on a CPU 3 (the suite checks that everything runs)
        rounds = rounds or (max(5, min(50, int(5.0 / max(once, 1e-9)))) if FULL else 3)
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
        if benchmark.stats is None:  # --benchmark-disable: each benchmark runs once as a test, nothing is timed
            return result
        median = benchmark.stats.stats.median
        rate = work / median
        benchmark.extra_info[unit] = rate
        _ROWS.append((benchmark.group or "", benchmark.name, f"{median * 1e6:10.1f} us  {rate:12,.4g} {unit}",
                      benchmark.extra_info))  # fmt: skip
        return result

    return go


# A wall-clock deadline (seconds since the epoch) after which the benchmarks not yet started are skipped, so that a
# suite cut short by a rented machine's time still ends normally and writes --benchmark-json (a suite killed
# mid-benchmark writes nothing). benchmarks/gpu_session.sh sets it a little before each stage's time limit.
DEADLINE = float(os.environ.get("FASTACGAN_BENCH_DEADLINE") or "inf")


def pytest_runtest_setup(item):
    if time.time() > DEADLINE:
        pytest.skip("FASTACGAN_BENCH_DEADLINE has passed: not started, so that the results so far are saved")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A benchmark that does not fit the GPU's memory (the batch-1024 128x128 steps, the fp32 reference's above all,
    on a GPU of less than 40 GB) is skipped with what it needed, not failed: the rest of the suite runs and its JSON
    is written. The memory it held goes back to the GPU for the next one."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        total = f" of {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB" if FULL else ""
        said = ". ".join(str(call.excinfo.value).split(". ")[:2])  # "CUDA out of memory. Tried to allocate 2.00 GiB"
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), item.location[1], f"Skipped: out of the GPU's memory{total} ({said})")


def pytest_terminal_summary(terminalreporter):
    if _ROWS:
        terminalreporter.section(f"throughput ({DEVICE}, median)")
        for group, name, text, extra in sorted(_ROWS, key=lambda r: r[:3]):
            more = "  ".join(f"{k} {v:.3g}" for k, v in extra.items() if isinstance(v, float) and "/s" not in k)
            terminalreporter.write_line(f"{group:<28} {name:<60} {text}  {more}")
