"""The reference implementations' data sets as torchvision and Keras store them (fastacgan/datasets.py): CIFAR
python batches, idx files, .npz; written here in those formats, then read back through --data."""

import csv
import gzip
import io
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.datasets import IDX_CLASSES
from fastacgan.decode import decode_all, decode_image
from fastacgan.sample import main as sample_main
from fastacgan.train import main

CIFAR10_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did when CIFAR's files were made: every string a byte string (opcodes
    SHORT_BINSTRING / BINSTRING), numpy's rebuild function under its numpy 1 module name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + raw if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + raw
        )
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_py2_str

    @classmethod
    def dumps(cls, obj) -> bytes:
        buf = io.BytesIO()
        cls(buf, protocol=2).dump(obj)
        return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_batch(rng, n, label_key=b"labels", classes=10, py2=True) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A batch file as CIFAR's python version has it: a Python 2 pickle of a dict with byte-string keys, the images
    as uint8 [N, 3072] rows (the red plane, then green, then blue, each row-major), the labels a list. py2=False:
    Python 3's protocol-2 pickle of the same (bytes through _codecs.encode)."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, classes, n)
    blob = {b"batch_label": b"training batch", label_key: labels.tolist(), b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}  # fmt: skip
    return (Py2Pickler.dumps(blob) if py2 else pickle.dumps(blob, protocol=2)), data, labels


@pytest.fixture
def cifar10(tmp_path):
    """torchvision's root holding cifar-10-batches-py (2 batches of 12), and the expected images and labels."""
    rng = np.random.default_rng(0)
    d = tmp_path / "root" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    datas, labels = [], []
    for k in (1, 2):
        blob, data, lab = cifar_batch(rng, 12)
        (d / f"data_batch_{k}").write_bytes(blob)
        datas.append(data)
        labels.append(lab)
    (d / "test_batch").write_bytes(cifar_batch(rng, 5)[0])  # the test split, read by split="test" only
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 12, b"num_vis": 3072}
    (d / "batches.meta").write_bytes(Py2Pickler.dumps(meta))
    return d, np.concatenate(datas), np.concatenate(labels)


