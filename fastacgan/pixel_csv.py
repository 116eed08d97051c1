"""Images as rows of a CSV: a pixel a column (Kaggle's MNIST-like sets) or an image a field of space-separated values
(FER2013)."""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path

import numpy as np

from . import binary_sets
from .data import TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, NoTestSplit

PIXEL_LABELS = ("label", "labels", "class", "target", "y")  # a pixel CSV's label column, by its name in any case


def pixel_csv_catalog(path: Path, split: str = "train") -> Catalog | None:
    """A CSV whose rows are images, a label column beside their pixel values: Kaggle's MNIST train.csv (label,
    pixel0 ... pixel783), Fashion-MNIST's and Sign Language MNIST's, "MNIST in CSV" (label, 1x1 ... 28x28, or no
    header and the label first), HAM10000's hmnist_28_28_RGB.csv (pixel0000 ... pixel2351, label). An image is s x s
    values (greyscale) or s x s x 3 (RGB, pixel by pixel), 0-255 or in [0, 1]. None where the file is no such CSV
    (at least 8 x 8 pixel columns: a CSV of image names and labels is not)."""
    header = _header(path)
    if "pixels" in header:  # FER2013: an image a field
        return pixel_strings_catalog(path, header, split)
    if (layout := _layout(header)) is None:
        return None
    bare, at, side = layout
    if split != "train":
        raise NoTestSplit(f"--data {path}: a CSV of pixel rows is one split")
    if at is None:
        raise DataError(f"--data {path}: a CSV of pixel rows needs a label column ({', '.join(PIXEL_LABELS)}); this "
                        "one has none (Kaggle's test.csv is unlabelled)")  # fmt: skip
    try:
        try:
            rows = np.loadtxt(path, delimiter=",", skiprows=0 if bare else 1, dtype=np.int32, ndmin=2)
        except ValueError:  # values in [0, 1]
            rows = np.loadtxt(path, delimiter=",", skiprows=0 if bare else 1, dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise DataError(f"--data {path}: cannot read its rows as numbers ({e})") from e
    if rows.shape[1] != len(header):  # (the one row there is, cut short)
        raise DataError(f"--data {path}: its rows hold {rows.shape[1]} values, its first row {len(header)}: cut short?")
    x = np.delete(rows, at, axis=1)
    if x.dtype.kind == "f":  # (whole numbers are read as int32: no float copy of a 60,000-row set)
        x = np.rint(x * 255 if x.max(initial=0) <= 1 else x)
    x = x.clip(0, 255).astype(np.uint8).reshape(len(x), side, side, -1)
    name = _set_name(path)
    y, classes = rows[:, at], None
    if em := binary_sets.EMNIST_CSV.fullmatch(path.name):  # stored as EMNIST's idx files store them: transposed
        x, y, name, classes = binary_sets.emnist_upright(x, y, em[1].lower())
    from .datasets import arrays_catalog  # (datasets imports this module)

    return arrays_catalog(x, y, str(path), name, [str(path)], class_names=classes)


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return _fields(f.readline())


def _fields(line: str) -> list[str]:
    return [h.strip().strip('"').lower() for h in line.split(",")]


def _layout(header: list[str]) -> tuple[bool, int | None, int] | None:
    """(whether the first row is data, not a header; the label column, or None; the images' side) of a CSV of
    pixel rows, from its first row; None where it is no such CSV."""
    bare = all(re.fullmatch(r"-?[\d.]+(e-?\d+)?", h) for h in header)  # no header: the label first
    at = 0 if bare else next((header.index(c) for c in PIXEL_LABELS if c in header), None)
    pixels = [h for k, h in enumerate(header) if k != at]
    side = _side(len(pixels))
    if side < 8 or not (bare or all(re.fullmatch(r"(pixel_?)?\d+|\d+x\d+", h) for h in pixels)):
        return None
    return bare, at, side


def holds_pixel_rows(path: Path) -> bool:
    """Whether a CSV holds images, one a row (pixel_csv_catalog's forms), by its first row."""
    try:
        return pixel_rows_head(_header(path))
    except OSError:
        return False


def pixel_rows_head(first: str | list[str]) -> bool:
    """Whether a CSV beginning so (its text, or its first row's fields as _header gives them) holds images, one a
    row."""
    header = _fields(first.partition("\n")[0]) if isinstance(first, str) else first
    return "pixels" in header or _layout(header) is not None


# FER2013's emotions, by the number its `emotion` column gives them (as torchvision's FER2013 names them)
FER_EMOTIONS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]


