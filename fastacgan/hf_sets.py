"""Hugging Face data sets, read without pyarrow: the Hub's Parquet files (parquet_format.py) and the Arrow files of
save_to_disk and load_dataset's cache (arrow_format.py), images (their encoded bytes) and labels. `--data
train-00000-of-00001.parquet`, or a set's folder of files (uoft-cs/cifar10's `plain_text/`, `data/train-00000-of-
00008.parquet` ..., the Hub's converted `<config>/train/0000.parquet`, save_to_disk's `train/data-00000-of-
00001.arrow`, the cache's `cifar10-train.arrow`), whose test files (else validation ones) are held out. The images:
the column `datasets` marks as an Image (a struct of `bytes` and `path`), else a binary column of image files; the
labels: the column named as labels (`label`, ... as a CSV's), else the first ClassLabel, with its `names`;
--csv-label-col picks another (CIFAR-100's `coarse_label`). A repository in the Hub's cache is read from its snapshot
(caches.py), whatever form its files are in."""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .arrow_format import read_arrow
from .data import IMAGE_MAGIC, TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, NoTestSplit, file_safe, labels_from
from .parquet_format import Unread, column, footer, schema_leaves
from .splits import files_of, set_name, split_word

FORMS = (".parquet", ".arrow")  # the Hub's files; save_to_disk's and load_dataset's cache


# ------------------------------------------------------------------------------------------------ a file


def _features(kv: dict[str, str]) -> dict:
    """The features that Hugging Face's datasets keeps in a file's metadata (`huggingface`: {column: {"_type":
    "Image"}, ...})."""
    try:
        features = json.loads(kv.get("huggingface", "{}")).get("info", {}).get("features", {})
        return {k: v for k, v in features.items() if isinstance(v, dict)} if isinstance(features, dict) else {}
    except (ValueError, AttributeError):
        return {}


IMAGE_NAMES = ("image", "img", "images", "picture", "photo", "jpg", "png")  # a binary column of image files


def _pick(path: Path, leaves: dict, features: dict, label_col: str) -> tuple[tuple, tuple]:
    """(the image column's path, the label column's path)."""
    from .labels_csv import LABEL_COLUMNS

    kind = lambda p: features.get(p[0], {}).get("_type")  # noqa: E731 - Hugging Face's: Image, ClassLabel, Value
    structs = [p for p in leaves if len(p) == 2 and p[1] == "bytes" and leaves[p][0] == 6]
    tops = [p for p in leaves if len(p) == 1 and leaves[p][0] is not None]
    images = [p for p in structs if kind(p) == "Image"] or structs or \
        [p for p in tops if leaves[p][0] == 6 and p[0].lower() in IMAGE_NAMES]  # fmt: skip
    if not images:
        raise DataError(f"--data {path}: no column of images (Hugging Face's Image, a struct of bytes and path, or "
                        f"binary image files) in its columns {', '.join('.'.join(p) for p in leaves)}")  # fmt: skip
    if label_col:
        label = [p for p in tops if p[0] == label_col]
        given = f"--csv-label-col {label_col!r}: no such column in {path}"
    else:
        label = [p for c in LABEL_COLUMNS for p in tops if p[0].lower() == c]
        label = label or [p for p in tops if kind(p) == "ClassLabel"]
        given = f"--data {path}: no column of labels (label, labels, ... or a ClassLabel); --csv-label-col names one"
    if not label:
        others = dict.fromkeys(p[0] for p in leaves if p[0] != images[0][0])
        raise DataError(f"{given} (its columns: {', '.join(others)})")
    if len(label) > 1 and not label_col:  # (CIFAR-100's fine_label and coarse_label)
        warnings.warn(f"--data {path}: the labels are column {label[0][0]!r}; --csv-label-col names another: "
                      f"{', '.join(p[0] for p in label[1:])}", stacklevel=3)  # fmt: skip
    return images[0], label[0]


