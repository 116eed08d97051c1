"""The race on a CPU, at the presets' real sizes: a training step of the plain eager reference (fp32) against
fastacgan's (fp32, and bf16 autocast where the CPU has native bf16), as `python -m fastacgan.train` runs it on a
machine without a GPU. Prints a Markdown table: the median step time of each, and its speed-up over the reference.

    python benchmarks/cpu_race.py                          # digits 64, cifar10 64, isic64 16 (the presets' batches)
    python benchmarks/cpu_race.py --runs cifar10:256 --steps 5

The pytest race (`pytest benchmarks/ --benchmark-only`) runs on a CPU at a quarter width and batch 16, so that the
suite stays short; this script is the CPU's full-size figure. Each implementation runs in a process of its own, as
each is run (a process's malloc and memory are its own), in turns, `--rounds` times, and keeps the least of its
round medians (the machine's noise only ever adds time). fastacgan's processes keep freed memory in glibc's
heap, as `python -m fastacgan.train` does on a CPU (fastacgan/heap.py); the reference's leave malloc as it is, as
a plain PyTorch script does. `--malloc-cache both` gives the reference the same setting (how much of a speed-up
is the allocator's), `none` takes it from fastacgan.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import ReferenceACGAN  # noqa: E402

from fastacgan.config import PRESETS, TrainConfig, resolve_spec  # noqa: E402
from fastacgan.devices import cpu_has_bf16  # noqa: E402
from fastacgan.heap import keep_freed_memory  # noqa: E402
from fastacgan.loaders import to_model_input  # noqa: E402
from fastacgan.step import ACGANStep  # noqa: E402

CHANNELS = {"digits": 1, "mnist": 1}  # the others: RGB


def parse_run(text: str) -> tuple[str, int]:
    preset, _, batch = text.partition(":")
    if preset not in PRESETS or not batch.isdigit() or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: entries are PRESET:BATCH, a preset of {', '.join(PRESETS)} and "
                                         f"a batch size >= 1 (e.g. cifar10:64)")  # fmt: skip
    return preset, int(batch)


def median_ms(call, steps: int) -> float:
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1000


IMPLEMENTATIONS = ("reference (eager fp32)", "fastacgan fp32", "fastacgan bf16")


def time_step(name: str, preset: str, batch: int, steps: int) -> float:
    """The median time (ms) of `steps` training steps of one implementation, after 2 to warm up."""
    spec = resolve_spec(TrainConfig(), preset, CHANNELS.get(preset, 3), 10)
    cpu, s = torch.device("cpu"), spec.image_size
    torch.manual_seed(0)
    x = torch.randint(0, 256, (batch, s, s, spec.channels), dtype=torch.uint8)
    y = torch.randint(0, 10, (batch,))
    if name == IMPLEMENTATIONS[0]:
        ref = ReferenceACGAN(spec, cpu)
        call = lambda: ref.step(to_model_input(x, False), y)  # noqa: E731
    else:
        call = ACGANStep(spec, cpu, amp_dtype=torch.bfloat16 if name.endswith("bf16") else None)
        call = functools.partial(call, x, y)
    call()  # warm-up: oneDNN's primitives, the optimizers' state
    call()
    return median_ms(call, steps)


def race(preset: str, batch: int, steps: int, rounds: int, bf16: bool, malloc: str, said: set[str]):
    """-> [(implementation, its best round median in ms)], each round of each in a new process; `said` gets what
    the processes that set the malloc cache reported."""
    names = IMPLEMENTATIONS if bf16 else IMPLEMENTATIONS[:2]
    best = {name: float("inf") for name in names}
    for _ in range(rounds):
        for i, name in enumerate(names):
            cache = malloc == "both" or (malloc == "fastacgan" and i > 0)
            cmd = [sys.executable, __file__, "--child", str(i), "--runs", f"{preset}:{batch}", "--steps", str(steps),
                   "--malloc-cache", "both" if cache else "none"]  # fmt: skip
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"{name}, {preset}:{batch}: the timing process failed:\n{run.stderr}")
            state, ms = run.stdout.strip().rsplit("\n", 1)
            if cache:
                said.add(state)
            best[name] = min(best[name], float(ms))
    return list(best.items())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", type=parse_run, default=[("digits", 64), ("cifar10", 64), ("isic64", 16)],
                   metavar="PRESET:BATCH", help="presets and batch sizes (default: digits:64 cifar10:64 isic64:16)")  # fmt: skip  # noqa: E501
    p.add_argument("--steps", type=int, default=8, help="timed steps per round (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="turns of every implementation (default 2)")
    p.add_argument("--malloc-cache", choices=("fastacgan", "both", "none"), default="fastacgan",
                   help="whose processes keep freed memory in glibc's heap (default: fastacgan's)")  # fmt: skip
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one implementation's timing, in its own process
    a = p.parse_args(argv)
    if a.steps < 1 or a.rounds < 1:
        p.error("--steps and --rounds must be >= 1")
    if a.child is not None:
        malloc = keep_freed_memory() if a.malloc_cache != "none" else "off"
        print(malloc, time_step(IMPLEMENTATIONS[a.child], *a.runs[0], a.steps), sep="\n")
        return
    bf16 = cpu_has_bf16()
    whose = {"fastacgan": "fastacgan's processes", "both": "every process", "none": "no process"}[a.malloc_cache]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {'yes' if bf16 else 'no'}, "
          f"malloc cache: {whose}\n")  # fmt: skip
    print("| preset | batch | implementation | step (median) | images/s | vs the reference |")
    print("| --- | --- | --- | --- | --- | --- |")
    said = set()  # what keep_freed_memory() said in the processes that asked for it
    for preset, batch in a.runs:
        results = race(preset, batch, a.steps, a.rounds, bf16, a.malloc_cache, said)
        ref_ms = results[0][1]
        for name, ms in results:
            print(f"| {preset} | {batch} | {name} | {ms:.1f} ms | {batch / ms * 1000:,.0f} | {ref_ms / ms:.2f}x |",
                  flush=True)  # fmt: skip
    if said - {"on"}:
        print(f"\nnote: the malloc cache was not set: {', '.join(sorted(said - {'on'}))}")


if __name__ == "__main__":
    main()
