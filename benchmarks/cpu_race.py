"""The race on a CPU, at the presets' real sizes: a training step of the plain eager reference (fp32) against
fastacgan's (fp32, and bf16 autocast where the CPU has native bf16), as `python -m fastacgan.train` runs it on a
machine without a GPU. Prints a Markdown table: the median step time of each, and its speed-up over the reference.

    python benchmarks/cpu_race.py                          # digits 64, cifar10 64, isic64 16 (the presets' batches)
    python benchmarks/cpu_race.py --runs cifar10:256 --steps 5

The pytest race (`pytest benchmarks/ --benchmark-only`) runs on a CPU at a quarter width and batch 16, so that the
suite stays short; this script is the CPU's full-size figure. Implementations run in turns, `--rounds` times,
and each keeps the least of its round medians (the machine's noise only ever adds time). glibc's malloc keeps
freed memory for reuse (`--malloc-cache`, what `python -m fastacgan.train` sets on a CPU; `--no-malloc-cache`:
malloc as it is): a process-wide setting, so the reference has it too, and the speed-ups are the steps' own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import ReferenceACGAN  # noqa: E402

from fastacgan.config import PRESETS, TrainConfig, resolve_spec  # noqa: E402
from fastacgan.heap import keep_freed_memory  # noqa: E402
from fastacgan.loaders import to_model_input  # noqa: E402
from fastacgan.step import ACGANStep  # noqa: E402
from fastacgan.train import cpu_has_bf16  # noqa: E402

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


def race(preset: str, batch: int, steps: int, rounds: int, bf16: bool) -> list[tuple[str, float]]:
    spec = resolve_spec(TrainConfig(), preset, CHANNELS.get(preset, 3), 10)
    cpu, s = torch.device("cpu"), spec.image_size
    torch.manual_seed(0)
    x = torch.randint(0, 256, (batch, s, s, spec.channels), dtype=torch.uint8)
    y = torch.randint(0, 10, (batch,))
    ref = ReferenceACGAN(spec, cpu)
    calls = {"reference (eager fp32)": lambda: ref.step(to_model_input(x, False), y)}
    fast32 = ACGANStep(spec, cpu)
    calls["fastacgan fp32"] = lambda: fast32(x, y)
    if bf16:
        fast16 = ACGANStep(spec, cpu, amp_dtype=torch.bfloat16)
        calls["fastacgan bf16"] = lambda: fast16(x, y)
    for call in calls.values():  # warm-up: oneDNN's primitives, the optimizers' state
        call()
        call()
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], median_ms(call, steps))
    return list(best.items())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", type=parse_run, default=[("digits", 64), ("cifar10", 64), ("isic64", 16)],
                   metavar="PRESET:BATCH", help="presets and batch sizes (default: digits:64 cifar10:64 isic64:16)")  # fmt: skip  # noqa: E501
    p.add_argument("--steps", type=int, default=8, help="timed steps per round (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="turns of every implementation (default 2)")
    p.add_argument("--malloc-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="glibc's malloc keeps freed memory for reuse, for both (default: on)")  # fmt: skip
    a = p.parse_args(argv)
    if a.steps < 1 or a.rounds < 1:
        p.error("--steps and --rounds must be >= 1")
    bf16 = cpu_has_bf16()
    malloc = keep_freed_memory() if a.malloc_cache else "off"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {'yes' if bf16 else 'no'}, "
          f"malloc cache: {malloc}\n")  # fmt: skip
    print("| preset | batch | implementation | step (median) | images/s | vs the reference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for preset, batch in a.runs:
        results = race(preset, batch, a.steps, a.rounds, bf16)
        ref_ms = results[0][1]
        for name, ms in results:
            print(f"| {preset} | {batch} | {name} | {ms:.1f} ms | {batch / ms * 1000:,.0f} | {ref_ms / ms:.2f}x |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