def _parquet_columns(path: Path, raw, label_col: str) -> tuple[list, list, dict, tuple]:
    meta = footer(path, raw)
    kv = {k[1].decode(): k.get(2, b"").decode(errors="replace") for k in meta.get(5, [])}
    leaves, features = schema_leaves(meta[2]), _features(kv)
    image_col, label_path = _pick(path, leaves, features, label_col)
    images, labels = [], []
    for group in meta.get(4, []):
        chunks = {tuple(p.decode() for p in c[3][3]): c[3] for c in group[1]}
        got, defs = column(raw, chunks[image_col], leaves[image_col][1])
        if len(got) != len(defs):
            raise DataError(f"--data {path}: {len(defs) - len(got)} image(s) with no bytes in the file (stored by "
                            "path): fastacgan reads images kept in the file")  # fmt: skip
        vals, ldefs = column(raw, chunks[label_path], leaves[label_path][1])
        if len(vals) != len(ldefs):
            raise DataError(f"--data {path}: {len(ldefs) - len(vals)} image(s) with no label in column "
                            f"{label_path[0]!r}")  # fmt: skip
        images += got
        labels += vals
    return images, labels, features, label_path


def _arrow_columns(path: Path, raw, label_col: str) -> tuple[list, list, dict, tuple]:
    leaves, kv, columns = read_arrow(raw)
    features = _features(kv)
    image_col, label_path = _pick(path, leaves, features, label_col)
    got = columns([image_col, label_path])
    return got[image_col], got[label_path], features, label_path


def read_file(path: Path, label_col: str = "") -> tuple[list[bytes], list, list[str] | None, str]:
    """(the images' encoded bytes, their labels, the class names where the file names them, the label column) of a
    Parquet file or an Arrow file."""
    try:
        raw = memoryview(path.read_bytes())  # (pages are sliced from it, not copied)
    except OSError as e:
        raise DataError(f"--data {path}: cannot read ({e})") from e
    arrow = path.suffix.lower() == ".arrow"
    try:
        images, labels, features, label_path = (_arrow_columns if arrow else _parquet_columns)(path, raw, label_col)
    except DataError:
        raise
    except Unread as e:
        raise DataError(f"--data {path}: {e}") from None
    except (ValueError, IndexError, KeyError, TypeError, struct.error, EOFError, OSError) as e:
        form = "an Arrow file" if arrow else "this Parquet file"
        raise DataError(f"--data {path}: cannot read {form} ({type(e).__name__}: {e})") from e
    names = features.get(label_path[0], {}).get("names")
    return images, labels, names if isinstance(names, list) else None, label_path[0]


# ------------------------------------------------------------------------------------------------ a set


def _split_of(f: Path) -> str:
    """A file's split: the one its name names (train-00000-of-00001.parquet, cifar10-test.arrow: splits.split_word),
    else its folder's (train/0000.parquet, save_to_disk's train/data-00000-of-00001.arrow); "" for neither."""
    return next((w for n in (f.name, f.parent.name) if (w := split_word(n)) in (*TRAIN_SPLITS, *TEST_SPLITS)), "")


def shards(d: Path, depth: int = 0) -> list[Path]:
    """The Parquet files in folder d, or in its folders named as splits (the Hub's converted train/0000.parquet), or
    in the one folder it holds (a repository's: cifar10/plain_text/ beside its README.md)."""
    if found := sorted(f for f in d.iterdir() if f.suffix.lower() in FORMS and not f.name.startswith("cache-")
                       and f.is_file()):  # fmt: skip
        return found  # (load_dataset's cache-<fingerprint>.arrow: a map()'s output, not the set)
    if depth > 3:  # (lone folders in lone folders: a link to its own folder)
        return []
    subs = [Path(e.path) for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]  # (no stat calls)
    if len(subs) == 1 and subs[0].name.lower() not in (*TRAIN_SPLITS, *TEST_SPLITS):
        return shards(subs[0], depth + 1)
    return [f for s in subs if s.name.lower() in (*TRAIN_SPLITS, *TEST_SPLITS) for f in shards(s, 4)]


