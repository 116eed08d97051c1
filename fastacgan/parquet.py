"""Hugging Face data sets as the Hub ships them, Parquet files of images (their encoded bytes) and labels, read
without pyarrow: `--data train-00000-of-00001.parquet`, or a set's folder of shards (uoft-cs/cifar10's `plain_text/`,
`data/train-00000-of-00008.parquet` ..., the Hub's converted `<config>/train/0000.parquet`), whose test shards (else
validation ones) are held out. The images: the column `datasets` marks as an Image (a struct of `bytes` and `path`),
else a binary column of image files; the labels: the column named as labels (`label`, ... as a CSV's), else the first
ClassLabel, with its `names`; --csv-label-col picks another (CIFAR-100's `coarse_label`). Pages v1 and v2, PLAIN and
dictionary encodings; no compression, Snappy, gzip (zstd where the zstandard module is installed)."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np

from .data import TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, NoTestSplit, file_safe, labels_from


class _Unread(Exception):
    """What a Parquet file uses that this reader does not (said with the file's name)."""


SHARD = re.compile(r"(?:(?P<split>[A-Za-z]+)[-_.])?.*\.parquet$", re.I)  # train-00000-of-00008.parquet; 0000.parquet
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


# ------------------------------------------------------------------------------------------------ Thrift (compact)


class _Thrift:
    """Thrift's compact protocol, as Parquet writes its metadata: a struct read as {field id: value}."""

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> bytes:
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def varint(self) -> int:
        out = shift = 0
        while (b := self.take(1)[0]) >= 0x80:
            out, shift = out | (b & 0x7F) << shift, shift + 7
        return out | b << shift

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int):
        if kind in (1, 2):  # a bool field: its value is its type
            return kind == 1
        if kind in (3, 7, 8):  # a byte, a double, bytes
            return self.take(1)[0] if kind == 3 else struct.unpack("<d", self.take(8))[0] if kind == 7 else \
                bytes(self.take(self.varint()))  # fmt: skip
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind in (9, 10):  # a list or set: its size and its elements' type, then the elements
            head = self.take(1)[0]
            n = self.varint() if head >> 4 == 15 else head >> 4
            if head & 0x0F in (1, 2):  # bools in a list: a byte each
                return [b == 1 for b in self.take(n)]
            return [self.value(head & 0x0F) for _ in range(n)]
        if kind == 12:
            return self.struct()
        raise ValueError(f"Thrift type {kind}")  # (maps: none in Parquet's metadata)

    def struct(self) -> dict:
        out, last = {}, 0
        while head := self.take(1)[0]:
            last = last + (head >> 4) if head >> 4 else self.zigzag()
            out[last] = self.value(head & 0x0F)
        return out


# ------------------------------------------------------------------------------------------------ pages


