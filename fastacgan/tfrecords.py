"""TFRecord files of tf.train.Example records, read without TensorFlow: TensorFlow Datasets' (tfds.load's
~/tensorflow_datasets/cifar10/3.0.2/cifar10-train.tfrecord-00000-of-00001, beside features.json and
label.labels.txt, the class names) and Kaggle's TPU sets' (tfrecords-jpeg-512x512/train/*.tfrec, val/, test/: an
"image" and a "class" each). `--data` the folder (a TFDS set's folder: its newest version), or one file.

The image is the feature that features.json calls an Image (else a bytes feature holding image files, "image" first);
the label the ClassLabel (else an integer feature named as labels are, as a CSV's; --csv-label-col names another).
The files named as the training split train (or those named as none); those named as a test split, else a validation
one, are held out (a split whose records have no label, Kaggle's test/, is passed over, said). Only the images'
places in the files are listed; each is read from there when it is decoded (worker processes too)."""

from __future__ import annotations

import json
import mmap
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import (
    IMAGE_MAGIC,
    TEST_SPLITS,
    TRAIN_SPLITS,
    VERSION,
    Catalog,
    DataError,
    Every,
    Spans,
    extension,
    labels_from,
)
from .splits import files_of, set_name, split_word

EXTS = (".tfrecord", ".tfrec")


class Unlabelled(DataError):
    """Records with no label (Kaggle's test/): a held-out split of them is passed over."""


def _varint(buf, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf, i: int, end: int):
    """The fields of a protobuf message in buf[i:end]: (number, wire type, value: an int, or (start, end))."""
    while i < end:
        tag, i = _varint(buf, i)
        wire = tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        elif wire in (1, 5):  # (fixed 64 and 32 bits: a float list's values, unpacked)
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire}")
        yield tag >> 3, wire, value


def _subs(buf, span: tuple[int, int], number: int) -> list[tuple[int, int]]:
    """The spans of the length-delimited fields `number` of the message in buf[span]."""
    return [v for f, w, v in _fields(buf, *span) if f == number and w == 2]


def _ints(buf, vals: list) -> list[int]:
    """An Int64List's values: packed (one length-delimited run of varints) or a varint each; int64, signed."""
    out = []
    for v in vals:
        if isinstance(v, tuple):
            i = v[0]
            while i < v[1]:
                n, i = _varint(buf, i)
                out.append(n)
        else:
            out.append(v)
    return [n - (1 << 64) if n >= 1 << 63 else n for n in out]


def example(buf, start: int, end: int) -> dict[str, tuple[str, list]]:
    """A tf.train.Example's features: name -> ("bytes", [(start, end) of each value]) | ("int64", [values]; none for
    a float list)."""
    out = {}
    for features in _subs(buf, (start, end), 1):  # Example.features
        for entry in _subs(buf, features, 1):  # Features.feature: map entries of a name and a Feature
            names, feature = _subs(buf, entry, 1), _subs(buf, entry, 2)
            name = bytes(buf[names[0][0] : names[0][1]]).decode("utf-8", errors="replace") if names else ""
            for kind, _, span in _fields(buf, *feature[0]) if feature else ():  # its list, by its field number
                vals = [v for k, _, v in _fields(buf, *span) if k == 1]
                out[name] = ("bytes", vals) if kind == 1 else ("int64", _ints(buf, vals) if kind == 3 else [])
    return out


def records(mm, path: Path):
    """The (start, end) of each record's data in a TFRecord file: an 8-byte length, its 4-byte CRC, the data, its
    4-byte CRC (not checked)."""
    i = 0
    while i < len(mm):
        if i + 12 > len(mm):
            raise DataError(f"{path}: a record cut short at byte {i:,} (a file cut short?)")
        n = struct.unpack_from("<Q", mm, i)[0]
        if i + 16 + n > len(mm):
            raise DataError(f"{path}: a record of {n:,} bytes at byte {i:,} runs past the end of the file (a file cut "
                            "short, or not a TFRecord file)")  # fmt: skip
        yield i + 12, i + 12 + n
        i += 16 + n