def _catalog(files: list[Path], shown: str, name: str, label_col: str, log: Callable[[str], None]) -> Catalog:
    """The images of files (one split's), each named by its file and row (train-00000-of-00002.parquet[7]), held in
    memory (refused where they would pass archives.memory_budget); log: a line a file where there are several."""
    from .archives import memory_budget

    sizes = [f.stat().st_size for f in files]
    if sum(sizes) > (budget := memory_budget()):
        raise DataError(f"--data {shown}: its {len(files)} file(s) hold {sum(sizes) / 2**30:.1f} GiB, and their images "
                        f"are held in memory, which may take {budget / 2**30:.1f} GiB (half of what this process may "
                        "take): give fewer of its files, or save its images as an image folder")  # fmt: skip
    images, raw_labels, names, rows = [], [], None, []
    for k, f in enumerate(files):
        got, labels, names, _ = read_file(f, label_col)
        images += got
        raw_labels += labels
        rows += [f"{f}[{i}]" for i in range(len(got))]
        if len(files) > 1:
            log(f"reading {shown}: {k + 1} of {len(files)} files, {len(images):,} images, "
                f"{sum(sizes[: k + 1]) / 2**20:,.0f} MiB")  # fmt: skip
    if not images:
        raise DataError(f"--data {shown}: no images in it")
    if (unlabelled := sum(isinstance(v, (int, np.integer)) and v < 0 for v in raw_labels)) and names is not None:
        raise DataError(f"--data {shown}: {unlabelled} of its {len(images)} images have the label -1, as Hugging Face "
                        "marks an image with no label (a test split's): an AC-GAN needs labels")  # fmt: skip
    if names is not None and all(isinstance(v, (int, np.integer)) and 0 <= v < len(names) for v in raw_labels):
        labels, classes = np.asarray(raw_labels, dtype=np.int64), [str(n) for n in names]
    else:  # labels as they are: numbers in numeric order, words in sorted order
        labels, classes = labels_from([v.decode(errors="replace") if isinstance(v, bytes) else v for v in raw_labels])
        classes = [str(c) for c in classes]
    bad = next((i for i, b in enumerate(images[:64]) if not b.startswith(IMAGE_MAGIC)), None)
    if bad is not None and images[bad][4:8] != b"ftyp":  # (AVIF)
        raise DataError(f"--data {shown}: {rows[bad]} is not an image file (it begins {images[bad][:8]!r})")
    return Catalog(file_safe(name.lower()), rows, labels, classes, images.__getitem__, sources=[str(f) for f in files])


def has_hf_set(d: Path) -> bool:
    return bool(shards(d))


def hf_set_in(d: Path, split: str, label_col: str = "", log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """The split of the set whose files folder d holds (splits.files_of)."""
    files = files_of(shards(d), split, d, _split_of, "Parquet or Arrow files")
    return _catalog(files, str(d), set_name(files[0].parent, files[0]), label_col, log)


def hf_file_catalog(path: Path, split: str, label_col: str = "") -> Catalog | None:
    """A .parquet given as --data, read as given (one shard of several: said); the test split: the test shards
    beside a training one. None for other files."""
    if path.suffix.lower() not in FORMS:
        return None
    mine = _split_of(path)
    if split == "test":
        if mine not in TRAIN_SPLITS or not any(_split_of(f) in TEST_SPLITS for f in shards(path.parent)):
            raise NoTestSplit(f"--data {path}: one split of its set")
        return hf_set_in(path.parent, "test", label_col)
    if (m := re.search(r"-of-(\d+)\.\w+$", path.name)) and int(m[1]) > 1:
        warnings.warn(f"--data {path}: one of the {int(m[1])} files of its split; --data {path.parent} reads them "
                      "all", stacklevel=2)  # fmt: skip
    return _catalog([path], str(path), set_name(path.parent, path) if mine else path.stem, label_col, lambda msg: None)
