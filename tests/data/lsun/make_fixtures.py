"""Writes the LSUN-style LMDB databases the tests read (python make_fixtures.py, with the lmdb module: `pip install
lmdb`; the tests never import it). Each database holds WebP images (lossless, 8x8, of one colour: red = the record's
number in its database, green = 10 x the category's number) keyed by 40-hex ids, as LSUN's are; bedroom_train's 150
fill several leaf pages under a branch page, and two PNGs of noise of its are large enough to take overflow pages.
named_dbs/ holds a named database (refused), caffe/ values that are not image files (refused)."""

import hashlib
import io
import shutil
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
SETS = {"bedroom_train": 150, "church_outdoor_train": 6, "bedroom_val": 3, "church_outdoor_val": 2, "test": 2}
CATEGORIES = ["bedroom", "church_outdoor", "test"]


def webp(red: int, green: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (red, green, 0)).save(out, "WEBP", lossless=True)
    return out.getvalue()


def noise(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def key(name: str, i: int) -> bytes:
    return hashlib.sha1(f"{name}/{i}".encode()).hexdigest().encode()


def write(folder: Path, records: dict[bytes, bytes], **kw) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    env = lmdb.open(str(folder), map_size=1 << 22, **kw)
    with env.begin(write=True) as txn:
        for k, v in records.items():
            txn.put(k, v)
    env.close()


for name, n in SETS.items():
    green = 10 * next(k for k, c in enumerate(CATEGORIES) if name.startswith(c))
    records = {key(name, i): webp(i, green) for i in range(n)}
    if name == "bedroom_train":
        records |= {key(name, 1000 + i): noise(i) for i in range(2)}
    write(HERE / f"{name}_lmdb", records)

env = lmdb.open(str(HERE / "named_dbs"), map_size=1 << 22, max_dbs=2)
shutil.rmtree(HERE / "named_dbs")
env = lmdb.open(str(HERE / "named_dbs"), map_size=1 << 22, max_dbs=2)
with env.begin(write=True) as txn:
    txn.put(b"a" * 40, webp(1, 1), db=env.open_db(b"images", txn=txn))
env.close()
write(HERE / "caffe", {key("caffe", i): b"\x08\x03\x10\x20\x18\x20\x22" + bytes(30) for i in range(3)})
for lock in HERE.glob("*/lock.mdb"):
    lock.write_bytes(b"")  # (the readers' table: nothing of the data)
