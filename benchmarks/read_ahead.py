"""The DALI loader's read-ahead with the training step emulated by a wait (the host idle while the GPU works, as
under a GPU step): ms per batch with the batches made in the consumer's thread (read_ahead 0) and 2 ahead in a
thread of their own, each timed twice after a warm-up epoch. Runs on a CPU (DALI's CPU pipeline) as well.

    python benchmarks/read_ahead.py FOLDER SIZE STEP_MS [--batch 64] [--device cpu]
FOLDER: an image folder (FOLDER/<class>/*.jpg); SIZE: the model's resolution; STEP_MS: the emulated step.
"""

import argparse
import time
from pathlib import Path

import torch

from fastacgan.dali_pipeline import DaliLoader
from fastacgan.data import open_catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("size", type=int)
    ap.add_argument("step_ms", type=float)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    cat, dev = open_catalog(a.folder), torch.device(a.device)
    torch.set_num_threads(1)
    for depth in (0, 2, 0, 2):
        loader = DaliLoader(cat, a.size, 3, a.batch, 0, dev, True, 1, "skip", read_ahead=depth)
        list(loader.epoch(0))  # warm-up: the pipeline, the page cache
        t0, n = time.perf_counter(), 0
        for _ in loader.epoch(1):
            n += 1
            time.sleep(a.step_ms / 1000)
        ms = (time.perf_counter() - t0) / n * 1e3
        print(f"{Path(a.folder).name} {a.size}px, step {a.step_ms:g} ms, read_ahead {depth}: {ms:.1f} ms per batch")


if __name__ == "__main__":
    main()
