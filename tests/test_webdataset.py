"""WebDataset shards (fastacgan/webdataset.py): tars of samples, a key's image and its .cls or .json, written here
as the webdataset library writes them. A shard was refused ("n0144_0000.jpg is not inside a class folder", or
Dogs vs. Cats' advice to sort the images by their names' first words), a folder of shards: "give one as --data"."""

import io
import json
import tarfile

import pytest
from conftest import TINY
from PIL import Image

from fastacgan import archives
from fastacgan import checkpoint as ckpt
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.train import main


def shard(path, samples, mode="w"):
    """samples: (key, red, {extension: bytes}) each; the image an 8x8 PNG of (red, 40, 9)."""
    with tarfile.open(path, mode) as tf:
        for key, red, extra in samples:
            png = io.BytesIO()
            Image.new("RGB", (8, 8), (red, 40, 9)).save(png, "PNG")
            for ext, data in ((".png", png.getvalue()), *extra.items()):
                info = tarfile.TarInfo(key + ext)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def cls(k: int) -> dict:
    return {".cls": str(k).encode(), ".json": json.dumps({"label": k, "width": 8}).encode()}


def reds(cat) -> list[int]:
    return [decode_image(cat.read_bytes(i), cat.names[i], 8, 3)[0, 0, 0].item() for i in range(len(cat))]


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "inet-wds"
    root.mkdir()
    for k in range(2):  # imagenet1k-train-0000.tar ...: 4 samples a shard, labels 2, 0, 1, 2 | 0, 1, 2, 0
        shard(root / f"inet-train-{k:04d}.tar", [(f"n0144_{k}{i}", 40 * i + k, cls((4 * k + i + 2) % 3))
                                                 for i in range(4)])  # fmt: skip
    shard(root / "inet-validation-0000.tar", [(f"v{i}", 200 + i, cls(i)) for i in range(3)])
    (root / "README.md").write_text("shards")
    return root


def test_a_folder_of_shards_and_its_held_out_shards(shards):
    said = []
    cat = open_catalog(str(shards), log=said.append)
    assert cat.name == "inet-wds" and cat.class_names == ["0", "1", "2"] and len(cat) == 8
    assert cat.labels.tolist() == [2, 0, 1, 2, 0, 1, 2, 0]
    assert reds(cat) == [0, 40, 80, 120, 1, 41, 81, 121]
    assert cat.names[5] == f"{shards / 'inet-train-0001.tar'}:n0144_11.png"
    assert said == [f"reading {shards}: 1 of 2 shards, 4 images", f"reading {shards}: 2 of 2 shards, 8 images"]
    held = open_catalog(str(shards), split="test")
    assert held.labels.tolist() == [0, 1, 2] and reds(held) == [200, 201, 202]
    one = shards / "inet-train-0001.tar"  # one shard: itself; held out, the validation shard named like it
    assert open_catalog(str(one)).labels.tolist() == [0, 1, 2, 0] and reds(open_catalog(str(one))) == [1, 41, 81, 121]
    (shards / "inet-validation-0001.tar").write_bytes((shards / "inet-validation-0000.tar").read_bytes())
    assert reds(open_catalog(str(one), split="test")) == [200, 201, 202]
    for f in shards.glob("inet-validation-*"):
        f.unlink()
    with pytest.raises(NoTestSplit, match=r"no test split among its shards \(theirs: train\)"):
        open_catalog(str(shards), split="test")


def test_json_labels_words_and_compressed_shards(tmp_path, monkeypatch):
    """Labels in the .json alone, as words (the classes in sorted order); a .tar.gz shard, held in memory (a
    compressed stream cannot seek), refused past archives.memory_budget."""
    path = tmp_path / "pets-000.tar.gz"
    shard(path, [(f"s{i}", 10 * i, {".json": json.dumps({"label": w}).encode()})
                 for i, w in enumerate(["dog", "cat", "dog"])], mode="w:gz")  # fmt: skip
    cat = open_catalog(str(path))
    assert cat.class_names == ["cat", "dog"] and cat.labels.tolist() == [1, 0, 1] and reds(cat) == [0, 10, 20]
    monkeypatch.setattr(archives, "memory_budget", lambda: 100)
    with pytest.raises(DataError, match=r"pets-000\.tar\.gz: compressed shards are held in memory, and these pass "
                       "half the memory this process may take: give plain .tar shards"):  # fmt: skip
        open_catalog(str(path))


def test_a_sample_without_a_label_and_a_bad_label_are_named(tmp_path):
    path = tmp_path / "set-000.tar"
    shard(path, [("a", 1, cls(0)), ("b", 2, {".txt": b"a caption"}), ("c", 3, cls(1))])
    with pytest.raises(DataError, match=r"set-000\.tar: 1 of its 3 images have no label \(\.cls, \.json\) beside "
                       "them, e.g. b"):  # fmt: skip
        open_catalog(str(path))
    shard(path, [("a", 1, cls(0)), ("b", 2, {".json": b'{"caption": "x"}'})])
    with pytest.raises(DataError, match=r'set-000\.tar:b\.json: no "label" in it \(its keys: caption\)'):
        open_catalog(str(path))


def test_a_run_on_shards_reads_them_in_worker_processes(shards, tmp_path):
    out = tmp_path / "run"
    args = ["--data", shards, *TINY, "--batch-size", 4, "--steps", 2, "--loader", "torch", "--workers", 1]
    assert main([str(a) for a in [*args, "--out", out]]) == 0
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])
    assert state["step"] == 2 and state["classes"] == ["0", "1", "2"]


def test_class_folders_with_json_sidecars_stay_an_archive_of_class_folders(tmp_path):
    """An archive of class folders whose images have JSON annotations beside them (LabelMe's) is no shard: its
    classes are its folders, as before."""
    path = tmp_path / "shapes.tar"
    shard(path, [(f"{c}/{i}", 10 * i, {".json": b'{"shapes": []}'}) for c in ("circle", "square") for i in range(2)])
    cat = open_catalog(str(path))
    assert cat.class_names == ["circle", "square"] and cat.labels.tolist() == [0, 0, 1, 1]
