"""LSUN's LMDB databases, read without the lmdb module: `bedroom_train_lmdb/data.mdb` (and `lock.mdb`), as LSUN's
download.py leaves them unzipped, each a category's images (WebP files) keyed by their ids. `--data
bedroom_train_lmdb` (one category: one class), or the folder holding several (`church_outdoor_train_lmdb`,
`classroom_train_lmdb` ...: the categories are the classes, named as torchvision's LSUN names them, sorted; the
databases named as a validation split, `bedroom_val_lmdb`, held out; `test_lmdb`, unlabelled, passed over).

The file is read as LMDB 0.9 writes it on a 64-bit little-endian machine: two meta pages (the newer transaction's
names the main database's root page), branch pages of child page numbers, leaf pages of nodes (key, then the value
or, for a value too large for the page, the number of its first overflow page). Only the values' places in the file
are listed; each image is read from there when it is decoded (worker processes too)."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import IMAGE_MAGIC, TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, Every, NoTestSplit, Spans, folder_name
from .splits import files_of, held_out_sibling, split_word

HEADER = 16  # a page's header: its number (8 bytes), padding, flags, the ends of its free space (2 bytes each)
BRANCH, LEAF, OVERFLOW, META, LEAF2 = 0x01, 0x02, 0x04, 0x08, 0x20  # page flags
BIGDATA, SUBDATA, DUPDATA = 0x01, 0x02, 0x04  # leaf node flags
MAGIC, NO_PAGE = 0xBEEFC0DE, 2**64 - 1


def _meta(mm, at: int) -> tuple[int, int, int, int, int] | None:
    """(page size, the main database's root page, its records, the transaction, its flags) of the meta page at
    offset `at`, or None where there is none."""
    if len(mm) < at + 152 or not struct.unpack_from("<H", mm, at + 10)[0] & META:
        return None
    if struct.unpack_from("<II", mm, at + HEADER) != (MAGIC, 1):  # (the magic number, LMDB's data version)
        return None
    psize = struct.unpack_from("<I", mm, at + 40)[0]  # (kept in the free database's padding)
    flags, _depth, _branches, _leaves, _overflows, entries, root = struct.unpack_from("<HHQQQQQ", mm, at + 92)
    return psize, root, entries, struct.unpack_from("<Q", mm, at + 144)[0], flags


def _main_db(mm, path: Path) -> tuple[int, int, int]:
    """(page size, the main database's root page, its records) from the newer of the two meta pages."""
    first = _meta(mm, 0)
    metas = [m for m in (first, _meta(mm, first[0] if first else 4096)) if m is not None]
    psize, root, entries, _, flags = max(metas, key=lambda m: m[3], default=(0, 0, 0, 0, 0))
    if psize < 512 or psize & (psize - 1):
        raise DataError(f"{path}: not an LMDB database (no meta page of LMDB 0.9 on a 64-bit machine)")
    if flags & 0x04:  # MDB_DUPSORT: several values a key
        raise DataError(f"{path}: an LMDB database of several values a key, which fastacgan does not read")
    return psize, root, entries


def _walk(mm, path: Path, log: Callable[[str], None]) -> tuple[list[str], list[int], list[int]]:
    """read_lmdb's listing of the main database's tree, in key order."""
    psize, root, entries = _main_db(mm, path)
    keys, offsets, sizes, due = [], [], [], Every()
    stack, left = [] if root == NO_PAGE else [root], len(mm) // psize  # (a damaged tree may loop: pages left)
    while stack:
        page, left = stack.pop(), left - 1
        at = page * psize
        if at + psize > len(mm) or struct.unpack_from("<Q", mm, at)[0] != page or left < 0:
            raise DataError(f"{path}: page {page} is not where its database says (a file cut short or damaged)")
        flags, lower = struct.unpack_from("<HH", mm, at + 10)
        ptrs = struct.unpack_from(f"<{(lower - HEADER) // 2}H", mm, at + HEADER)
        if flags & BRANCH:  # each node: the child's page number in its first 6 bytes, then its key
            kids = [lo | hi << 16 | top << 32 for lo, hi, top in (struct.unpack_from("<HHH", mm, at + p)
                                                                   for p in ptrs)]  # fmt: skip
            stack += reversed(kids)  # (popped in key order)
            continue
        if not flags & LEAF or flags & LEAF2:
            raise DataError(f"{path}: page {page} is neither a branch nor a leaf of keys and values")
        for p in ptrs:
            lo, hi, node, ksize = struct.unpack_from("<HHHH", mm, at + p)
            size, start = lo | hi << 16, at + p + 8 + ksize
            if node & (SUBDATA | DUPDATA):
                raise DataError(f"{path}: an LMDB database of named databases or several values a key, which "
                                "fastacgan does not read")  # fmt: skip
            if node & BIGDATA:  # the value fills overflow pages: the first one's number
                start = struct.unpack_from("<Q", mm, start)[0] * psize + HEADER
            if start + size > len(mm):
                raise DataError(f"{path}: a value past the end of the file (a file cut short)")
            keys.append(mm[at + p + 8 : at + p + 8 + ksize].decode("utf-8", errors="replace"))
            offsets.append(start)
            sizes.append(size)
        if due():
            log(f"listing {path}: {len(keys):,} of {entries:,} images")
    if keys and not (head := mm[offsets[0] : offsets[0] + 8]).startswith(IMAGE_MAGIC):
        raise DataError(f"{path}: its values are not image files (the first begins {head!r}; LSUN's are WebP "
                        "images): fastacgan reads databases of encoded images")  # fmt: skip
    return keys, offsets, sizes


def read_lmdb(path: Path, log: Callable[[str], None]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the keys, their values' offsets in the file, their sizes) of the main database of an LMDB file, in key
    order; a progress line every few seconds."""
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as e:  # (an empty file)
            raise DataError(f"{path}: not an LMDB database ({e})") from e
    with mm:
        try:
            keys, offsets, sizes = _walk(mm, path, log)
        except struct.error as e:  # (a node or a page past where the file ends: a damaged database)
            raise DataError(f"{path}: a damaged LMDB database ({e})") from e
    return keys, np.asarray(offsets, dtype=np.int64), np.asarray(sizes, dtype=np.int64)


def _databases(d: Path) -> list[Path]:
    """The LMDB folders of folder d: d itself where it holds data.mdb, else its folders named ..._lmdb that do."""
    if (d / "data.mdb").is_file():
        return [d]
    return sorted(p for p in d.iterdir() if p.name.lower().endswith("lmdb") and (p / "data.mdb").is_file())


def has_lsun(d: Path) -> bool:
    return bool(_databases(d))


def category(db: Path) -> str:
    """A database's category: its folder's name less `_lmdb` and its split (church_outdoor_train_lmdb:
    church_outdoor, as torchvision's LSUN names its classes church_outdoor_train), "" for none (test_lmdb)."""
    words = db.name.removesuffix("_lmdb").removesuffix("lmdb").split("_")
    return "_".join(w for w in words if w.lower() not in (*TRAIN_SPLITS, *TEST_SPLITS))


def lsun_in(d: Path, split: str, log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """The LSUN databases of folder d (_databases) of `split` (one given alone is the training split), a class a
    category."""
    dbs = _databases(d)
    if unlabelled := [db for db in dbs if not category(db)]:  # LSUN's test_lmdb: every category's, unlabelled
        log(f"note: {', '.join(db.name for db in unlabelled)} holds images of no category (LSUN's test set): "
            "passed over")  # fmt: skip
        dbs = [db for db in dbs if db not in unlabelled]
        if not dbs:
            raise DataError(f"--data {d}: LSUN's test set alone, of no category: no labels to train an AC-GAN on; give "
                            "the categories' databases (bedroom_train_lmdb ...)")  # fmt: skip
    if len(dbs) == 1 and dbs[0] == d:  # held out: the database named as its test split beside it (bedroom_val_lmdb)
        if split == "train":
            mine = dbs
        elif (beside := held_out_sibling(d)) is not None and has_lsun(beside):
            log(f"--data {d}: held out: {beside}, beside it")
            cat = lsun_in(beside, "train", log)
            cat.origin = str(beside)
            return cat
        else:
            raise NoTestSplit(f"--data {d}: one LMDB database, and none beside it named as its held-out split "
                              "(bedroom_val_lmdb beside bedroom_train_lmdb)")  # fmt: skip
    else:
        mine = files_of(dbs, split, d, lambda db: split_word(db.name.removesuffix("_lmdb")) or "", "LMDB databases")
    classes = sorted({category(db) for db in dbs})
    keys, which, offsets, sizes, labels = [], [], [], [], []
    for k, db in enumerate(mine):
        got, at, size = read_lmdb(db / "data.mdb", log)
        if not got:
            raise DataError(f"--data {d}: {db / 'data.mdb'} holds no images")
        keys += [f"{db.name}:{key}" for key in got]
        which.append(np.full(len(got), k, dtype=np.int32))
        offsets.append(at)
        sizes.append(size)
        labels.append(np.full(len(got), classes.index(category(db)), dtype=np.int64))
        if len(mine) > 1:
            log(f"reading {d}: {k + 1} of {len(mine)} databases, {len(keys):,} images")
    files = [str(db / "data.mdb") for db in mine]
    reader = Spans(files, np.concatenate(which), np.concatenate(offsets), np.concatenate(sizes))
    name = category(mine[0]) if len(dbs) == 1 else folder_name(d)
    return Catalog(name, keys, np.concatenate(labels), classes, reader, sources=files)
