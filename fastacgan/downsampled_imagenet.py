"""Downsampled ImageNet (Chrabaszcz, Loshchilov and Hutter, 2017: ImageNet at 8x8, 16x16, 32x32 and 64x64 pixels,
the class-conditional GAN benchmark) as its authors ship it, read without their loader.

`Imagenet32_train/` holds `train_data_batch_1` ... `train_data_batch_10` (pickles) or, for 64x64,
`Imagenet64_train_part1_npz/train_data_batch_1.npz` ...; `Imagenet32_val/` holds `val_data` (`.npz`). Each is a
dict of `data` (uint8 [N, 3 s s]: the red plane, then green, then blue, as CIFAR's rows), `labels` (1..1000) and
`mean`. `--data Imagenet32_train` reads every batch, `--data .../train_data_batch_1` one (128,116 images: a part
of the set that fits where the whole does not); the held-out set is `Imagenet32_val` beside it. The classes are
named by their WordNet ids where ILSVRC's `map_clsloc.txt` (`n02119789 1 kit_fox`) lies beside the batches or a
folder up, else by their numbers, 1 to 1000.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .data import Catalog, DataError, NoTestSplit

BATCH_FILE = re.compile(r"(?:train_data_batch_(\d+)|val_data)(\.npz)?")


def has_batches(d: Path) -> bool:
    return any((d / f"{stem}{z}").is_file() for stem in ("train_data_batch_1", "val_data") for z in ("", ".npz"))


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, s, s, 3], labels 0..999) of one batch file, a pickle or an .npz."""
    from .datasets import _field, _unpickle

    where = str(path)
    if path.name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                batch = {k: z[k] for k in z.files if k in ("data", "labels")}
        except (OSError, ValueError) as e:
            raise DataError(f"--data {path}: cannot read the .npz ({e})") from e
    else:
        batch = _unpickle(path.read_bytes, where)
    data, labels = np.asarray(_field(batch, "data", where)), np.asarray(_field(batch, "labels", where), np.int64)
    side = math.isqrt(data.shape[1] // 3) if data.ndim == 2 else 0
    if data.dtype != np.uint8 or not side or 3 * side * side != data.shape[1] or len(labels) != len(data):
        raise DataError(f"{where}: expected uint8 data [N, 3 s s] and N labels, found {data.dtype} "
                        f"{list(data.shape)} and {len(labels)} labels: not a Downsampled ImageNet batch")  # fmt: skip
    if len(labels) and (labels.min() < 1 or labels.max() > 1000):
        raise DataError(f"{where}: labels from {labels.min()} to {labels.max()}; Downsampled ImageNet's are 1..1000")
    return data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1), labels - 1


def _class_names(d: Path) -> list[str]:
    """WordNet ids by ILSVRC class number from map_clsloc.txt (in d or a folder up), else the numbers 1..1000."""
    for f in (d / "map_clsloc.txt", d.parent / "map_clsloc.txt"):
        if f.is_file():
            ids = {}
            for line in f.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    ids[int(parts[1])] = parts[0]
            if sorted(ids) == list(range(1, 1001)):
                return [ids[k] for k in range(1, 1001)]
    return [str(k) for k in range(1, 1001)]


def batches_catalog(files: list[Path], where: Path) -> Catalog:
    """The images of the batch files, in order; where: their folder (or the one file), for names and messages."""
    from .archives import memory_budget
    from .datasets import arrays_catalog

    need = sum(f.stat().st_size for f in files)  # about the decoded size: the files are not compressed
    if need > memory_budget():
        raise DataError(f"--data {where}: its {len(files)} batches take {need / 2**30:.1f} GiB, more than half the "
                        f"memory this process may take ({memory_budget() / 2**30:.1f} GiB): give one batch file, "
                        f"--data {files[0]}, or the 32x32 set")  # fmt: skip
    x, labels, n = None, [], 0
    for f in files:  # into one array sized by the files (their tail pages never touched): no second copy of the set
        images, lab = _read_batch(f)
        if x is None:
            x = np.empty((need // images[0].size + 1, *images.shape[1:]), np.uint8)
        if images.shape[1:] != x.shape[1:] or n + len(images) > len(x):
            raise DataError(f"--data {f}: images of {images.shape[1]}x{images.shape[2]} pixels beside batches of "
                            f"{x.shape[1]}x{x.shape[2]}: give the batches of one size")  # fmt: skip
        x[n : n + len(images)], n = images, n + len(images)
        labels.append(lab)
    names = _class_names(files[0].parent)
    return arrays_catalog(x[:n], np.concatenate(labels), str(where), f"imagenet{x.shape[1]}", [str(f) for f in files],
                          class_names=names)  # fmt: skip


def batches_in(d: Path, split: str) -> Catalog:
    """The training batches in folder d (train_data_batch_1 ..., in their numbers' order), or its val_data where
    it holds only that (the validation folder, as the held-out set beside the training one)."""
    found = [p for p in d.iterdir() if BATCH_FILE.fullmatch(p.name) and p.is_file()]
    train = sorted((int(BATCH_FILE.fullmatch(p.name)[1]), p) for p in found if p.name.startswith("train"))
    if split != "train":
        raise NoTestSplit(f"--data {d}: Downsampled ImageNet's held-out set is its val_data, in a folder of its own")
    return batches_catalog([p for _, p in train] or sorted(found), d)


def batch_file_catalog(path: Path, split: str) -> Catalog | None:
    """One batch file given as --data (train_data_batch_3, val_data.npz), else None."""
    if not BATCH_FILE.fullmatch(path.name):
        return None
    if split != "train":
        raise NoTestSplit(f"--data {path}: one batch of Downsampled ImageNet")
    return batches_catalog([path], path)
