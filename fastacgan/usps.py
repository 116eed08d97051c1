"""USPS and SEMEION as torchvision downloads them, 16 x 16 digits in text files in its root.

USPS: `usps.bz2` (7,291 training digits) and `usps.t.bz2` (2,007 held out), each a bzip2-compressed text file in
LIBSVM's form, a digit a line: `label index:value ...`, the label 1..10 (the digit + 1), 256 values in [-1, 1] (a
16 x 16 image, row by row). Read as torchvision reads it: the digit 0..9, each value v as uint8((v + 1) / 2 * 255);
a value a line leaves out (LIBSVM's zeros) is 0. `--data root` or `--data usps.bz2`; the test split is `usps.t.bz2`.

SEMEION: `semeion.data`, 1,593 digits, a line each: 256 values 0 or 1 (row by row), then the digit one-hot in 10
0/1 values. Read as torchvision reads it: each value v as uint8(v * 255). It has no test split. `--data root` or
`--data semeion.data`.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np

from .data import DAMAGED, Catalog, DataError, NoTestSplit

FILES = {"train": "usps.bz2", "test": "usps.t.bz2"}
SEMEION = "semeion.data"
ROOT_FILES = {"usps": FILES["train"], "semeion": SEMEION}  # the sets kept in torchvision's root: their files
DIGITS = [str(d) for d in range(10)]


def has_usps(d: Path) -> bool:
    """Whether folder d holds USPS' files (torchvision's root)."""
    return any((d / name).is_file() for name in FILES.values())


def usps_in(d: Path, split: str) -> Catalog:
    """The USPS split in folder d."""
    path = d / FILES[split]
    if not path.is_file():
        raise (NoTestSplit if split == "test" else DataError)(f"--data {d}: no {path.name} (USPS' {split} split)")
    return usps_catalog(path)


def usps_file_catalog(path: Path, split: str) -> Catalog | None:
    """usps.bz2 or usps.t.bz2 given as --data (the test split of usps.bz2: usps.t.bz2 beside it); None for other
    files."""
    if path.name.lower() not in FILES.values():
        return None
    if split == "test":
        if path.name.lower() == FILES["test"] or not (held := path.with_name(FILES["test"])).is_file():
            raise NoTestSplit(f"--data {path}: one split of its set")
        path = held
    return usps_catalog(path)


def usps_catalog(path: Path) -> Catalog:
    from .datasets import arrays_catalog  # (datasets imports binary_sets, which imports this module)

    try:
        with bz2.open(path, "rt", encoding="ascii", errors="replace") as f:
            lines = [line.split() for line in f if line.strip()]
    except DAMAGED as e:
        raise DataError(f"--data {path}: cannot read USPS' file ({e})") from e
    x, y = np.zeros((len(lines), 256), dtype=np.float32), np.zeros(len(lines), dtype=np.int64)
    for i, row in enumerate(lines):
        try:
            y[i] = int(float(row[0])) - 1
            for item in row[1:]:
                at, value = item.split(":")
                if not 1 <= int(at) <= 256:
                    raise IndexError(f"index {at}")
                x[i, int(at) - 1] = float(value)
        except (ValueError, IndexError) as e:
            raise DataError(f"--data {path}: line {i + 1} is not in USPS' form, `label index:value ...` ({e})") from e
    if len(y) and not (y.min() >= 0 and y.max() <= 9):
        raise DataError(f"--data {path}: labels from {y.min() + 1} to {y.max() + 1}; USPS' are 1 to 10")
    images = ((x.reshape(-1, 16, 16) + 1) / 2 * 255).clip(0, 255).astype(np.uint8)  # as torchvision: truncated
    return arrays_catalog(images, y, str(path), "usps", [str(path)], class_names=DIGITS)


def semeion_in(d: Path, split: str) -> Catalog:
    """SEMEION in folder d (torchvision's root)."""
    return semeion_file_catalog(d / SEMEION, split)


def semeion_file_catalog(path: Path, split: str) -> Catalog | None:
    """SEMEION's semeion.data (given as --data, or in the folder given); None for other files."""
    from .datasets import arrays_catalog

    if path.name.lower() != SEMEION:
        return None
    if split == "test":
        raise NoTestSplit(f"--data {path}: SEMEION has no test split (its digits all train)")
    try:
        rows = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(f"--data {path}: not in SEMEION's form, 266 numbers a line ({e})") from e
    digits = rows[:, 256:]
    if rows.shape[1] != 266 or not (np.isin(rows, (0, 1)).all() and (digits.sum(1) == 1).all()):
        found = f"{rows.shape[1]} a line" if rows.shape[1] != 266 else "other values, or no single digit a line"
        raise DataError(f"--data {path}: not in SEMEION's form: 266 numbers a line, each 0 or 1 (256 pixels, then the "
                        f"digit one-hot); found {found}")  # fmt: skip
    images = (rows[:, :256] * 255).astype(np.uint8).reshape(-1, 16, 16)
    return arrays_catalog(images, digits.argmax(1), str(path), "semeion", [str(path)], class_names=DIGITS)
