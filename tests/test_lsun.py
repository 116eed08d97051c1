"""LSUN's LMDB databases (fastacgan/lmdb_sets.py), read without the lmdb module. tests/data/lsun/ holds databases
written by the lmdb module (make_fixtures.py says how): WebP images of red = the record's number, green = 10 x the
category's number, keyed by 40-hex ids; bedroom_train's 152 records fill a branch page, four leaf pages and, for two
larger PNGs, overflow pages."""

import hashlib
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from fastacgan import checkpoint as ckpt
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.lmdb_sets import read_lmdb
from fastacgan.train import main

LSUN = Path(__file__).parent / "data" / "lsun"


def key(name: str, i: int) -> str:
    return hashlib.sha1(f"{name}/{i}".encode()).hexdigest()  # (make_fixtures.py's keys)


def pixel(cat, i: int) -> list[int]:
    return decode_image(cat.read_bytes(i), cat.names[i], 8, 3)[0, 0].tolist()


@pytest.fixture
def lsun(tmp_path) -> Path:
    """The folder LSUN's download.py and unzip leave: <category>_<split>_lmdb/ (data.mdb, lock.mdb), test_lmdb/."""
    root = tmp_path / "lsun"
    for db in sorted(LSUN.glob("*_lmdb")):
        shutil.copytree(db, root / db.name)
    return root


def test_the_records_of_a_database_in_key_order_as_the_lmdb_module_lists_them():
    """Keys in order (as an LMDB cursor gives them), each value read where the listing says, across a branch page,
    leaf pages and the overflow pages of values larger than a page."""
    keys, offsets, sizes = read_lmdb(LSUN / "bedroom_train_lmdb" / "data.mdb", print)
    want = sorted([key("bedroom_train", i) for i in range(150)] + [key("bedroom_train", 1000 + i) for i in range(2)])
    assert keys == want
    raw = (LSUN / "bedroom_train_lmdb" / "data.mdb").read_bytes()
    values = {k: raw[o : o + s] for k, o, s in zip(keys, offsets, sizes)}
    big = [values[key("bedroom_train", 1000 + i)] for i in range(2)]
    assert all(v.startswith(b"\x89PNG") and v.endswith(b"IEND\xaeB`\x82") and len(v) > 4096 for v in big)
    assert all(values[key("bedroom_train", i)][8:12] == b"WEBP" for i in range(150))


def test_lsuns_categories_as_classes_and_their_validation_databases_held_out(lsun):
    """--data lsun/ (bedroom_train_lmdb, church_outdoor_train_lmdb, their _val_lmdb, test_lmdb): was "class folder
    bedroom_train_lmdb holds no images; it holds .mdb (2)", with LSUN's export command. Now the categories are the
    classes (torchvision's LSUN(classes="train")), the _val databases held out, test_lmdb (no category) passed over."""
    said = []
    cat = open_catalog(str(lsun), log=said.append)
    assert cat.name == "lsun" and cat.class_names == ["bedroom", "church_outdoor"] and len(cat) == 158
    assert cat.labels.tolist() == [0] * 152 + [1] * 6
    assert cat.names[0] == f"bedroom_train_lmdb:{min(key('bedroom_train', i) for i in range(150))}"
    first = {k: i for i, k in enumerate(key("bedroom_train", i) for i in range(150))}[cat.names[0].split(":")[1]]
    assert pixel(cat, 0) == [first, 0, 0]
    church = sorted(range(6), key=lambda i: key("church_outdoor_train", i))
    assert [pixel(cat, 152 + k) for k in range(6)] == [[i, 10, 0] for i in church]
    assert said[0] == "note: test_lmdb holds images of no category (LSUN's test set): passed over"
    for split in ("test", "held"):
        held = open_catalog(str(lsun), split=split)
        assert held.class_names == ["bedroom", "church_outdoor"] and held.labels.tolist() == [0, 0, 0, 1, 1]
        assert sorted(pixel(held, i)[0] for i in range(3)) == [0, 1, 2]


def test_one_database_given_alone_is_one_class_its_validation_database_held_out(lsun):
    for data in (lsun / "church_outdoor_train_lmdb", lsun / "church_outdoor_train_lmdb" / "data.mdb"):
        cat = open_catalog(str(data))
        assert cat.name == "church_outdoor" and cat.class_names == ["church_outdoor"] and len(cat) == 6
        held = open_catalog(str(data), split="test")  # (the _val database beside it)
        assert held.origin == str(lsun / "church_outdoor_val_lmdb") and held.class_names == ["church_outdoor"]
        assert sorted(pixel(held, i) for i in range(2)) == [[0, 10, 0], [1, 10, 0]]
    shutil.rmtree(lsun / "church_outdoor_val_lmdb")
    for data in (lsun / "church_outdoor_train_lmdb", lsun / "church_outdoor_train_lmdb" / "data.mdb"):
        with pytest.raises(NoTestSplit, match=r"church_outdoor_train_lmdb: one LMDB database, and none beside it "
                           r"named as its held-out split \(bedroom_val_lmdb beside bedroom_train_lmdb\)"):  # fmt: skip
            open_catalog(str(data), split="test")