def _features_json(folder: Path) -> tuple[str | None, str | None]:
    """(the Image feature's name, the ClassLabel's) that a TFDS set's features.json gives, else Nones."""
    try:
        got = json.loads((folder / "features.json").read_text(encoding="utf-8"))
        feats = got["featuresDict"]["features"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    kind = {name: str(v.get("pythonClassName", "")).rsplit(".", 1)[-1] for name, v in feats.items()}
    first = {k: next((n for n in ("image", "label", *kind) if kind.get(n) == k), None) for k in ("Image", "ClassLabel")}
    return first["Image"], first["ClassLabel"]


def _pick(path: Path, mm, first: dict, image: str | None, label: str | None, label_col: str) -> tuple[str, str]:
    """(the image feature, the label feature) of records like `first`."""
    from .labels_csv import LABEL_COLUMNS

    held = lambda v: bytes(mm[v[0][0] : v[0][1]][:4]).startswith(IMAGE_MAGIC)  # noqa: E731 - an image file's head
    ordered = sorted(first.items(), key=lambda x: x[0] != "image")
    images = [image] if image in first else [n for n, (k, v) in ordered if k == "bytes" and v and held(v)]
    if not images:
        raise DataError(f"--data {path}: no feature of image files in its records (features: "
                        f"{', '.join(sorted(first))})")  # fmt: skip
    ints = [n for n, (k, v) in first.items() if k == "int64" and len(v) == 1]
    if label_col:
        found = [label_col] if label_col in ints else []
        given = f"--csv-label-col {label_col!r}: no integer feature of that name in {path}"
    else:
        found = [label] if label in ints else [n for c in LABEL_COLUMNS for n in ints if n.lower() == c]
        given = f"--data {path}: no label (an integer feature named label, class, ...); --csv-label-col names one"
    if not found:
        raise (DataError if label_col else Unlabelled)(f"{given} (features: {', '.join(sorted(first))})")
    return images[0], found[0]


def read_tfrecords(files: list[Path], label_col: str, log: Callable[[str], None]):
    """(names, the file of each image, its offset, its size, labels, the label feature) of the records of files."""
    image, label = _features_json(files[0].parent)
    names, which, offsets, sizes, labels, due, chosen = [], [], [], [], [], Every(), None
    for k, path in enumerate(files):
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise DataError(f"{path}: a gzip-compressed TFRecord file: unpack it (gunzip) and give that")
            if not f.seek(0, 2):
                continue
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with mm:
            for n, (start, end) in enumerate(records(mm, path)):
                try:
                    feats = example(mm, start, end)
                except (ValueError, IndexError, TypeError) as e:
                    raise DataError(f"{path}: record {n} is not a tf.train.Example ({e})") from e
                chosen = chosen or _pick(path, mm, feats, image, label, label_col)
                got, tag = feats.get(chosen[0]), feats.get(chosen[1])
                if got is None or not got[1]:
                    raise DataError(f"{path}: record {n} has no {chosen[0]!r}")
                if tag is None or len(tag[1]) != 1:
                    raise Unlabelled(f"{path}: record {n} has no {chosen[1]!r} (or several)")
                names.append(f"{path}[{n}]")
                which.append(k)
                offsets.append(got[1][0][0])
                sizes.append(got[1][0][1] - got[1][0][0])
                labels.append(tag[1][0])
                if due():
                    log(f"reading {path.parent}: {k + 1} of {len(files)} files, {len(names):,} images")
    return names, which, offsets, sizes, labels, chosen


def _set_files(d: Path) -> tuple[Path, list[Path]]:
    """(the folder of a set's TFRecord files, those files): d's own (_files), else those of a TFDS set's newest
    version folder in it (cifar10/3.0.2/); (d, []) where there are none."""
    if files := _files(d):
        return d, files
    versions = sorted(((tuple(map(int, p.name.split("."))), p) for p in d.iterdir() if VERSION.fullmatch(p.name)
                       and p.is_dir()), reverse=True)  # fmt: skip
    return next(((p, files) for _, p in versions if (files := _files(p))), (d, []))


def _files(d: Path) -> list[Path]:
    """The TFRecord files in folder d, or in its folders named as splits (Kaggle's train/, val/, test/)."""
    entries = list(d.iterdir())
    if mine := sorted(p for p in entries if extension(p.name) in EXTS and p.is_file()):
        return mine
    parts = [p for p in entries if split_word(p.name) in (*TRAIN_SPLITS, *TEST_SPLITS) and p.is_dir()]
    return sorted(f for p in parts for f in p.iterdir() if extension(f.name) in EXTS and f.is_file())


def has_tfrecords(d: Path) -> bool:
    return bool(_set_files(d)[1])


def _split_of(path: Path, root: Path) -> str:
    """A file's split: its folder's (Kaggle's train/), else the word of its name (cifar10-train.tfrecord-...)."""
    where = path.parent.name if path.parent != root else re.split(r"\.tfrec", path.name, flags=re.I)[0]
    words = [split_word(where), *re.split(r"[^a-z]+", where.lower())]
    return next((w for w in words if w in (*TRAIN_SPLITS, *TEST_SPLITS)), "")


def tfrecord_catalog(files: list[Path], name: str, label_col: str, log: Callable[[str], None]) -> Catalog:
    """The images of these files, labelled; the class names from TFDS' <label>.labels.txt beside them."""
    names, which, offsets, sizes, labels, chosen = read_tfrecords(files, label_col, log)
    if not names:
        raise DataError(f"--data {files[0].parent}: its TFRecord files hold no records")
    if min(labels) < 0:
        raise DataError(f"{names[labels.index(min(labels))]}: label {min(labels)} (an unlabelled record)")
    listed = files[0].parent / f"{chosen[1]}.labels.txt"
    classes = [c.strip() for c in listed.read_text(encoding="utf-8").splitlines()] if listed.is_file() else []
    if classes and max(labels) < len(classes):
        ids, class_names = np.asarray(labels, dtype=np.int64), classes
    else:
        ids, class_names = labels_from(labels)
        class_names = [str(c) for c in class_names]
    reader = Spans([str(f) for f in files], np.asarray(which, dtype=np.int32), np.asarray(offsets), np.asarray(sizes))
    return Catalog(name, names, ids, class_names, reader, sources=[str(f) for f in files])


def tfrecords_in(d: Path, split: str, label_col: str = "", log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """The split of the TFRecord files of folder d (_set_files): a split whose first record has no label is passed over
    (Kaggle's test/), said."""
    root, files = _set_files(d)
    if root != d:  # (TensorFlow Datasets' cifar10/3.0.2/)
        log(f"--data {d}: reading {root.name}/, its newest version of TFRecord files")
    of = lambda f: _split_of(f, root)  # noqa: E731
    while True:  # (files_of: the split's files, else NoTestSplit or the error naming the splits there are)
        mine = files_of(files, split, d, of, "TFRecord files")
        try:
            return tfrecord_catalog(mine, set_name(mine[0].parent, mine[0]), label_col, log)
        except Unlabelled:
            if split == "train":
                raise
            log(f"note: --data {d}: its {of(mine[0])} files have no labels: passed over")
            passed = set(mine)
            files = [f for f in files if f not in passed]


def tfrecord_file_catalog(path: Path, split: str, label_col: str = "") -> Catalog | None:
    """A TFRecord file given as --data, read as given (one shard of several); its test split, the test files beside
    it; None for other files."""
    if extension(path.name) not in EXTS:
        return None
    if split != "train":  # the test files beside it (cifar10-test.tfrecord-00000-of-00001)
        return tfrecords_in(path.parent, split, label_col)
    return tfrecord_catalog([path], set_name(path.parent, path), label_col, lambda msg: None)