def idx_bytes(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx_set(d, n=30, gz=True, seed=0, prefix="train"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    d.mkdir(parents=True, exist_ok=True)
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = idx_bytes(arr)
        (d / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)
    return images, labels


def test_cifar10_from_the_folder_its_root_and_the_archive(cifar10, tmp_path):
    d, data, labels = cifar10
    want = torch.from_numpy(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy())
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    renamed = tmp_path / "download.tgz"  # found by its members, whatever its name
    shutil.copy(archive, renamed)
    for where in (d, d.parent, archive, renamed):
        cat = open_catalog(str(where))
        assert cat.name == "cifar10" and cat.class_names == CIFAR10_NAMES and len(cat) == 24
        assert torch.equal(cat.images, want) and np.array_equal(cat.labels, labels)
        assert cat.read is None and "data_batch_2[0]" in cat.names[12]
    # pixel (row 3, column 5) of image 7 is byte 3*32+5 of each colour plane
    assert cat.images[7, 3, 5].tolist() == [int(data[7, c * 1024 + 3 * 32 + 5]) for c in range(3)]
    sub = open_catalog(str(d), classes="cat,dog")
    assert sub.class_names == ["cat", "dog"] and set(sub.labels.tolist()) <= {0, 1}
    assert len(sub) == int(np.isin(labels, [3, 5]).sum())


def test_cifar100_uses_the_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    blob, data, labels = cifar_batch(rng, 10, b"fine_labels", classes=100, py2=False)
    (d / "train").write_bytes(blob)
    names = [f"class{k}".encode() for k in range(100)]
    (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": names, b"coarse_label_names": names[:20]}, 2))
    cat = open_catalog(str(tmp_path))
    assert cat.name == "cifar100" and len(cat.class_names) == 100 and cat.class_names[7] == "class7"
    assert np.array_equal(cat.labels, labels) and cat.images.shape == (10, 32, 32, 3)


class _Payload:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_a_batch_that_would_run_code_is_refused(cifar10, tmp_path, monkeypatch):
    d, _, _ = cifar10
    monkeypatch.chdir(tmp_path)
    (d / "data_batch_2").write_bytes(pickle.dumps({b"data": _Payload(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="data_batch_2: not a readable data batch, as CIFAR's.*system"):
        open_catalog(str(d))
    assert not (tmp_path / "pwned").exists()
    (d / "data_batch_2").write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(DataError, match="data_batch_2: no 'data' entry"):
        open_catalog(str(d))
    (d / "data_batch_2").write_bytes(b"\x80\x02}q\x00(")  # cut short
    with pytest.raises(DataError, match="data_batch_2: not a readable data batch, as CIFAR's"):
        open_catalog(str(d))


@pytest.mark.parametrize("layout", ["root", "set", "raw", "plain"])
def test_idx_sets_in_torchvision_and_keras_layouts(tmp_path, layout):
    raw = {"root": "MNIST/raw", "set": "MNIST/raw", "raw": "MNIST/raw", "plain": "mnist"}[layout]
    images, labels = write_idx_set(tmp_path / raw, gz=layout != "plain")
    where = {"root": tmp_path, "set": tmp_path / "MNIST", "raw": tmp_path / raw, "plain": tmp_path / raw}[layout]
    cat = open_catalog(str(where))
    assert cat.name == "mnist" and cat.class_names == [str(d) for d in range(10)]
    assert torch.equal(cat.images, torch.from_numpy(images)[..., None]) and np.array_equal(cat.labels, labels)


def test_fashion_mnist_gets_its_class_names(tmp_path):
    write_idx_set(tmp_path / "fashion-mnist")  # Keras' folder name
    assert open_catalog(str(tmp_path / "fashion-mnist")).class_names == IDX_CLASSES["fashionmnist"]
    write_idx_set(tmp_path / "FashionMNIST" / "raw")  # torchvision's
    assert open_catalog(str(tmp_path / "FashionMNIST")).class_names[0] == "T-shirt/top"


def test_qmnist_as_torchvision_downloads_it(tmp_path):
    """torchvision's QMNIST/raw: qmnist-train-images-idx3-ubyte.gz beside qmnist-train-labels-idx2-int.gz (int32
    rows of 8: the digit, then its NIST writer, series and more); qmnist-test-* the test split (60,000: MNIST's
    10,000 and 50,000 more). It was refused: "class folder QMNIST/raw holds no images", and the images file given
    itself: "no qmnist-train-labels-idx1-ubyte beside it". The labels are the digits, as torchvision's targets."""
    raw = tmp_path / "data" / "QMNIST" / "raw"
    raw.mkdir(parents=True)
    rng, want = np.random.default_rng(3), {}
    for split, n in (("train", 30), ("test", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        rows = np.zeros((n, 8), ">i4")
        rows[:, 0], rows[:, 1:] = rng.integers(0, 10, n), rng.integers(0, 70000, (n, 7))  # (the rest: not labels)
        head = b"\x00\x00\x0c\x02" + struct.pack(">2I", n, 8)  # int32, 2 dimensions
        (raw / f"qmnist-{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (raw / f"qmnist-{split}-labels-idx2-int.gz").write_bytes(gzip.compress(head + rows.tobytes()))
        want[split] = images, rows[:, 0].astype(np.int64)
    for data in (tmp_path / "data", raw.parent, raw, raw / "qmnist-train-images-idx3-ubyte.gz"):
        for split in ("train", "test"):
            cat = open_catalog(str(data), split=split)
            images, labels = want[split]
            assert cat.name == "qmnist" and cat.class_names == [str(k) for k in range(10)]
            assert cat.labels.tolist() == labels.tolist()
            assert torch.equal(cat.images[..., 0], torch.from_numpy(images))
    (raw / "qmnist-test-images-idx3-ubyte.gz").unlink()
    with pytest.raises(NoTestSplit, match=r"no qmnist-test-images-idx3-ubyte\[\.gz\] \(QMNIST's test split\)"):
        open_catalog(str(raw.parent), split="test")


def test_damaged_idx_files_are_named(tmp_path):
    d = tmp_path / "MNIST" / "raw"
    images, _ = write_idx_set(d, gz=False)
    path = d / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: .* bytes, but its header .*truncated"):
        open_catalog(str(d))
    path.write_bytes(b"\x00\x00\x0d\x03" + idx_bytes(images)[4:])  # a float32 header: 4 bytes a value
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: 23536 bytes, but its header \[30, 28, 28\] needs "
                       "94096: truncated or damaged"):  # fmt: skip
        open_catalog(str(d))
    path.write_bytes(b"\x00\x00\x0a\x03" + idx_bytes(images)[4:])  # no type of the idx format
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: not an idx file \(its first bytes are 00000a03\)"):
        open_catalog(str(d))
    path.write_bytes(idx_bytes(images[:29]))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: 30 labels for 29 images"):
        open_catalog(str(d))
    (d / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="no train-labels-idx1-ubyte"):
        open_catalog(str(d))


def test_keras_npz(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8), rng.integers(0, 10, 9).astype(np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    cat = open_catalog(str(tmp_path / "mnist.npz"))
    assert cat.name == "mnist" and torch.equal(cat.images[..., 0], torch.from_numpy(x)) and len(cat.class_names) == 10
    np.savez(tmp_path / "other.npz", images=x)
    with pytest.raises(DataError, match=r"other.npz: an .npz needs x_train and y_train arrays, or train_images and "
                       r"train_labels \(it has images\)"):  # fmt: skip
        open_catalog(str(tmp_path / "other.npz"))
    # MedMNIST's: train_images [N, H, W(, 3)], train_labels [N, 1], val_..., test_... (it was "needs x_train")
    rgb = rng.integers(0, 256, (9, 28, 28, 3), dtype=np.uint8)
    np.savez(tmp_path / "bloodmnist.npz", train_images=rgb, train_labels=y[:, None], val_images=rgb[:1],
             val_labels=y[:1, None], test_images=rgb[:4], test_labels=y[:4, None])  # fmt: skip
    med = open_catalog(str(tmp_path / "bloodmnist.npz"))
    assert med.name == "bloodmnist" and torch.equal(med.images, torch.from_numpy(rgb))
    assert [med.class_names[k] for k in med.labels] == [str(v) for v in y]
    med_test = open_catalog(str(tmp_path / "bloodmnist.npz"), split="test")
    assert torch.equal(med_test.images, torch.from_numpy(rgb[:4]))
    # labels of another set: classes are the values found, in order
    np.savez(tmp_path / "marks.npz", x_train=x, y_train=np.array([5, 9, 5, 7, 9, 5, 7, 7, 9]))
    marks = open_catalog(str(tmp_path / "marks.npz"))
    assert marks.class_names == ["5", "7", "9"] and marks.labels.tolist() == [0, 2, 0, 1, 2, 0, 1, 1, 2]
    # the other ways labels are saved: one-hot rows (Keras' to_categorical), whole floats, [N, 1], class names
    for y_other in (np.eye(10, dtype=np.float32)[y], y.astype(np.float64), y[:, None].astype(np.int32)):
        (tmp_path / "alt").mkdir(exist_ok=True)
        np.savez(tmp_path / "alt" / "mnist.npz", x_train=x, y_train=y_other)
        alt = open_catalog(str(tmp_path / "alt" / "mnist.npz"))
        assert alt.class_names == cat.class_names and np.array_equal(alt.labels, cat.labels)
    np.savez(tmp_path / "names.npz", x_train=x[:3], y_train=np.array(["dog", "cat", "dog"]))
    names = open_catalog(str(tmp_path / "names.npz"))
    assert names.class_names == ["cat", "dog"] and names.labels.tolist() == [1, 0, 1]
    # and what is refused, naming the labels: fractions (they were truncated to class numbers), NaN, rows that are
    # not one-hot, a count that differs
    for bad, match in ((np.array([0, 0.5, 1.0]), "label 1 is 0.5"), (np.array([0, np.nan, 1]), "label 1 is nan"),
                       (np.array([[0.2, 0.8], [1, 0], [0, 1]]), r"labels \[3, 2\] are not one-hot rows"),
                       (np.arange(4), "4 labels for 3 images")):  # fmt: skip
        np.savez(tmp_path / "bad.npz", x_train=x[:3], y_train=bad)
        with pytest.raises(DataError, match=f"bad.npz:y_train: .*{match}"):
            open_catalog(str(tmp_path / "bad.npz"))
    # images that are not uint8 [N, H, W(, C)]: the two most common ways, said with how to save them so
    floats = x[:3, None].repeat(3, 1) / np.float32(255)  # [3, 3, 28, 28] in [0, 1]: normalised, channels first
    for bad, fix in ((x[:3] / 255.0, "(x * 255).round().astype('uint8') for values in [0, 1])"),
                     (x[:3, None].repeat(3, 1), "x.transpose(0, 2, 3, 1) for channels first)"),
                     (floats, "(x * 255).round().astype('uint8') for values in [0, 1], and x.transpose(0, 2, 3, 1) "
                      "for channels first)"), (x[:3].astype(np.int64), "found int64 [3, 28, 28]")):  # fmt: skip
        np.savez(tmp_path / "bad.npz", x_train=bad, y_train=y[:3])
        with pytest.raises(DataError) as e:
            open_catalog(str(tmp_path / "bad.npz"))
        assert str(e.value).startswith(f"{tmp_path / 'bad.npz'}:x_train: expected uint8 images [N, H, W] or [N, H, W, "
                                       "1 or 3], found ") and str(e.value).endswith(fix)  # fmt: skip


def test_a_folder_of_npy_files(tmp_path, monkeypatch, capsys):
    """Quick, Draw!'s numpy bitmaps (cat.npy, or full_numpy_bitmap_cat.npy as its tutorials save them: uint8
    [N, 784], 28x28 drawings), one file a class, and an .npz's arrays saved one by one (x_train.npy, y_train.npy)
    were "no class folders found". Read as classes (--classes picks the files, applied before any is read) and as
    an .npz's pairs; a selection over half the memory the process may take is refused, naming --classes; one .npy
    given as --data names its folder."""
    import fastacgan.npy_folder as npy_folder

    rng = np.random.default_rng(5)
    draw = tmp_path / "quickdraw"
    draw.mkdir()
    bitmaps = {c: rng.integers(0, 256, (n, 784), dtype=np.uint8) for c, n in (("cat", 7), ("dog", 5), ("The Eiffel "
               "Tower", 3))}  # fmt: skip
    for c, x in bitmaps.items():
        np.save(draw / f"full_numpy_bitmap_{c}.npy" if c != "dog" else draw / "dog.npy", x)
    said = []
    cat = open_catalog(str(draw), log=said.append)
    assert cat.class_names == ["The Eiffel Tower", "cat", "dog"] and cat.name == "quickdraw" and len(cat) == 15
    assert cat.images.shape == (15, 28, 28, 1) and said == [f"reading {draw}: 3 of 3 .npy files (11 KiB)"]
    for k, c in enumerate(cat.class_names):
        assert torch.equal(cat.images[torch.from_numpy(cat.labels == k), ..., 0].reshape(-1, 784),
                           torch.from_numpy(bitmaps[c])), c  # fmt: skip
    loaded = []
    real_load = npy_folder._load
    monkeypatch.setattr(npy_folder, "_load", lambda p: loaded.append(p.name) or real_load(p))
    picked = open_catalog(str(draw), classes="dog,cat")
    assert picked.class_names == ["dog", "cat"] and picked.labels.tolist() == [0] * 5 + [1] * 7
    assert sorted(loaded) == ["dog.npy", "full_numpy_bitmap_cat.npy"]  # the Eiffel Tower's file was not opened
    assert open_catalog(str(draw), classes="1:3").class_names == ["cat", "dog"]  # (a range: applied once)
    with pytest.raises(NoTestSplit):
        open_catalog(str(draw), split="test")
    monkeypatch.setattr(npy_folder, "host_memory_available", lambda: 20_000)  # 11 KiB is over half of it
    with pytest.raises(DataError, match=r"quickdraw: the 3 files' images take 11 KiB, more than half of the 20 KiB "
                       r"of memory this process may take; --classes picks the classes \(files\) to train on, e.g. "
                       r"--classes The Eiffel Tower,cat,dog"):  # fmt: skip
        open_catalog(str(draw))
    assert len(open_catalog(str(draw), classes="dog")) == 5  # 3.8 KiB fits
    monkeypatch.undo()
    np.save(draw / "snail.npy", rng.integers(0, 256, (2, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match=r"images differ in shape \(cat: \[28, 28\], snail: \[32, 32\]\)"):
        open_catalog(str(draw), classes="cat,snail")
    np.save(draw / "snail.npy", rng.random((2, 784)))
    with pytest.raises(DataError, match=r"snail.npy: expected images, uint8 \[N, H, W\] .* found float64 \[2, 784\]"):
        open_catalog(str(draw), classes="snail")
    with pytest.raises(DataError, match=r"an .npy file is read in its folder: --data .*quickdraw, where each"):
        open_catalog(str(draw / "dog.npy"))
    # an .npz's arrays one file each: the training pair, the test pair held out
    pairs = tmp_path / "arrays"
    pairs.mkdir()
    x, y = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), np.array([0, 1, 2, 0, 1, 2])
    for name, arr in (("x_train", x), ("y_train", y), ("x_test", x[:2]), ("y_test", y[:2])):
        np.save(pairs / f"{name}.npy", arr)
    train, test = open_catalog(str(pairs)), open_catalog(str(pairs), split="test")
    assert torch.equal(train.images, torch.from_numpy(x)) and train.labels.tolist() == y.tolist() and len(test) == 2
    assert open_catalog(str(pairs), classes="2").labels.tolist() == [0, 0]  # --classes applies to pairs too
    (pairs / "y_train.npy").unlink()
    with pytest.raises(DataError, match=r"arrays: its NumPy files \(x_test, x_train, y_test\) have no training pair"):
        open_catalog(str(pairs))
    run = tmp_path / "run"
    assert main(["--data", str(draw), "--classes", "cat,dog", "--steps", "2", *TINY, "--batch-size", "4", "--out",
                 str(run)]) == 0  # fmt: skip
    assert "3 classes" not in capsys.readouterr().out and (run / "checkpoints").is_dir()


def test_kuzushiji_npz_pairs(tmp_path):
    """Kuzushiji-49 ships only as .npz pairs of one array each (k49-train-imgs.npz, k49-train-labels.npz, the test
    pair, k49_classmap.csv naming the characters); Kuzushiji-MNIST too (kmnist-...). Given as the folder or as the
    images file: "an .npz needs x_train and y_train arrays (it has arr_0)" before. Read, the test pair held out,
    the classes named by the characters."""
    rng = np.random.default_rng(4)
    d = tmp_path / "k49"
    d.mkdir()
    x, y = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12) % 3
    np.savez_compressed(d / "k49-train-imgs.npz", x)
    np.savez_compressed(d / "k49-train-labels.npz", y)
    np.savez_compressed(d / "k49-test-imgs.npz", x[:4])
    np.savez_compressed(d / "k49-test-labels.npz", y[:4])
    (d / "k49_classmap.csv").write_text("index,codepoint,char\n0,U+3042,あ\n1,U+3044,い\n2,U+3046,う\n", "utf-8")
    for data in (d, d / "k49-train-imgs.npz"):
        train, test = open_catalog(str(data)), open_catalog(str(data), split="test")
        assert train.class_names == ["あ", "い", "う"] and train.name == "k49", data
        assert torch.equal(train.images[..., 0], torch.from_numpy(x)) and train.labels.tolist() == y.tolist()
        assert len(test) == 4 and test.class_names == train.class_names
    with pytest.raises(NoTestSplit):
        open_catalog(str(d / "k49-test-imgs.npz"), split="test")
    (d / "k49_classmap.csv").unlink()  # no class map: the label values
    assert open_catalog(str(d)).class_names == ["0", "1", "2"]
    (d / "k49-train-labels.npz").unlink()
    with pytest.raises(DataError, match=r"k49-train-imgs.npz: no k49-train-labels.npz beside it"):
        open_catalog(str(d / "k49-train-imgs.npz"))
    with pytest.raises(DataError, match=r"k49: its NumPy files .* have no training pair"):
        open_catalog(str(d))


def write_pixel_csv(path, x, y, header=True, label_last=False, fmt="%d"):
    """x: [N, H, W(, 3)] values; y: [N] labels, as Kaggle's MNIST-like CSVs hold them (a row an image)."""
    pixels = x.reshape(len(x), -1)
    rows = np.c_[pixels, y] if label_last else np.c_[y, pixels]
    names = [f"pixel{i}" for i in range(pixels.shape[1])]
    with open(path, "w") as f:
        if header:
            f.write(",".join([*names, "label"] if label_last else ["label", *names]) + "\n")
        np.savetxt(f, rows, fmt=fmt, delimiter=",")


def test_csv_of_pixel_rows(tmp_path, capsys, monkeypatch):
    """Kaggle's MNIST-like sets as CSVs, a row an image (label, pixel0 ... pixel783; Fashion-MNIST's, with its
    names; "MNIST in CSV" without a header; HAM10000's RGB hmnist, the label last; values in [0, 1]). They were
    refused ("a CSV of labels goes to --csv"). The test split: the _test.csv beside the _train.csv."""
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12)
    write_pixel_csv(tmp_path / "fashion-mnist_train.csv", x, y)
    write_pixel_csv(tmp_path / "fashion-mnist_test.csv", x[:5], y[:5])
    cat = open_catalog(str(tmp_path / "fashion-mnist_train.csv"))
    assert torch.equal(cat.images[..., 0], torch.from_numpy(x)) and cat.name == "fashion_mnist"
    assert cat.class_names == IDX_CLASSES["fashionmnist"] and cat.labels.tolist() == y.tolist()
    held = open_catalog(str(tmp_path / "fashion-mnist_train.csv"), split="test")
    assert torch.equal(held.images[..., 0], torch.from_numpy(x[:5])) and held.origin.endswith("fashion-mnist_test.csv")
    write_pixel_csv(tmp_path / "mnist_in_csv.csv", x, y, header=False)
    write_pixel_csv(tmp_path / "floats.csv", x / 255.0, y, fmt="%.6f")
    rgb = rng.integers(0, 256, (12, 28, 28, 3), dtype=np.uint8)
    write_pixel_csv(tmp_path / "hmnist_28_28_RGB.csv", rgb, y % 7, label_last=True)
    for name, want in (("mnist_in_csv.csv", x[..., None]), ("floats.csv", x[..., None]),
                       ("hmnist_28_28_RGB.csv", rgb)):  # fmt: skip
        cat = open_catalog(str(tmp_path / name))
        assert torch.equal(cat.images, torch.from_numpy(want)), name
        assert cat.class_names == sorted({str(v) for v in (y % 7 if "RGB" in name else y)}), name
    import fastacgan.data as data_mod

    monkeypatch.setattr(data_mod, "LARGE_FILE_MB", 0)  # a large file is said before it is read (EMNIST's: 30 s)
    said = []
    open_catalog(str(tmp_path / "mnist_in_csv.csv"), log=said.append)
    assert said[0] == f"--data {tmp_path / 'mnist_in_csv.csv'}: reading its 0 MB"
    write_pixel_csv(tmp_path / "test.csv", x, y)  # Kaggle's test.csv: pixels only
    with open(tmp_path / "test.csv") as f:
        rows = [line.split(",", 1)[1] for line in f]
    (tmp_path / "test.csv").write_text("".join(rows))
    with pytest.raises(DataError, match=r"test.csv: a CSV of pixel rows needs a label column \(label, "):
        open_catalog(str(tmp_path / "test.csv"))
    (tmp_path / "labels.csv").write_text("image,label\na.png,cat\n")  # a labels CSV: what to do with it, as before
    with pytest.raises(DataError, match=r"\(a CSV of labels goes to --csv: --data "):
        open_catalog(str(tmp_path / "labels.csv"))
    kaggle = tmp_path / "digit-recognizer"  # Kaggle's download unpacked: "no class folders found", no CSV named
    kaggle.mkdir()
    write_pixel_csv(kaggle / "train.csv", x, y)
    shutil.copy(tmp_path / "test.csv", kaggle / "test.csv")
    (kaggle / "sample_submission.csv").write_text("ImageId,Label\n1,0\n")
    with pytest.raises(DataError) as e:
        open_catalog(str(kaggle))
    assert str(e.value) == (f"--data {kaggle}: no class folders found; expected {kaggle}/<class>/<image>. It holds "
                            f"CSVs of images, one a row (test.csv, train.csv): give one as --data, e.g. --data "
                            f"{kaggle / 'train.csv'}")  # fmt: skip
    assert len(open_catalog(str(kaggle / "train.csv"))) == 12  # what it names reads
    sign = tmp_path / "sign-language-mnist"  # Kaggle's: each CSV in a folder of its name ("holds no images")
    for part in ("train", "test"):
        (sign / f"sign_mnist_{part}").mkdir(parents=True)
        write_pixel_csv(sign / f"sign_mnist_{part}" / f"sign_mnist_{part}.csv", x, y)
    Image.new("RGB", (30, 30)).save(sign / "amer_sign2.png")
    with pytest.raises(DataError) as e:
        open_catalog(str(sign))
    assert str(e.value).endswith(f"it holds .csv (1); {sign / 'sign_mnist_train' / 'sign_mnist_train.csv'} is a CSV "
                                 "of images, one a row: give it as --data")  # fmt: skip
    out = tmp_path / "run"
    assert main(["--data", str(tmp_path / "fashion-mnist_train.csv"), *TINY, "--batch-size", "4", "--steps", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "data: " in capsys.readouterr().out and (out / "checkpoints" / "step_00000002.pt").is_file()


def test_fer2013_an_image_a_field(tmp_path, capsys):
    """FER2013 as Kaggle ships it: `emotion, pixels, Usage`, the 48x48 pixels of an image one quoted field of
    space-separated values (fer2013.csv; icml_face_data.csv names its columns with a space first); the challenge's
    train.csv without Usage, test.csv without labels. It was refused ("a CSV of labels goes to --csv"). Training
    rows train; PublicTest and PrivateTest are held out; the emotions are named."""
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 256, (9, 48, 48), dtype=np.uint8), np.array([0, 3, 6, 3, 4, 2, 5, 1, 6])
    usage = ["Training"] * 6 + ["PublicTest", "PrivateTest", "PublicTest"]
    rows = [f'{y[i]},"{" ".join(map(str, x[i].ravel()))}",{usage[i]}\n' for i in range(9)]
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "".join(rows))
    (tmp_path / "icml_face_data.csv").write_text("emotion, Usage, pixels\n" + "".join(
        f'{y[i]},{usage[i]},"{" ".join(map(str, x[i].ravel()))}"\n' for i in range(9)))  # fmt: skip
    limit = csv.field_size_limit()
    for name in ("fer2013.csv", "icml_face_data.csv"):
        train, held = open_catalog(str(tmp_path / name)), open_catalog(str(tmp_path / name), split="test")
        assert csv.field_size_limit() == limit  # (raised for its long fields while it is read: for it alone)
        assert train.class_names == ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"], name
        assert torch.equal(train.images[..., 0], torch.from_numpy(x[:6])) and train.labels.tolist() == y[:6].tolist()
        assert torch.equal(held.images[..., 0], torch.from_numpy(x[6:])) and held.labels.tolist() == y[6:].tolist()
    (tmp_path / "train.csv").write_text("emotion,pixels\n" + "".join(r.rsplit(",", 1)[0] + "\n" for r in rows))
    assert len(open_catalog(str(tmp_path / "train.csv"))) == 9
    with pytest.raises(NoTestSplit, match="train.csv: a CSV of images without a Usage column is one split"):
        open_catalog(str(tmp_path / "train.csv"), split="test")
    (tmp_path / "test.csv").write_text("pixels\n" + "".join(f'"{" ".join(map(str, v.ravel()))}"\n' for v in x))
    with pytest.raises(DataError, match=r"test.csv: a CSV of images in its `pixels` column needs a label column"):
        open_catalog(str(tmp_path / "test.csv"))
    (tmp_path / "odd.csv").write_text('label,pixels\n1,"1 2 3"\n')
    with pytest.raises(DataError, match=r"odd.csv: its `pixels` are not square images of 8 x 8 or more, all of one "
                                        r"size \(3 values in the first rows\)"):  # fmt: skip
        open_catalog(str(tmp_path / "odd.csv"))
    (tmp_path / "odd.csv").write_text('label,pixels\n1,"' + " ".join(["7"] * 63 + ["x"]) + '"\n')
    with pytest.raises(DataError, match=r"odd.csv: cannot read its `pixels` as numbers"):
        open_catalog(str(tmp_path / "odd.csv"))
    out = tmp_path / "run"
    assert main(["--data", str(tmp_path / "fer2013.csv"), *TINY, "--batch-size", "2", "--steps", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "data: " in capsys.readouterr().out and (out / "checkpoints" / "step_00000002.pt").is_file()


def test_held_split_reads_a_sets_test_split_and_a_part_as_given(tmp_path, capsys):
    """split="held" (evaluate's --test-data): the test split of a set given whole, else the data as given, never a
    set beside it. --test-data read the training split: an MNIST folder's 60,000 training images, FER2013's
    Training rows, a folder's train/ part scored as held out."""
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8), np.array([0, 3, 6, 3, 4])
    usage = ["Training"] * 3 + ["PublicTest", "PrivateTest"]
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "".join(
        f'{y[i]},"{" ".join(map(str, x[i].ravel()))}",{usage[i]}\n' for i in range(5)))  # fmt: skip
    held = open_catalog(str(tmp_path / "fer2013.csv"), split="held")
    assert torch.equal(held.images[..., 0], torch.from_numpy(x[3:])) and held.labels.tolist() == [3, 4]
    assert held.origin == f"{tmp_path / 'fer2013.csv'} (its test split)"
    mnist = tmp_path / "MNIST" / "raw"
    write_idx_set(mnist, n=7)
    assert len(open_catalog(str(tmp_path / "MNIST"), split="held")) == 7  # one split: all of it
    write_idx_set(mnist, n=4, prefix="t10k")
    train_file = mnist / "train-images-idx3-ubyte.gz"  # a file that is one split: itself, not the test file beside it
    for where, n in ((tmp_path / "MNIST", 4), (mnist / "t10k-images-idx3-ubyte.gz", 4), (train_file, 7)):
        assert len(open_catalog(str(where), split="held")) == n, where
    for part, n in (("train", 3), ("test", 2)):
        for i in range(n):
            (tmp_path / "set" / part / "cat").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / "set" / part / "cat" / f"{i}.png")
    held = open_catalog(str(tmp_path / "set"), split="held")
    assert len(held) == 2 and all("/test/" in n for n in held.names)
    for part, n in (("train", 3), ("test", 2)):  # a part given: itself, not the held-out one beside train/
        assert len(open_catalog(str(tmp_path / "set" / part), split="held")) == n, part


def test_a_root_with_several_sets_asks_for_one(cifar10, tmp_path):
    d, _, _ = cifar10
    write_idx_set(d.parent / "MNIST" / "raw")
    with pytest.raises(DataError, match="holds several data sets.*MNIST.*cifar-10-batches-py"):
        open_catalog(str(d.parent))


def test_decoded_sets_are_fitted_like_decoded_files(tmp_path):
    """At another resolution or channel count, the arrays are resized and converted exactly as decode_image does
    to the same pixels stored as a PNG file."""
    images, _ = write_idx_set(tmp_path / "MNIST" / "raw", n=6)
    cat = open_catalog(str(tmp_path / "MNIST"))
    assert decode_all(cat, 28, 1, 0)[0] is cat.images  # already fitting: no copy
    x, y = decode_all(cat, 32, 3, 0, log=lambda m: None)
    assert x.shape == (6, 32, 32, 3) and torch.equal(y, torch.as_tensor(cat.labels))
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        assert np.array_equal(x[i].numpy(), decode_image(buf.getvalue(), "x", 32, 3))


def test_training_and_sampling_on_fashion_mnist(tmp_path, capsys):
    """The MNIST AC-GAN's set-up (seed 002): train on the idx files, then sample with its inference options."""
    write_idx_set(tmp_path / "FashionMNIST" / "raw", n=40)
    out = tmp_path / "run"
    args = ["--data", str(tmp_path), *TINY, "--steps", "2", "--out", str(out)]
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "preset mnist" in log
    assert "40 images, 10 classes (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal ...), 1 channel(s), 16x16" in log
    assert "loader: resident (keep uint8 on cpu)" in log
    assert sample_main([f"-o={tmp_path / 'gen'}", "-d=cpu", f"-ckpt={out}", "-l=T-shirt/top", "--n", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["T-shirt_top_00000.png", "T-shirt_top_00001.png"]


def test_the_test_splits(cifar10, tmp_path, image_folder, monkeypatch):
    """split="test" (what evaluate scores D on): CIFAR's test_batch / test, the t10k idx files, x_test."""
    d, _, _ = cifar10
    test = open_catalog(str(d.parent), split="test")
    assert len(test) == 5 and test.class_names == CIFAR10_NAMES and "test_batch[4]" in test.names[4]
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    assert torch.equal(open_catalog(str(archive), split="test").images, test.images)
    read, read_bytes = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read.append(p.name) or read_bytes(p))
    open_catalog(str(d))  # a folder's other split is not read (CIFAR-10's test_batch is 30 MB)
    assert sorted(read) == ["batches.meta", "data_batch_1", "data_batch_2"]
    monkeypatch.undo()
    good = (d / "test_batch").read_bytes()
    (d / "test_batch").write_bytes(b"damaged")
    assert len(open_catalog(str(d))) == 24
    with pytest.raises(DataError, match="test_batch: not a readable data batch, as CIFAR's"):
        open_catalog(str(d), split="test")
    (d / "test_batch").write_bytes(good)
    (d / "data_batch_2").write_bytes(b"damaged")
    assert len(open_catalog(str(d), split="test")) == 5
    with pytest.raises(DataError, match="data_batch_2: not a readable data batch, as CIFAR's"):
        open_catalog(str(d))
    (d / "test_batch").unlink()
    with pytest.raises(DataError, match="no test_batch \\(the test split of cifar10\\)"):
        open_catalog(str(d), split="test")

    images, labels = write_idx_set(tmp_path / "MNIST" / "raw", n=7, seed=3, prefix="t10k")
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):  # a test split alone is not found as a set
        open_catalog(str(tmp_path / "MNIST"))
    write_idx_set(tmp_path / "MNIST" / "raw")
    test = open_catalog(str(tmp_path / "MNIST"), split="test")
    assert torch.equal(test.images[..., 0], torch.from_numpy(images)) and np.array_equal(test.labels, labels)

    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(4), x_test=x[:3] + 1, y_test=np.arange(3))
    assert open_catalog(str(tmp_path / "a.npz"), split="test").images.shape == (3, 8, 8, 1)
    np.savez(tmp_path / "b.npz", x_train=x, y_train=np.arange(4))
    with pytest.raises(DataError, match="b.npz: an .npz needs x_test and y_test"):
        open_catalog(str(tmp_path / "b.npz"), split="test")

    with pytest.raises(NoTestSplit, match="only CIFAR batches, idx files, .npz sets, SVHN and STL-10 files, image "
                       r"folders and archives split into train/ and test/ \(or val/\) folders, training sets with a "
                       r"held-out set beside them \(train.tar.gz and test.tar.gz\) and the built-in digits have a "
                       "test split"):  # fmt: skip
        open_catalog(str(image_folder), split="test")
    assert len(open_catalog("builtin:digits:20", split="test")) == 10  # (tests/test_data.py: what it holds)


def test_damaged_numpy_idx_and_pixel_files_are_named(tmp_path):
    """Files damaged on the way (cut short, bytes flipped) are refused naming the file: an .npz's zip (numpy raised
    zipfile's BadZipFile), an .npy's header (numpy raised tokenize's TokenError), an idx .gz whose deflate stream
    is broken (zlib.error) and a pixel CSV whose one row is cut (a ValueError from the reshape). Found by fuzzing
    open_catalog with damaged copies of each form."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (10, 8, 8), dtype=np.uint8), np.arange(10)
    np.savez(tmp_path / "set.npz", x_train=x, y_train=y)
    blob = (tmp_path / "set.npz").read_bytes()
    at = blob.index(b"x_train.npy") + len("x_train.npy") + 128 + 10  # (a byte of the images: the member's CRC fails)
    cases = {"cut.npz": blob[: len(blob) // 2], "crc.npz": blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]}
    np.save(tmp_path / "cat.npy", rng.integers(0, 255, (5, 784), dtype=np.uint8))
    head = (tmp_path / "cat.npy").read_bytes()
    at = head.index(b"(5,")
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"--data .*{name}: cannot read the \.npz: damaged\? \(BadZipFile: "):
            open_catalog(str(tmp_path / name))
    npys = tmp_path / "quickdraw"
    npys.mkdir()
    np.save(npys / "dog.npy", rng.integers(0, 255, (5, 784), dtype=np.uint8))
    (npys / "cat.npy").write_bytes(head[:at] + b")" + head[at + 1 :])  # the shape's parenthesis turned round
    with pytest.raises(DataError, match=r"cat\.npy: cannot read the \.npy: damaged\? \("):
        open_catalog(str(npys))
    mnist = tmp_path / "mnist"
    write_idx_set(mnist, n=20)
    labels = (mnist / "train-labels-idx1-ubyte.gz").read_bytes()
    (mnist / "train-labels-idx1-ubyte.gz").write_bytes(labels[:10] + b"\x07" + bytes(20))  # a deflate block of type 3
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: cannot decompress \(Error -3 .*invalid block"):
        open_catalog(str(mnist))
    write_pixel_csv(tmp_path / "train.csv", rng.integers(0, 255, (1, 64)), np.array([2]))
    text = (tmp_path / "train.csv").read_text()
    (tmp_path / "train.csv").write_text(text[: len(text) - 40])  # its one row cut short
    with pytest.raises(DataError, match=r"train\.csv: its rows hold \d+ values, its first row 65: cut short\?"):
        open_catalog(str(tmp_path / "train.csv"))