def test_a_run_on_lsun_reads_its_images_in_worker_processes(lsun, tmp_path):
    out = tmp_path / "run"
    args = ["--data", lsun, *TINY, "--batch-size", 8, "--steps", 2, "--loader", "torch", "--workers", 2, "--out", out]
    assert main([str(a) for a in args]) == 0
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])
    assert state["step"] == 2 and state["classes"] == ["bedroom", "church_outdoor"]


def test_databases_it_does_not_read_are_named(tmp_path, lsun):
    """Named databases, values that are not image files (Caffe's Datum records), a file that is no LMDB database,
    one cut short, and a zipped database: each refused with what it is."""
    with pytest.raises(DataError, match=r"named_dbs/data\.mdb: an LMDB database of named databases or several "
                       r"values a key, which fastacgan does not read"):  # fmt: skip
        open_catalog(str(LSUN / "named_dbs"))
    with pytest.raises(DataError, match=r"caffe/data\.mdb: its values are not image files \(the first begins "
                       r"b'\\x08\\x03\\x10 \\x18 \"\\x00'; LSUN's are WebP images\)"):  # fmt: skip
        open_catalog(str(LSUN / "caffe"))
    junk = tmp_path / "junk_lmdb"
    junk.mkdir()
    (junk / "data.mdb").write_bytes(bytes(64))
    with pytest.raises(DataError, match=r"junk_lmdb/data\.mdb: not an LMDB database \(no meta page of LMDB 0\.9"):
        open_catalog(str(junk))
    cut = tmp_path / "cut_lmdb"
    cut.mkdir()
    (cut / "data.mdb").write_bytes((LSUN / "bedroom_train_lmdb" / "data.mdb").read_bytes()[:20000])
    with pytest.raises(DataError, match=r"cut_lmdb/data\.mdb: (page \d+ is not where its database says|a value "
                       r"past the end of the file) \(a file cut short"):  # fmt: skip
        open_catalog(str(cut))
    loop = tmp_path / "loop_lmdb"  # a damaged tree: the root branch page names itself as its first child
    loop.mkdir()
    raw = bytearray((LSUN / "bedroom_train_lmdb" / "data.mdb").read_bytes())
    metas = [struct.unpack_from("<QQ", raw, at + 128) + (at,) for at in (0, 4096)]  # (root, transaction)
    root = max(metas, key=lambda m: m[1])[0]
    first = struct.unpack_from("<H", raw, root * 4096 + 16)[0]  # the offset of the root's first node
    struct.pack_into("<HHH", raw, root * 4096 + first, root & 0xFFFF, root >> 16 & 0xFFFF, root >> 32)
    (loop / "data.mdb").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"loop_lmdb/data\.mdb: page \d+ is not where its database says"):
        open_catalog(str(loop))
    struct.pack_into("<H", raw, root * 4096 + 12, 4)  # its end of pointers before its header's end: a traceback
    (loop / "data.mdb").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"loop_lmdb/data\.mdb: a damaged LMDB database \("):
        open_catalog(str(loop))
    with pytest.raises(DataError, match=r"test_lmdb: LSUN's test set alone, of no category: no labels to train an "
                       r"AC-GAN on"):  # fmt: skip
        open_catalog(str(lsun / "test_lmdb"))
    with zipfile.ZipFile(tmp_path / "bedroom_train_lmdb.zip", "w") as zf:  # as LSUN's download.py fetches them
        for f in ("data.mdb", "lock.mdb"):
            zf.write(lsun / "bedroom_train_lmdb" / f, f"bedroom_train_lmdb/{f}")
    with pytest.raises(DataError, match=r"the archive holds no images .*; it holds \.mdb \(2\) \(\.mdb: data\.mdb is "
                       r"an LMDB database, as LSUN ships its images: read unzipped"):  # fmt: skip
        open_catalog(str(tmp_path / "bedroom_train_lmdb.zip"))


def test_an_image_folder_of_class_folders_is_not_listed_for_databases(tmp_path, monkeypatch):
    """Whether --data holds LMDB databases is asked of its folders named ..._lmdb only: ImageNet's 1,000 class
    folders are not each looked into for a data.mdb."""
    for c in ("n01440764", "n01443537", "n01484850"):
        (tmp_path / "inet" / c).mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (8, 8)).save(tmp_path / "inet" / c / "a.png")
    asked = []
    real = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda p: asked.append(p.name) or real(p))
    assert open_catalog(str(tmp_path / "inet")).class_names == ["n01440764", "n01443537", "n01484850"]
    assert asked.count("data.mdb") == 1  # (--data's own)
    assert np.array_equal(open_catalog(str(tmp_path / "inet")).labels, [0, 1, 2])


def test_its_name_given_as_data_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"--data lsun: no such file or folder; fastacgan downloads nothing: lsun is "
                       r"read from a downloaded copy, its folder of LMDB databases \(bedroom_train_lmdb"):  # fmt: skip
        open_catalog("lsun")