def _side(values: int) -> int:
    """The side of a square image of so many values: s x s (greyscale) or s x s x 3 (RGB); 0 for neither."""
    grey, rgb = math.isqrt(values), math.isqrt(values // 3)
    return grey if grey * grey == values else rgb if 3 * rgb * rgb == values else 0


def _set_name(path: Path) -> str:
    """The file's name without split words (fashion-mnist_train.csv: fashion_mnist)."""
    words = re.split(r"[^A-Za-z0-9]+", path.stem)
    return "_".join(w for w in words if w and w.lower() not in (*TRAIN_SPLITS, *TEST_SPLITS)) or path.stem


def pixel_strings_catalog(path: Path, header: list[str], split: str = "train") -> Catalog:
    """A CSV with an image a field, its pixel values separated by spaces (column `pixels`), and a label column
    (`emotion`, or one of PIXEL_LABELS): FER2013 as Kaggle ships it (fer2013.csv and icml_face_data.csv: `emotion,
    pixels, Usage`; the challenge's train.csv: `emotion, pixels`). Rows whose `Usage` is Training are the training
    split, the others (PublicTest, PrivateTest) the held-out one; FER2013's emotions are named."""
    at = header.index("pixels")
    label = next((header.index(c) for c in ("emotion", *PIXEL_LABELS) if c in header), None)
    usage = header.index("usage") if "usage" in header else None
    if label is None:
        raise DataError(f"--data {path}: a CSV of images in its `pixels` column needs a label column (emotion, "
                        f"{', '.join(PIXEL_LABELS)}); none here (FER2013's test.csv is unlabelled)")  # fmt: skip
    if usage is None and split != "train":
        raise NoTestSplit(f"--data {path}: a CSV of images without a Usage column is one split")
    pixels, labels = [], []
    was = csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))  # (a 128x128 RGB image's field: 200 KB, past
    try:  # csv's 128 KB: raised while this file is read, then set back)
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            rows = csv.reader(f)
            next(rows, None)
            for n, row in enumerate(rows, 2):
                if not row or (usage is not None and (row[usage].strip().lower() == "training") != (split == "train")):
                    continue
                if len(row) <= max(at, label) or not row[label].strip().isdigit():
                    raise DataError(f"--data {path}: row {n} has no class number in column {header[label]!r}")
                pixels.append(row[at])
                labels.append(int(row[label]))
    except csv.Error as e:
        raise DataError(f"--data {path}: cannot read row {rows.line_num} ({e})") from e
    finally:
        csv.field_size_limit(was)
    if not pixels:
        raise DataError(f"--data {path}: no rows of the {'training' if split == 'train' else 'held-out'} split")
    counts = {len(p.split()) for p in pixels[:100]}
    side = _side(max(counts))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (text that is no number stops the reading with a warning)
            x = np.fromstring(" ".join(pixels), dtype=np.int32, sep=" ")
    except (ValueError, DeprecationWarning) as e:
        raise DataError(f"--data {path}: cannot read its `pixels` as numbers ({e})") from e
    if len(counts) > 1 or side < 8 or x.size != len(pixels) * max(counts):
        raise DataError(f"--data {path}: its `pixels` are not square images of 8 x 8 or more, all of one size "
                        f"({', '.join(map(str, sorted(counts)[:3]))} values in the first rows)")  # fmt: skip
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"--data {path}: pixel values must be 0-255, found {x.min()} to {x.max()}")
    x = x.astype(np.uint8).reshape(len(pixels), side, side, -1)
    y = np.asarray(labels, dtype=np.int64)
    names = FER_EMOTIONS if header[label] == "emotion" else None
    from .datasets import arrays_catalog  # (datasets imports this module)

    return arrays_catalog(x, y, str(path), _set_name(path), [str(path)], class_names=names)
