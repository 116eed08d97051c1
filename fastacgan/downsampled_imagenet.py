"""Downsampled ImageNet (Chrabaszcz, Loshchilov and Hutter, 2017: ImageNet at 8x8, 16x16, 32x32 and 64x64 pixels,
the class-conditional GAN benchmark) as its authors ship it, read without their loader.

`Imagenet32_train/` holds `train_data_batch_1` ... `train_data_batch_10` (pickles) or, for 64x64,
`Imagenet64_train_part1_npz/train_data_batch_1.npz` ...; `Imagenet32_val/` holds `val_data` (`.npz`). Each is a
dict of `data` (uint8 [N, 3 s s]: the red plane, then green, then blue, as CIFAR's rows), `labels` (1..1000) and
`mean`. `--data Imagenet32_train` reads every batch, `--data .../train_data_batch_1` one (128,116 images: a part
of the set that fits where the whole does not); the held-out set is `Imagenet32_val` beside it. --data naming the
folder that holds them reads them all (the 64x64 set's two training parts, its val folder held out). The classes
are named by their WordNet ids where ILSVRC's `map_clsloc.txt` (`n02119789 1 kit_fox`) lies beside the batches or
a folder up, else by their numbers, 1 to 1000.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import Catalog, DataError, Every, NoTestSplit

BATCH_FILE = re.compile(r"(?:train_data_batch_(\d+)|val_data)(\.npz)?")


def has_batches(d: Path) -> bool:
    """Folder d holds batch files: val_data or train_data_batch_1 to _10 (the 64x64 set's second part: 6 to 10)."""
    stems = ("val_data", *(f"train_data_batch_{k}" for k in range(1, 11)))
    return any((d / f"{stem}{z}").is_file() for stem in stems for z in ("", ".npz"))


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


def batches_catalog(files: list[Path], where: Path, log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """The images of the batch files, in order; where: their folder (or the one file), for names and messages;
    log: progress lines while they are read (the 64x64 set's ten files hold 15 GB)."""
    from .archives import memory_budget
    from .datasets import arrays_catalog

    need = sum(f.stat().st_size for f in files)  # about the decoded size: the files are not compressed
    if need > memory_budget():
        raise DataError(f"--data {where}: its {len(files)} batches take {need / 2**30:.1f} GiB, more than half the "
                        f"memory this process may take ({memory_budget() / 2**30:.1f} GiB): give one batch file, "
                        f"--data {files[0]}, or the 32x32 set")  # fmt: skip
    x, labels, n, due = None, [], 0, Every()
    for k, f in enumerate(files, start=1):  # into one array sized by the files (their tail pages never touched)
        images, lab = _read_batch(f)
        if x is None:
            x = np.empty((need // images[0].size + 1, *images.shape[1:]), np.uint8)
        if images.shape[1:] != x.shape[1:] or n + len(images) > len(x):
            raise DataError(f"--data {f}: images of {images.shape[1]}x{images.shape[2]} pixels beside batches of "
                            f"{x.shape[1]}x{x.shape[2]}: give the batches of one size")  # fmt: skip
        x[n : n + len(images)], n = images, n + len(images)
        labels.append(lab)
        if due():
            log(f"reading {where}: {k} of {len(files)} batch files, {n:,} images")
    names = _class_names(files[0].parent)
    return arrays_catalog(x[:n], np.concatenate(labels), str(where), f"imagenet{x.shape[1]}", [str(f) for f in files],
                          class_names=names)  # fmt: skip


def _batch_files(d: Path) -> list[tuple[int, Path]]:
    """(number, file) of the batch files in folder d; val_data is number 0."""
    found = [(BATCH_FILE.fullmatch(p.name), p) for p in d.iterdir()]
    return [(int(m[1] or 0), p) for m, p in found if m and p.is_file()]


def _set_key(name: str) -> str:
    """A folder's name without its part's words: Imagenet64_train_part1_npz, Imagenet64_val_npz -> Imagenet64_npz."""
    return re.sub(r"(?i)_?(?:train(?:_?part\d+)?|val)", "", name)


def _held_out(folders: list[Path]) -> Catalog:
    """The val_data of the one validation folder among `folders` (the training set's siblings), as a held-out set."""
    val = [d for d in folders if "val" in d.name.lower() and any(k == 0 for k, _ in _batch_files(d))]
    if len(val) != 1:
        where = folders[0].parent if val else folders[0]
        raise NoTestSplit(f"--data {where}: Downsampled ImageNet's held-out set is its val_data, in a folder of its "
                          f"own beside the training one (Imagenet32_val); " + ("several: " + ", ".join(map(str, val))
                          if val else "none found"))  # fmt: skip
    cat = batches_catalog([p for k, p in _batch_files(val[0]) if k == 0], val[0])
    cat.origin = str(val[0])
    return cat


def batches_in(d: Path, split: str, log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """The training batches in folder d (train_data_batch_1 ..., in their numbers' order), or its val_data where
    it holds only that (the validation folder). The test split: the val_data of the validation folder beside d
    (Imagenet32_val beside Imagenet32_train; Imagenet64_val_npz beside Imagenet64_train_part1_npz)."""
    files = sorted(_batch_files(d))
    if split != "train" and not any(k for k, _ in files):
        raise NoTestSplit(f"--data {d} holds only val_data, Downsampled ImageNet's held-out set itself")
    if split != "train":
        return _held_out([p for p in d.parent.iterdir() if p.is_dir() and _set_key(p.name) == _set_key(d.name)])
    return batches_catalog([p for k, p in files if k] or [p for _, p in files], d, log)


def parts_catalog(root: Path, folders: list[Path], split: str, log: Callable[[str], None]) -> Catalog | None:
    """The set whose parts are `folders`, all Downsampled ImageNet folders in --data `root`, as its authors' archives
    unpack (Imagenet32_train/ and Imagenet32_val/; Imagenet64_train_part1_npz/, ..._part2_npz/, Imagenet64_val_npz/):
    the training batches of every train folder, the val folder the test split. None where they are of several sets
    (Imagenet32_train/ beside Imagenet64_train_part1_npz/)."""
    if len({_set_key(d.name) for d in folders}) != 1:
        return None
    if split != "train":
        return _held_out(folders)
    train = sorted(f for d in folders if "train" in d.name.lower() for f in _batch_files(d) if f[0])
    if not train:
        return None
    return batches_catalog([p for _, p in train], root, log)


def batch_file_catalog(path: Path, split: str) -> Catalog | None:
    """One batch file given as --data (train_data_batch_3, val_data.npz), else None."""
    if not BATCH_FILE.fullmatch(path.name):
        return None
    if split != "train":
        raise NoTestSplit(f"--data {path}: one batch of Downsampled ImageNet")
    return batches_catalog([path], path)