def snappy_decompress(buf: bytes) -> bytes:
    """Snappy's raw format (as Parquet compresses pages): the length, then literals and back-references."""
    t = _Thrift(buf)
    size, out, end = t.varint(), bytearray(), len(buf)
    pos = t.pos
    while pos < end:
        tag = buf[pos]
        kind, pos = tag & 3, pos + 1
        if kind == 0:  # a literal: its length - 1 in the tag, or in the 1-4 bytes after it
            n = tag >> 2
            if n >= 60:
                k = n - 59
                n, pos = int.from_bytes(buf[pos : pos + k], "little"), pos + k
            out += buf[pos : pos + n + 1]
            pos += n + 1
            continue
        if kind == 1:
            n, offset, pos = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | buf[pos], pos + 1
        else:
            k = 2 if kind == 2 else 4
            n, offset, pos = (tag >> 2) + 1, int.from_bytes(buf[pos : pos + k], "little"), pos + k
        if not 0 < offset <= len(out):
            raise ValueError(f"a back-reference {offset} bytes back, {len(out)} written")
        start = len(out) - offset  # (a copy that overlaps what it writes repeats the last `offset` bytes)
        out += out[start : start + n] if offset >= n else (out[start:] * (n // offset + 1))[:n]
    if len(out) != size:
        raise ValueError(f"{len(out)} bytes, its header says {size}")
    return bytes(out)


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return snappy_decompress(data)
    if codec == 2:
        return gzip.decompress(data)
    if codec == 6:
        try:
            import zstandard
        except ImportError:
            raise _Unread("its pages are zstd-compressed: pip install zstandard, which reads them") from None
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
    names = {3: "LZO", 4: "Brotli", 5: "LZ4", 7: "LZ4"}
    raise _Unread(f"its pages are {names.get(codec, codec)}-compressed, which fastacgan does not read (Snappy, "
                  "gzip, zstd)")  # fmt: skip


def _hybrid(buf: bytes, pos: int, width: int, count: int) -> np.ndarray:
    """Parquet's RLE / bit-packed hybrid encoding: `count` values of `width` bits from buf[pos:]."""
    out, t, n = [], _Thrift(buf, pos), 0
    nbytes = (width + 7) // 8
    while n < count:
        head = t.varint()
        if head & 1:  # bit-packed: (head >> 1) groups of 8 values
            k = (head >> 1) * width
            bits = np.unpackbits(np.frombuffer(buf, np.uint8, k, t.pos), bitorder="little")
            vals = bits.reshape((head >> 1) * 8, width).astype(np.int64) @ (1 << np.arange(width, dtype=np.int64))
            t.pos += k
        else:  # a run: (head >> 1) times the value in the bytes after it
            vals = np.full(head >> 1, int.from_bytes(t.take(nbytes), "little"), np.int64)
        out.append(vals)
        n += len(vals)
    return np.concatenate(out)[:count] if out else np.zeros(0, np.int64)


def _plain(buf: bytes, pos: int, kind: int, count: int) -> list | np.ndarray:
    if kind == 6:  # BYTE_ARRAY: a 4-byte length, the bytes
        out = []
        for _ in range(count):
            (n,) = struct.unpack_from("<I", buf, pos)
            out.append(bytes(buf[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        return out
    dtypes = {1: "<i4", 2: "<i8", 4: "<f4", 5: "<f8"}
    if kind not in dtypes:
        raise _Unread(f"a column of Parquet type {kind}, which fastacgan does not read")
    return np.frombuffer(buf, dtypes[kind], count, pos)


def _column(raw: bytes, meta: dict, max_def: int) -> tuple[list, np.ndarray]:
    """(the values of one column chunk that are there, in row order; the definition levels of its rows)."""
    codec, kind = meta.get(4, 0), meta[1]
    pos = meta.get(11) or meta[9]  # the dictionary page first, where there is one
    values, levels, dictionary, seen, total = [], [], None, 0, meta[5]
    while seen < total:
        t = _Thrift(raw, pos)
        head = t.struct()
        body, pos = raw[t.pos : t.pos + head[3]], t.pos + head[3]
        if head[1] == 2:  # the dictionary page
            dictionary = _plain(_decompress(codec, body), 0, kind, head[7][1])
            continue
        if head[1] not in (0, 3):  # an index page
            continue
        width = max_def.bit_length()
        if head[1] == 0:
            page, n = _decompress(codec, body), head[5][1]
            at, enc = 0, head[5][2]
            if width:
                (k,) = struct.unpack_from("<I", page, 0)
                defs, at = _hybrid(page, 4, width, n), 4 + k
        else:  # v2: the levels uncompressed before the values
            v2 = head[8]
            n, enc, rep, dl = v2[1], v2[4], v2.get(6, 0), v2.get(5, 0)
            defs = _hybrid(body, rep, width, n) if width else None
            rest = body[rep + dl :]
            page, at = (_decompress(codec, rest) if v2.get(7, True) else rest), 0
        defs = defs if width else np.full(n, max_def)
        present = int((defs == max_def).sum())
        if enc in (2, 8):  # the dictionary's indices
            idx = _hybrid(page, at + 1, page[at], present)
            values += [dictionary[i] for i in idx] if isinstance(dictionary, list) else list(dictionary[idx])
        elif enc == 0:
            got = _plain(page, at, kind, present)
            values += got if isinstance(got, list) else list(got)
        else:
            raise _Unread(f"a page in encoding {enc}, which fastacgan does not read (PLAIN, dictionary)")
        levels.append(defs)
        seen += n
    return values, np.concatenate(levels) if levels else np.zeros(0, np.int64)


# ------------------------------------------------------------------------------------------------ a file


def _footer(path: Path, raw: bytes) -> dict:
    if len(raw) < 12 or raw[:4] != b"PAR1" or raw[-4:] != b"PAR1":
        raise DataError(f"--data {path}: not a Parquet file (it does not begin and end with PAR1)")
    (n,) = struct.unpack_from("<I", raw, len(raw) - 8)
    return _Thrift(raw, len(raw) - 8 - n).struct()


def _leaves(schema: list[dict]) -> dict[tuple, tuple[int, int]]:
    """Each leaf column's path -> (its Parquet type, its maximum definition level); a column in a list (a
    REPEATED field) has the type None: no image's single value."""
    out, stack = {}, []  # stack: [name, children left, its definition level, in a list]
    for el in schema[1:]:
        level = (stack[-1][2] if stack else 0) + (el.get(3, 0) != 0)  # (an OPTIONAL or REPEATED field adds one)
        listed = (stack[-1][3] if stack else False) or el.get(3) == 2
        if el.get(5):
            stack.append([el[4].decode(), el[5], level, listed])
            continue
        out[(*(s[0] for s in stack), el[4].decode())] = (None if listed else el.get(1), level)
        while stack:
            stack[-1][1] -= 1
            if stack[-1][1]:
                break
            stack.pop()
    return out


def _features(meta: dict) -> dict:
    """The features that Hugging Face's datasets keeps in the file's metadata ({column: {"_type": "Image"}, ...})."""
    kv = {k[1].decode(): k.get(2, b"").decode(errors="replace") for k in meta.get(5, [])}
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


def read_parquet(path: Path, label_col: str = "") -> tuple[list[bytes], list, list[str] | None, str]:
    """(the images' encoded bytes, their labels, the class names where the file names them, the label column)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"--data {path}: cannot read ({e})") from e
    try:
        meta = _footer(path, raw)
        leaves, features = _leaves(meta[2]), _features(meta)
        image_col, label_path = _pick(path, leaves, features, label_col)
        images, labels = [], []
        for group in meta.get(4, []):
            chunks = {tuple(p.decode() for p in c[3][3]): c[3] for c in group[1]}
            got, defs = _column(raw, chunks[image_col], leaves[image_col][1])
            if len(got) != len(defs):
                raise DataError(f"--data {path}: {len(defs) - len(got)} image(s) with no bytes in the file (stored by "
                                "path): fastacgan reads images kept in the file")  # fmt: skip
            vals, ldefs = _column(raw, chunks[label_path], leaves[label_path][1])
            if len(vals) != len(ldefs):
                raise DataError(f"--data {path}: {len(ldefs) - len(vals)} image(s) with no label in column "
                                f"{label_path[0]!r}")  # fmt: skip
            images += got
            labels += vals
    except DataError:
        raise
    except _Unread as e:
        raise DataError(f"--data {path}: {e}") from None
    except (ValueError, IndexError, KeyError, struct.error, EOFError, OSError) as e:
        raise DataError(f"--data {path}: cannot read this Parquet file ({type(e).__name__}: {e})") from e
    names = features.get(label_path[0], {}).get("names")
    return images, labels, names if isinstance(names, list) else None, label_path[0]


# ------------------------------------------------------------------------------------------------ a set


def _split_of(f: Path) -> str:
    """A shard's split: its name's first word (train-00000-of-00001.parquet), else its folder's (train/0000.parquet);
    "" for neither."""
    m = SHARD.match(f.name)
    words = ((m["split"] or "") if m else "", f.parent.name)
    return next((w.lower() for w in words if w.lower() in (*TRAIN_SPLITS, *TEST_SPLITS)), "")


def _set_name(d: Path) -> str:
    """The run's name for a set in folder d: the repository's (cifar10/plain_text/, food101/data/: its parent's)."""
    while d.name.lower() in ("data", "plain_text", "default", *TRAIN_SPLITS, *TEST_SPLITS) and d.parent != d:
        d = d.parent
    return d.name


def shards(d: Path) -> list[Path]:
    """The Parquet files in folder d, or in its folders named as splits (the Hub's converted train/0000.parquet), or
    in the one folder it holds (a repository's: cifar10/plain_text/ beside its README.md)."""
    if found := sorted(d.glob("*.parquet")):
        return found
    subs = [Path(e.path) for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]  # (no stat calls)
    if len(subs) == 1 and subs[0].name.lower() not in (*TRAIN_SPLITS, *TEST_SPLITS):
        return shards(subs[0])
    return sorted(f for s in subs if s.name.lower() in (*TRAIN_SPLITS, *TEST_SPLITS) for f in s.glob("*.parquet"))


def _catalog(files: list[Path], shown: str, name: str, label_col: str) -> Catalog:
    """The images of files (one split's), each named by its file and row (train-00000-of-00002.parquet[7])."""
    images, raw_labels, names, col, rows = [], [], None, "", []
    for f in files:
        got, labels, names, col = read_parquet(f, label_col)
        images += got
        raw_labels += labels
        rows += [f"{f}[{i}]" for i in range(len(got))]
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
    bad = next((i for i, b in enumerate(images[:64]) if not b.startswith(_IMAGE_MAGIC)), None)
    if bad is not None and images[bad][4:8] != b"ftyp":  # (AVIF)
        raise DataError(f"--data {shown}: {rows[bad]}, column {col!r}, is not an image file (it begins "
                        f"{images[bad][:8]!r})")  # fmt: skip
    return Catalog(file_safe(name.lower()), rows, labels, classes, images.__getitem__, sources=[str(f) for f in files])


def has_parquet(d: Path) -> bool:
    return bool(shards(d))


def parquet_in(d: Path, split: str, label_col: str = "") -> Catalog:
    """The split of the set whose shards folder d holds (train; test: test, else validation, ...); a folder of one
    split's shards, named as no split (0000.parquet, data-00000-of-00001.parquet), is a training set."""
    by: dict[str, list[Path]] = {}
    for f in shards(d):
        by.setdefault(_split_of(f), []).append(f)
    part = next((s for s in (TRAIN_SPLITS if split == "train" else TEST_SPLITS) if s in by), None)
    if part is None and split == "train" and not set(by) & {*TRAIN_SPLITS, *TEST_SPLITS}:
        part = next(iter(by))  # no split named: all of it
    if part is None:
        have = ", ".join(sorted(k or "no split named" for k in by))
        raise (NoTestSplit if split == "test" else DataError)(f"--data {d}: no {split} shards among its Parquet "
                                                              f"files (its splits: {have})")  # fmt: skip
    return _catalog(by[part], str(d), _set_name(d if by[part][0].parent == d else by[part][0].parent), label_col)


def parquet_file_catalog(path: Path, split: str, label_col: str = "") -> Catalog | None:
    """A .parquet given as --data, read as given (one shard of several: said); the test split: the test shards
    beside a training one. None for other files."""
    if path.suffix.lower() != ".parquet":
        return None
    mine = _split_of(path)
    if split == "test":
        if mine not in TRAIN_SPLITS or not any(_split_of(f) in TEST_SPLITS for f in shards(path.parent)):
            raise NoTestSplit(f"--data {path}: one split of its set")
        return parquet_in(path.parent, "test", label_col)
    if (m := re.search(r"-of-(\d+)\.parquet$", path.name)) and int(m[1]) > 1:
        warnings.warn(f"--data {path}: one of the {int(m[1])} files of its split; --data {path.parent} reads them "
                      "all", stacklevel=2)  # fmt: skip
    return _catalog([path], str(path), _set_name(path.parent) if mine else path.stem, label_col)
