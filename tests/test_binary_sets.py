"""SVHN's .mat files and STL-10's binary files as torchvision downloads them (fastacgan/binary_sets.py).

tests/data/svhn/ holds two files written by scipy.io.savemat (train: compressed, labels uint8; test: not
compressed, labels double), the images X[r, c, ch, n] = (7r + 3c + 50ch + 11n) % 256. STL-10's files are written
here as its authors describe them and read back, for the reference, with torchvision's own code."""

import gzip
import json
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from fastacgan import archives
from fastacgan.binary_sets import read_mat
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.datasets import array_set_catalog
from fastacgan.decode import decode_image
from fastacgan.train import main

SVHN = Path(__file__).parent / "data" / "svhn"
STL_NAMES = "airplane bird car cat deer dog horse monkey ship truck".split()


def svhn_pixels(n: int) -> np.ndarray:
    """The fixture's images as [N, H, W, C]: image k is X[..., k]."""
    r, c, ch, k = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), np.arange(n), indexing="ij")
    return np.moveaxis((r * 7 + c * 3 + ch * 50 + k * 11) % 256, -1, 0).astype(np.uint8)


@pytest.fixture
def svhn_root(tmp_path) -> Path:
    """torchvision's SVHN root, with the files where SVHN(root, split=...) downloads them, inside a data folder."""
    root = tmp_path / "data" / "svhn"
    shutil.copytree(SVHN, root)
    return root


def test_svhn_as_torchvision_downloads_it(svhn_root):
    for data in (svhn_root, svhn_root.parent, svhn_root / "train_32x32.mat"):
        cat = open_catalog(str(data))
        assert cat.name == "svhn" and len(cat) == 6
        assert cat.class_names == [str(d) for d in range(10)]
        assert cat.labels.tolist() == [1, 0, 3, 0, 5, 2]  # SVHN labels the digit 0 with 10; torchvision reads 0
        assert np.array_equal(cat.images.numpy(), svhn_pixels(6))
    # the test split: test_32x32.mat (written without compression, its labels as doubles)
    for data in (svhn_root, svhn_root / "train_32x32.mat"):  # a file: the one named like it beside it
        test = open_catalog(str(data), split="test")
        assert len(test) == 4 and test.labels.tolist() == [1, 0, 3, 0]
        assert np.array_equal(test.images.numpy(), svhn_pixels(4))
    (svhn_root / "test_32x32.mat").unlink()
    with pytest.raises(NoTestSplit, match=r"no test_32x32\.mat \(SVHN's test split; it holds train_32x32\.mat\)"):
        open_catalog(str(svhn_root), split="test")
    (svhn_root / "train_32x32.mat").rename(svhn_root / "extra_32x32.mat")
    with pytest.raises(DataError, match=r"no train_32x32\.mat \(SVHN's train split; it holds extra_32x32\.mat\)") as e:
        open_catalog(str(svhn_root))
    assert not isinstance(e.value, NoTestSplit)


def test_a_run_trains_on_svhn(svhn_root, tmp_path, capsys):
    main(["--data", str(svhn_root), *TINY, "--batch-size", "4", "--steps", "2", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "-> 6 images, 10 classes (0, 1, 2, 3, 4, 5 ...), 3 channel(s)" in out
    assert "SVHN, STL-10 and Downsampled ImageNet files" in out  # the resident loader: already decoded
    assert (tmp_path / "run" / "checkpoints" / "step_00000002.pt").is_file()


def test_the_mat_reader_reads_what_scipy_writes(tmp_path):
    sio = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    types = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64)
    arrays = {f"v{k}": rng.integers(-100, 100, (3, 4, 5)[: 1 + k % 3]).astype(t) for k, t in enumerate(types)}
    others = {"text": "abc", "cell": np.array([[1, "x"]], dtype=object), "st": {"q": 1}, "cplx": np.ones(2) + 1j}
    for compress in (True, False):
        path = tmp_path / f"all_{compress}.mat"
        sio.savemat(path, {**others, **arrays}, do_compression=compress)
        got, seen = read_mat(path, tuple(arrays))
        assert seen == [*others, *arrays]
        for name, want in arrays.items():
            want = np.atleast_2d(want)  # MATLAB has no 1-D arrays: a vector is a row
            assert got[name].dtype == want.dtype and np.array_equal(got[name], want), name
        for name in ("cplx", "text", "cell"):
            with pytest.raises(DataError, match=f"variable '{name}' is not a real numeric matrix"):
                read_mat(path, (name,))
        got, seen = read_mat(path, ("missing",))  # what the file has is named
        assert got == {} and seen == [*others, *arrays]


def _mat_element(typ: int, data: bytes) -> bytes:
    return struct.pack("<II", typ, len(data)) + data + bytes(-len(data) % 8)


def test_a_double_that_matlab_stored_as_bytes_is_read_as_a_double(tmp_path):
    """MATLAB's save keeps a double array of whole numbers in the smallest integer type that holds them (SVHN's
    y): the data element's type is uint8, the array's class double. Written here by the format's description."""
    y = bytes([1, 10, 3])
    body = (_mat_element(6, struct.pack("<II", 6, 0))  # array flags: class 6 (double)
            + _mat_element(5, struct.pack("<ii", 3, 1))  # dimensions 3 x 1
            + struct.pack("<HH", 1, 1) + b"y\0\0\0"  # the name, as a small element: type 1 (int8), 1 byte
            + _mat_element(2, y))  # fmt: skip  # the data: type 2 (uint8)
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    path = tmp_path / "y.mat"
    path.write_bytes(header + _mat_element(14, body))
    got, seen = read_mat(path, ("y",))
    assert seen == ["y"] and got["y"].dtype == np.float64 and got["y"].ravel().tolist() == [1.0, 10.0, 3.0]


def test_mat_files_that_cannot_be_read_are_named(svhn_root, tmp_path):
    cases = {
        "v73.mat": (b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(128), r"MATLAB 7\.3 \(HDF5\) file.*-v7"),
        "v4.mat": (bytes(200), r"not a MATLAB 5 \.mat file"),
        "cut.mat": ((svhn_root / "test_32x32.mat").read_bytes()[:3000], "cut short or damaged"),
        "zcut.mat": ((svhn_root / "train_32x32.mat").read_bytes()[:600], "cut short or damaged"),
    }
    for name, (blob, match) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=match):
            open_catalog(str(tmp_path / name))
    sio = pytest.importorskip("scipy.io")
    sio.savemat(tmp_path / "other.mat", {"images": np.zeros((4, 4, 2), np.uint8), "labels": np.ones(2)})
    with pytest.raises(DataError, match=r"needs the variables X .* and y .*; it has images, labels"):
        open_catalog(str(tmp_path / "other.mat"))
    sio.savemat(tmp_path / "flat.mat", {"X": np.zeros(5, np.uint8), "y": np.ones(5)})
    with pytest.raises(DataError, match=r"X is \[1, 5\]; expected images \[H, W, C, N\]"):
        open_catalog(str(tmp_path / "flat.mat"))


def test_another_mat_file_with_svhn_s_variables(tmp_path):
    """A .mat with X [H, W, N] (greyscale) and y, not named as SVHN's files: labels as they are."""
    sio = pytest.importorskip("scipy.io")
    x = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    sio.savemat(tmp_path / "scans.mat", {"X": x, "y": np.array([[2], [10], [2]])})
    cat = open_catalog(str(tmp_path / "scans.mat"))
    assert cat.name == "scans" and cat.class_names == ["2", "10"] and cat.labels.tolist() == [0, 1, 0]
    assert np.array_equal(cat.images[1, ..., 0].numpy(), x[..., 1])


def write_stl(folder: Path, n_train=7, n_test=3, names=True) -> np.ndarray:
    """STL-10's binary files: each image 3 x 96 x 96 bytes, the channels one after another, each column-major
    (as the set's authors wrote them from MATLAB); labels 1..10 one byte each. Returns all images as [N, C, H, W]."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    imgs = rng.integers(0, 256, (n_train + n_test, 3, 96, 96), dtype=np.uint8)
    for split, part in (("train", imgs[:n_train]), ("test", imgs[n_train:])):
        part.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # column-major: W then H
        (np.arange(len(part)) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    imgs[:2].transpose(0, 1, 3, 2).tofile(folder / "unlabeled_X.bin")
    if names:
        (folder / "class_names.txt").write_text("\n".join(STL_NAMES) + "\n")
    return imgs


def torchvision_stl(path: Path) -> np.ndarray:
    """torchvision.datasets.STL10's __loadfile, as it reads the images ([N, C, H, W])."""
    everything = np.fromfile(path, dtype=np.uint8)
    return np.transpose(np.reshape(everything, (-1, 3, 96, 96)), (0, 1, 3, 2))


def test_stl10_as_torchvision_downloads_it(tmp_path):
    folder = tmp_path / "data" / "stl10_binary"
    imgs = write_stl(folder)
    assert np.array_equal(torchvision_stl(folder / "train_X.bin"), imgs[:7])  # the test's writer is torchvision's
    for data in (folder.parent, folder, folder / "train_X.bin"):
        cat = open_catalog(str(data))
        assert cat.name == "stl10" and len(cat) == 7 and cat.class_names == STL_NAMES
        assert cat.labels.tolist() == [0, 1, 2, 3, 4, 5, 6]
        assert np.array_equal(cat.images.numpy().transpose(0, 3, 1, 2), imgs[:7])
    for data in (folder, folder / "train_X.bin"):
        test = open_catalog(str(data), split="test")
        assert np.array_equal(test.images.numpy().transpose(0, 3, 1, 2), imgs[7:]) and test.labels.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="no unlabeled_y.bin beside it: an AC-GAN needs labels"):
        open_catalog(str(folder / "unlabeled_X.bin"))
    (folder / "class_names.txt").unlink()
    assert open_catalog(str(folder)).class_names == [str(k) for k in range(7)]  # no names: the label values
    (folder / "train_X.bin").write_bytes((folder / "train_X.bin").read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train_X\.bin: 193531 bytes is not a whole number of 96x96 RGB images"):
        open_catalog(str(folder))
    (folder / "train_X.bin").write_bytes(imgs[:2].tobytes())
    with pytest.raises(DataError, match=r"train_y\.bin: 7 labels for 2 images"):
        open_catalog(str(folder))


def test_their_names_and_stl10_s_archive_say_what_to_give(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"svhn is read from a downloaded copy, torchvision's download folder \(its "
                       r"root\) or its train_32x32\.mat"):  # fmt: skip
        open_catalog("svhn")
    with pytest.raises(DataError, match=r"STL-10 is read from a downloaded copy, .* or its stl10_binary folder"):
        open_catalog("STL-10")
    with pytest.raises(DataError, match=r"EMNIST is read from a downloaded copy, the images file of one of its"):
        open_catalog("EMNIST")
    (tmp_path / "stl10_binary.tar.gz").write_bytes(bytes(64))  # 2.6 GB, and the reading would find no images
    with pytest.raises(DataError, match=r"STL-10's download is read unpacked: tar xzf stl10_binary\.tar\.gz, then"):
        open_catalog("stl10_binary.tar.gz")


def write_idx(path: Path, arr: np.ndarray) -> None:
    raw = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)


def test_emnist_as_torchvision_downloads_it(tmp_path):
    """torchvision's EMNIST/raw: six splits' idx files, emnist-<split>-<train|test>-<images|labels>-...; each image
    stored transposed (torchvision hands them on so: its issue 8783), labels by split (letters: 1..26). It was
    'class folder data/EMNIST holds no images', and an idx file given as --data 'a file must be a .zip ...'."""
    raw = tmp_path / "data" / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    for split, labels in (("letters", np.arange(1, 11)), ("balanced", np.arange(36, 46))):
        for part, n in (("train", 10), ("test", 3)):
            write_idx(raw / f"emnist-{split}-{part}-images-idx3-ubyte.gz", stored[:n])
            write_idx(raw / f"emnist-{split}-{part}-labels-idx1-ubyte.gz", labels[:n].astype(np.uint8))
    for data in (tmp_path / "data", raw):  # six data sets: which one is the user's to say
        said = r"holds EMNIST's splits balanced, letters, each a data set of its own: give the training images of"
        with pytest.raises(DataError, match=said + r" one, e.g. --data .*emnist-balanced-train-images-idx3-ubyte"):
            open_catalog(str(data))
    letters = open_catalog(str(raw / "emnist-letters-train-images-idx3-ubyte.gz"))
    assert letters.name == "emnist_letters" and letters.class_names == list("abcdefghijklmnopqrstuvwxyz")
    assert letters.labels.tolist() == list(range(10))  # a is 1 in the file
    assert np.array_equal(letters.images[..., 0].numpy(), stored.transpose(0, 2, 1))  # upright, as NIST shows them
    balanced = open_catalog(str(raw / "emnist-balanced-train-images-idx3-ubyte.gz"), split="test")  # the test file
    assert len(balanced) == 3 and len(balanced.class_names) == 47 and balanced.class_names[36:39] == ["a", "b", "d"]
    assert [balanced.class_names[k] for k in balanced.labels] == ["a", "b", "d"]
    # Kaggle's EMNIST: the same images as CSV rows (no header, the label first), stored as transposed; they were read
    # as stored, the letters' classes named 1 ... 26
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    for split, labels in (("letters", np.arange(1, 11)), ("balanced", np.arange(36, 46))):
        rows = np.c_[labels, stored.reshape(10, -1)]
        np.savetxt(kaggle / f"emnist-{split}-train.csv", rows, fmt="%d", delimiter=",")
        np.savetxt(kaggle / f"emnist-{split}-test.csv", rows[:3], fmt="%d", delimiter=",")
    for split in ("letters", "balanced"):
        idx = open_catalog(str(raw / f"emnist-{split}-train-images-idx3-ubyte.gz"))
        csv = open_catalog(str(kaggle / f"emnist-{split}-train.csv"))
        assert (csv.name, csv.class_names, csv.labels.tolist()) == (idx.name, idx.class_names, idx.labels.tolist())
        assert np.array_equal(csv.images.numpy(), idx.images.numpy())
    assert len(open_catalog(str(kaggle / "emnist-letters-train.csv"), split="test")) == 3  # the file beside


def test_idx_files_as_kaggle_copies_them(tmp_path):
    """Kaggle's MNIST copy: train-images.idx3-ubyte (a dot), and each file again in a folder of its name with a dash.
    It was 'holds several data sets'; an idx file given as --data is read with its labels beside it."""
    root = tmp_path / "mnist-dataset"
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), np.array([3, 1, 4, 1, 5, 9], np.uint8)
    for prefix, n in (("train", 6), ("t10k", 2)):
        for kind, arr in (("images-idx3", images[:n]), ("labels-idx1", labels[:n])):
            (root / f"{prefix}-{kind}-ubyte").mkdir(parents=True)
            write_idx(root / f"{prefix}-{kind}-ubyte" / f"{prefix}-{kind}-ubyte", arr)
            write_idx(root / f"{prefix}-{kind.replace('-', '.')}-ubyte", arr)
    for data in (root, root / "train-images.idx3-ubyte", root / "train-images-idx3-ubyte" / "train-images-idx3-ubyte"):
        for split, n in (("train", 6), ("test", 2)):
            cat = open_catalog(str(data), split=split)
            assert np.array_equal(cat.images[..., 0].numpy(), images[:n]), (data, split)
            assert [cat.class_names[k] for k in cat.labels] == [str(v) for v in labels[:n]]
    (root / "train-labels.idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"train-images\.idx3-ubyte: no train-labels\.idx1-ubyte\[\.gz\] beside it"):
        open_catalog(str(root / "train-images.idx3-ubyte"))


def matlab_labels(path: Path, name: str, values: list[int]) -> None:
    """A MAT file of one double row vector stored as bytes, as MATLAB's save writes whole numbers (see above)."""
    body = (_mat_element(6, struct.pack("<II", 6, 0)) + _mat_element(5, struct.pack("<ii", 1, len(values)))
            + _mat_element(1, name.encode()) + _mat_element(2, bytes(values)))  # fmt: skip
    path.write_bytes(b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
                     + _mat_element(14, body))  # fmt: skip


def test_flowers102_as_torchvision_downloads_it(tmp_path):
    """flowers-102/jpg/image_00001.jpg ... and imagelabels.mat (labels 1..102, one per image in number order): all
    of its images train (setid.mat's split is a classifier's). It was one class, flowers-102 (the root as --data)
    or jpg (the folder): an unconditional GAN, with a note."""
    root = tmp_path / "data"
    folder = root / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    labels = [77, 3, 77, 102, 3]
    for i, lab in enumerate(labels, start=1):
        Image.new("RGB", (30, 20), (lab, i * 40, 0)).save(folder / "jpg" / f"image_{i:05d}.jpg")
    matlab_labels(folder / "imagelabels.mat", "labels", labels)
    for data in (root, folder):
        cat = open_catalog(str(data))
        assert cat.name == "flowers102" and cat.class_names == ["3", "77", "102"]  # the authors' numbers
        assert cat.labels.tolist() == [1, 0, 1, 2, 0] and [Path(n).name for n in cat.names][:2] == [
            "image_00001.jpg", "image_00002.jpg"]  # fmt: skip
        assert decode_image(cat.read_bytes(3), cat.names[3], 8, 3)[0, 0, 0].item() in range(98, 107)  # image 4: red 102
    with pytest.raises(DataError, match=rf"\. {folder} holds them with their labels \(flowers102\): give --data "
                       rf"{folder}$"):  # fmt: skip
        open_catalog(str(folder / "jpg"))
    with tarfile.open(folder / "102flowers.tgz", "w:gz") as tf:  # (torchvision keeps its download beside jpg/)
        tf.add(folder / "jpg", "jpg")
    with pytest.raises(DataError, match=rf"102flowers\.tgz: its images are all in jpg/, no class folders; {folder} "
                       rf"holds them with their labels \(flowers102\): give --data {folder}$"):  # fmt: skip
        open_catalog(str(folder / "102flowers.tgz"))  # (it was one class, jpg: an unconditional GAN)
    with pytest.raises(NoTestSplit, match="Flowers-102's images all train the GAN"):
        open_catalog(str(folder), split="test")
    (folder / "jpg" / "image_00004.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 5 images that imagelabels\.mat labels are not in jpg/, e\.g\. "
                       r"image_00004\.jpg"):  # fmt: skip
        open_catalog(str(folder))
    matlab_labels(folder / "imagelabels.mat", "lab", labels)
    with pytest.raises(DataError, match=r"imagelabels\.mat has no variable 'labels' \(it has lab\)"):
        open_catalog(str(folder))


def test_oxford_iiit_pet_as_torchvision_downloads_it(tmp_path):
    """oxford-iiit-pet/images/<Breed>_<n>.jpg, annotations/trainval.txt and test.txt (`Abyssinian_100 1 1 1`), and
    the trimaps beside them (annotations/trimaps/*.png): it was an image folder of two classes, "annotations" (the
    trimaps) and "images", trained on in silence. The classes are named as torchvision names them."""
    root = tmp_path / "data"
    folder = root / "oxford-iiit-pet"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations" / "trimaps").mkdir(parents=True)
    rows = []
    for breed, class_id, species in (("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 6, 1)):
        for k in range(1, 4):
            Image.new("RGB", (30, 20), (class_id * 40, k * 60, 0)).save(folder / "images" / f"{breed}_{k}.jpg")
            Image.new("L", (30, 20), 2).save(folder / "annotations" / "trimaps" / f"{breed}_{k}.png")
            rows.append(f"{breed}_{k} {class_id} {species} {k}")
    (folder / "annotations" / "trainval.txt").write_text("\n".join(rows[::2]) + "\n")  # 1 and 3 of each breed
    (folder / "annotations" / "test.txt").write_text("\n".join(rows[1::2]) + "\n")
    (folder / "images" / "Abyssinian_1.mat").write_bytes(b"MATLAB")  # (the download's images/ holds three .mat files)
    for data in (root, folder):
        cat = open_catalog(str(data))
        assert cat.name == "oxford_pet" and cat.class_names == ["Abyssinian", "American Bulldog", "Bengal"]
        assert [Path(n).name for n in cat.names] == ["Abyssinian_1.jpg", "Abyssinian_3.jpg", "american_bulldog_2.jpg",
                                                     "Bengal_1.jpg", "Bengal_3.jpg"]  # fmt: skip
        assert cat.labels.tolist() == [0, 0, 1, 2, 2]
        assert decode_image(cat.read_bytes(3), cat.names[3], 8, 3)[0, 0, 0].item() in range(235, 245)  # Bengal: red 240
        test = open_catalog(str(data), split="test")
        assert [Path(n).name for n in test.names] == ["Abyssinian_2.jpg", "american_bulldog_1.jpg",
                                                      "american_bulldog_3.jpg", "Bengal_2.jpg"]  # fmt: skip
        assert test.class_names == cat.class_names and test.labels.tolist() == [0, 1, 1, 2]
    with pytest.raises(DataError, match=rf"\(it holds 9 loose images\); .*\. {folder} holds them with their labels "
                       rf"\(oxford_pet\): give --data {folder}$"):  # fmt: skip
        open_catalog(str(folder / "images"))  # (the folder of the images alone: their labels are beside it)
    with tarfile.open(folder / "images.tar.gz", "w:gz") as tf:  # (its download, beside annotations.tar.gz)
        tf.add(folder / "images", "images")
    with pytest.raises(DataError, match=rf"images\.tar\.gz: its images are all in images/, no class folders; "
                       rf"{folder} holds them with their labels \(oxford_pet\): give --data {folder}$"):  # fmt: skip
        open_catalog(str(folder / "images.tar.gz"))  # (it was one class, images)
    (folder / "images" / "Bengal_3.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 5 images that annotations/trainval\.txt lists are not in images/, "
                       r"e\.g\. Bengal_3\.jpg"):  # fmt: skip
        open_catalog(str(folder))
    (folder / "annotations" / "test.txt").unlink()
    with pytest.raises(NoTestSplit, match=r"no annotations/test\.txt \(Oxford-IIIT Pet's test split\)"):
        open_catalog(str(folder), split="test")
    (folder / "annotations" / "trainval.txt").write_text("Abyssinian_1 cat\n")
    with pytest.raises(DataError, match=r"trainval\.txt: 'Abyssinian_1 cat'; expected lines 'image class-id \.\.\.'"):
        open_catalog(str(folder))


def test_food101_as_torchvision_downloads_it(tmp_path):
    """food-101/images/<class>/<id>.jpg beside meta/train.txt and test.txt (`apple_pie/1005649`; torchvision reads
    meta/train.json, the same lists): --data food-101 was refused ("class folder meta holds no images"), naming
    images/, which read all 101,000 images as training data, the test list's too, and left evaluate nothing held
    out. Now the training list trains and the test list is held out, as torchvision splits it."""
    root = tmp_path / "data"
    folder, classes = root / "food-101", ["apple_pie", "baby_back_ribs", "beignets"]
    train, test = [], []
    for c, name in enumerate(classes):
        (folder / "images" / name).mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (30, 20), (c * 100, k * 60, 0)).save(folder / "images" / name / f"{100 + k}.jpg")
            (train if k < 3 else test).append(f"{name}/{100 + k}")
    meta = folder / "meta"
    meta.mkdir()
    (meta / "train.txt").write_text("\n".join(train) + "\n")
    (meta / "test.txt").write_text("\n".join(test[::-1]) + "\n")  # (a list's order is kept: its own)
    (meta / "classes.txt").write_text("\n".join(classes) + "\n")
    (meta / "labels.txt").write_text("Apple pie\nBaby back ribs\nBeignets\n")

    def check(data, said=None):
        cat = open_catalog(str(data), log=(said or []).append)
        assert cat.name == "food101" and cat.class_names == classes and len(cat) == 9
        assert [Path(n).relative_to(folder / "images").as_posix()[:-4] for n in cat.names] == train
        assert cat.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert decode_image(cat.read_bytes(4), cat.names[4], 8, 3)[0, 0, 0].item() in range(95, 106)  # red 100
        held = open_catalog(str(data), split="test")
        assert [Path(n).name for n in held.names] == ["103.jpg"] * 3 and held.labels.tolist() == [2, 1, 0]
        assert held.class_names == classes
        assert open_catalog(str(data), split="held").labels.tolist() == [2, 1, 0]  # (evaluate's --test-data)

    for data in (root, folder):
        check(data)
    for name in ("train", "test"):  # torchvision's own lists: {class: ["class/id", ...]}
        rows = train if name == "train" else test
        (meta / f"{name}.json").write_text(json.dumps({c: [r for r in rows if r.startswith(c)] for c in classes}))
        (meta / f"{name}.txt").unlink()
    (meta / "test.json").write_text(json.dumps({c: [r for r in test[::-1] if r.startswith(c)] for c in classes[::-1]}))
    check(folder)
    (folder / "meta").rename(tmp_path / "meta")  # Kaggle's copy (food41): meta/meta/
    (folder / "meta").mkdir()
    (tmp_path / "meta").rename(folder / "meta" / "meta")
    check(folder)
    said = []
    whole = open_catalog(str(folder / "images"), log=said.append)
    assert len(whole) == 12 and whole.class_names == classes  # all of them, as asked, and said
    assert said == [
        f"note: {folder / 'images'} is Food-101's images, read whole, its test list's too (meta/meta/ "
        f"lists its split): --data {folder} trains on its training list and holds out the test list"
    ]
    (folder / "meta" / "meta" / "test.json").unlink()
    with pytest.raises(NoTestSplit, match=r"no meta/meta/test\.txt \(Food-101's test split\)"):
        open_catalog(str(folder), split="test")
    assert open_catalog(str(folder)).class_names == classes
    (folder / "images" / "beignets" / "101.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 9 images that meta/meta/train\.json lists are not in "
                       r"images/beignets/, e\.g\. 101\.jpg"):  # fmt: skip
        open_catalog(str(folder))
    (folder / "meta" / "meta" / "train.json").write_text('["apple_pie/100"]')
    with pytest.raises(DataError, match=r"train\.json: expected \{class: \[\"class/image\", \.\.\.\]\}"):
        open_catalog(str(folder))
    (folder / "meta" / "meta" / "train.txt").write_text("apple_pie 100\n")
    with pytest.raises(DataError, match=r"train\.txt: image 'apple_pie'; expected lines 'class/image' "
                       r"\(apple_pie/1005649\)"):  # fmt: skip
        open_catalog(str(folder))


def test_class_folders_are_probed_with_few_stat_calls(tmp_path, monkeypatch):
    """Every sub-folder of a --data folder is asked whether it is one of these sets (torchvision's root holds them
    in sub-folders): for an image folder's class folders (ImageNet's 1,000) the new sets' checks are made only where
    the folder is named as theirs: 9 stat calls a class folder, as before them (with them, 34: on a network file
    system each is a round trip), and the --data folder's own checks."""
    for k in range(40):
        (tmp_path / "imagenet" / f"n{k:08d}").mkdir(parents=True)
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **kw: calls.append(a[0]) or real_stat(*a, **kw))
    assert array_set_catalog(tmp_path / "imagenet") is None
    assert len(calls) <= 9 * 40 + 40, len(calls)


def test_downsampled_imagenet_as_its_authors_ship_it(tmp_path, monkeypatch):
    """Imagenet32_train/train_data_batch_1 ... (pickles of data [N, 3 s s], labels 1..1000, mean),
    Imagenet32_val/val_data, their .npz form (64x64); map_clsloc.txt names the classes. It was one class or 'class
    folder ... holds no images'. The reference for the pixel layout is the authors' loader (below)."""
    root = tmp_path / "data"
    rng = np.random.default_rng(3)
    side, batches = 8, []
    for name, n in (("Imagenet8_train/train_data_batch_1", 5), ("Imagenet8_train/train_data_batch_2", 4),
                    ("Imagenet8_train/train_data_batch_10", 3), ("Imagenet8_val/val_data", 2)):  # fmt: skip
        data = rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8)
        labels = rng.integers(1, 1001, n).tolist()
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        listed = [np.int64(v) for v in labels] if n == 5 else labels  # a list of numpy integers, pickled as such
        (root / name).write_bytes(pickle.dumps({"data": data, "labels": listed, "mean": data.mean(0)}, protocol=2))
        batches.append((data, labels))
    wnids = [f"n{k:08d}" for k in range(1, 1001)]
    (root / "map_clsloc.txt").write_text("".join(f"{w} {k} name_{k}\n" for k, w in enumerate(wnids, start=1)))

    def authors_loader(data):  # Chrabaszcz et al.'s load_databatch, without the mean and the scaling
        s2 = side * side
        return np.dstack((data[:, :s2], data[:, s2 : 2 * s2], data[:, 2 * s2 :])).reshape((-1, side, side, 3))

    train = np.concatenate([authors_loader(d) for d, _ in batches[:3]])  # batches 1, 2, 10: in numeric order
    train_labels = sum((lab for _, lab in batches[:3]), [])
    for where in (root / "Imagenet8_train", root):  # the folder, or the one its authors' two archives unpack into
        cat = open_catalog(str(where))  # (the root was "several data sets": Imagenet8_train and Imagenet8_val)
        assert cat.name == "imagenet8" and cat.class_names == wnids and np.array_equal(cat.images.numpy(), train)
        assert (cat.labels + 1).tolist() == train_labels
        val = open_catalog(str(where), split="test")  # the val folder beside it
        assert np.array_equal(val.images.numpy(), authors_loader(batches[3][0]))
        assert (val.labels + 1).tolist() == batches[3][1] and val.origin == str(root / "Imagenet8_val")
    with pytest.raises(NoTestSplit, match=r"Imagenet8_val holds only val_data, Downsampled ImageNet's held-out set"):
        open_catalog(str(root / "Imagenet8_val"), split="test")
    from fastacgan import downsampled_imagenet

    monkeypatch.setattr(downsampled_imagenet, "Every", lambda: lambda done=False: True)  # a line at every file
    lines = []
    open_catalog(str(root), log=lines.append)  # (the 64x64 set's ten files hold 15 GB: progress while they load)
    assert lines == [f"reading {root}: {k} of 3 batch files, {n} images" for k, n in ((1, 5), (2, 9), (3, 12))]
    monkeypatch.undo()
    one = open_catalog(str(root / "Imagenet8_train" / "train_data_batch_2"))
    assert np.array_equal(one.images.numpy(), authors_loader(batches[1][0]))
    monkeypatch.setattr(archives, "memory_budget", lambda: 2000)  # (64x64: 15 GiB in all)
    said = r"its 3 batches take 0\.0 GiB, more than half the memory this process may take \(0\.0 GiB\): give one"
    with pytest.raises(DataError, match=said + r" batch file, --data .*train_data_batch_1, or the 32x32 set"):
        open_catalog(str(root / "Imagenet8_train"))
    monkeypatch.undo()
    # the 64x64 set's archives unpack into two training parts and a val folder (Imagenet64_train_part1_npz, ...,
    # Imagenet64_val_npz): the root reads both parts, and either part's held-out set is the val folder (the
    # sibling named as the part, Imagenet64_val_part1_npz, is not there: it had none)
    parts = tmp_path / "i64"
    for name, (data, labels) in (("Imagenet8_train_part1_npz/train_data_batch_1.npz", batches[0]),
                                 ("Imagenet8_train_part2_npz/train_data_batch_10.npz", batches[2]),
                                 ("Imagenet8_train_part2_npz/train_data_batch_2.npz", batches[1]),
                                 ("Imagenet8_val_npz/val_data.npz", batches[3])):  # fmt: skip
        (parts / name).parent.mkdir(parents=True, exist_ok=True)
        np.savez(parts / name, data=data, labels=np.array(labels), mean=np.zeros(3))
    assert np.array_equal(open_catalog(str(parts)).images.numpy(), train)
    second = open_catalog(str(parts / "Imagenet8_train_part2_npz"))  # batches 6 to 10 there: none numbered 1
    assert np.array_equal(second.images.numpy(), train[5:])
    for where in (parts, parts / "Imagenet8_train_part1_npz"):
        val = open_catalog(str(where), split="test")
        assert val.origin == str(parts / "Imagenet8_val_npz") and (val.labels + 1).tolist() == batches[3][1]
    (parts / "Imagenet16_train").mkdir()
    (parts / "Imagenet16_train" / "train_data_batch_1").write_bytes((root / "Imagenet8_train/train_data_batch_1")
                                                                    .read_bytes())  # fmt: skip
    with pytest.raises(DataError, match=r"holds several data sets \(.*Imagenet16_train, .*Imagenet8_train_part1"):
        open_catalog(str(parts))  # (which: said)
    # the .npz form (64x64's), and without map_clsloc.txt: the classes by number
    (root / "map_clsloc.txt").unlink()
    npz = root / "Imagenet8_train_npz"
    npz.mkdir()
    np.savez(npz / "train_data_batch_1.npz", data=batches[0][0], labels=np.array(batches[0][1]), mean=np.zeros(3))
    cat = open_catalog(str(npz))
    assert cat.class_names == [str(k) for k in range(1, 1001)] and np.array_equal(cat.images.numpy(), train[:5])
    np.savez(npz / "train_data_batch_2.npz", data=rng.integers(0, 256, (2, 3 * 4 * 4), dtype=np.uint8),
             labels=np.array([1, 2]), mean=np.zeros(3))  # fmt: skip
    with pytest.raises(DataError, match=r"images of 4x4 pixels beside batches of 8x8: give the batches of one size"):
        open_catalog(str(npz))
    np.savez(npz / "train_data_batch_2.npz", data=batches[0][0], labels=np.array([0] * 5), mean=np.zeros(3))
    with pytest.raises(DataError, match=r"labels from 0 to 0; Downsampled ImageNet's are 1\.\.1000"):
        open_catalog(str(npz))


def write_usps(path: Path, values: np.ndarray, digits: np.ndarray, drop: int | None = None) -> None:
    """USPS' file as torchvision downloads it: bzip2'd LIBSVM lines, `label index:value ...`, the label the digit
    + 1; `drop`: leave that index out of every line (LIBSVM's zeros)."""
    import bz2

    with bz2.open(path, "wt") as f:
        for v, d in zip(values, digits):
            f.write(f"{d + 1} " + " ".join(f"{k + 1}:{x:.6f}" for k, x in enumerate(v) if k != drop) + "\n")


def test_usps_as_torchvision_downloads_it(tmp_path):
    """USPS (torchvision's root: usps.bz2, usps.t.bz2) was refused ("a file must be a .zip or a tar ..."; the root:
    "no class folders found"). Read as torchvision reads it: the digit, uint8((v + 1) / 2 * 255) of each value."""
    rng = np.random.default_rng(6)
    train, test = rng.uniform(-1, 1, (12, 256)), rng.uniform(-1, 1, (5, 256))
    train[0, :3] = (-1.0, 0.0, 1.0)
    root = tmp_path / "data"
    root.mkdir()
    write_usps(root / "usps.bz2", train, np.arange(12) % 10)
    write_usps(root / "usps.t.bz2", test, np.array([3, 1, 4, 1, 5]), drop=255)  # (its last value left out: 0)
    want = lambda v: ((np.round(v, 6).astype(np.float32) + 1) / 2 * 255).astype(np.uint8).reshape(-1, 16, 16)  # noqa: E731
    for data in (root, root / "usps.bz2"):
        cat = open_catalog(str(data))
        assert cat.name == "usps" and cat.class_names == [str(d) for d in range(10)]
        assert cat.labels.tolist() == (np.arange(12) % 10).tolist()
        assert np.array_equal(cat.images[..., 0].numpy(), want(train))
        assert cat.images[0, 0, :3, 0].tolist() == [0, 127, 255]  # -1, 0, 1
        held = open_catalog(str(data), split="test")
        assert held.labels.tolist() == [3, 1, 4, 1, 5] and held.images[:, 15, 15, 0].tolist() == [127] * 5
        assert np.array_equal(held.images[:, :15, :, 0].numpy(), want(test)[:, :15])
    assert len(open_catalog(str(root / "usps.t.bz2"))) == 5  # the test file given: itself
    with pytest.raises(NoTestSplit):
        open_catalog(str(root / "usps.t.bz2"), split="test")
    from test_datasets import write_idx_set

    write_idx_set(root / "MNIST" / "raw", n=4)  # beside another set's folder in the root: which to read?
    with pytest.raises(DataError, match=rf"holds several data sets \({root / 'usps.bz2'}, {root / 'MNIST' / 'raw'}\)"):
        open_catalog(str(root))
    import bz2

    (root / "usps.bz2").write_bytes(bz2.compress(b"3 1:0.5 2:0.25\n11 1:x\n"))
    with pytest.raises(DataError, match=r"usps\.bz2: line 2 is not in USPS' form, `label index:value \.\.\.`"):
        open_catalog(str(root / "usps.bz2"))
    (root / "usps.bz2").write_bytes(bz2.compress(b"3 1:0.5 257:0.25\n"))
    with pytest.raises(DataError, match=r"line 1 is not in USPS' form, .*\(index 257\)"):
        open_catalog(str(root / "usps.bz2"))


def test_semeion_as_torchvision_downloads_it(tmp_path):
    """SEMEION (torchvision's root: semeion.data, a digit a line: 256 pixels 0 or 1 written 1.0000, then the digit
    one-hot) was refused ("a file must be a .zip or a tar ..."; the root: "no class folders found"). Read as
    torchvision reads it: uint8(v * 255) of each pixel, the digit of the one-hot's 1; all its digits train."""
    rng = np.random.default_rng(7)
    pixels, digits = rng.integers(0, 2, (12, 256)), np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
    root = tmp_path / "data"
    root.mkdir()
    lines = (" ".join(f"{v:.4f}" for v in p) + " " + " ".join(map(str, np.eye(10, dtype=int)[d])) + " \n"
             for p, d in zip(pixels, digits))  # fmt: skip
    (root / "semeion.data").write_text("".join(lines))
    for data in (root, root / "semeion.data"):
        cat = open_catalog(str(data))
        assert cat.name == "semeion" and cat.class_names == [str(d) for d in range(10)]
        assert cat.labels.tolist() == digits.tolist()
        assert np.array_equal(cat.images[..., 0].numpy(), (pixels * 255).astype(np.uint8).reshape(-1, 16, 16))
        with pytest.raises(NoTestSplit, match="SEMEION has no test split"):
            open_catalog(str(data), split="test")
    from test_datasets import write_idx_set

    write_idx_set(root / "MNIST" / "raw", n=4)  # beside another set's folder in the root: which to read?
    with pytest.raises(DataError, match=rf"several data sets \({root / 'semeion.data'}, {root / 'MNIST' / 'raw'}\)"):
        open_catalog(str(root))
    (root / "semeion.data").write_text("1.0000 0.5000 1\n")
    with pytest.raises(DataError, match=r"semeion\.data: not in SEMEION's form: 266 numbers a line, each 0 or 1 "
                       r"\(256 pixels, then the digit one-hot\); found 3 a line"):  # fmt: skip
        open_catalog(str(root / "semeion.data"))
    (root / "semeion.data").write_text(" ".join(["0.5"] * 256 + ["1"] + ["0"] * 9) + "\n")
    with pytest.raises(DataError, match=r"semeion\.data: not in SEMEION's form: .*; found other values, or no single "
                       "digit a line"):  # fmt: skip
        open_catalog(str(root / "semeion.data"))
    (root / "semeion.data").write_text("1 x\n")
    with pytest.raises(DataError, match=r"semeion\.data: not in SEMEION's form, 266 numbers a line \(.*x"):
        open_catalog(str(root / "semeion.data"))


def test_fgvc_aircraft_as_torchvision_downloads_it(tmp_path):
    """fgvc-aircraft-2013b/data/: images/<id>.jpg beside images_variant_trainval.txt and _test.txt (`1025794 707-320`)
    and variants.txt (the 100 variants' order). As an image folder it was one class, "images" (an unconditional
    GAN, with a note), and the images folder alone was told `--csv images_box.txt`, the bounding boxes. Now read as
    torchvision's FGVCAircraft reads it: its variants, trainval trains, test is held out."""
    root = tmp_path / "data"
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    variants = ["707-320", "Cessna 172", "A320", "Cessna 208"]  # (variants.txt's order, not sorted)
    rows = []
    for i, v in enumerate(variants * 3):
        Image.new("RGB", (30, 20), (i * 20, 0, 0)).save(data / "images" / f"{1000000 + i}.jpg")
        rows.append(f"{1000000 + i} {v}")
    (data / "images_variant_trainval.txt").write_text("\n".join(rows[:8]) + "\n")
    (data / "images_variant_test.txt").write_text("\n".join(rows[8:]) + "\n")
    (data / "images_family_trainval.txt").write_text("1000000 Boeing 707\n")  # (the other annotation levels)
    (data / "images_box.txt").write_text("1000000 83 155 1116 666\n")
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    for given in (root, root / "fgvc-aircraft-2013b", data):
        cat = open_catalog(str(given))
        assert cat.name == "fgvc_aircraft" and cat.class_names == variants
        assert [Path(n).name for n in cat.names] == [f"{1000000 + i}.jpg" for i in range(8)]
        assert cat.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # Cessna 172 and Cessna 208 two classes
        assert decode_image(cat.read_bytes(5), cat.names[5], 8, 3)[0, 0, 0].item() in range(95, 106)  # red 100
        held = open_catalog(str(given), split="test")
        assert held.class_names == variants and held.labels.tolist() == [0, 1, 2, 3]
        assert [Path(n).name for n in held.names] == [f"{1000000 + i}.jpg" for i in range(8, 12)]
    with pytest.raises(DataError, match=rf"\(it holds 12 loose images\); .*\. {data} holds them with their labels "
                       rf"\(fgvc_aircraft\): give --data {data}$"):  # fmt: skip
        open_catalog(str(data / "images"))
    (data / "variants.txt").unlink()  # the lists' variants, sorted
    assert open_catalog(str(data)).class_names == sorted(variants)
    (data / "variants.txt").write_text("707-320\nA320\n")
    with pytest.raises(DataError, match=r"images_variant_trainval\.txt: variant 'Cessna 172' is not in variants\.txt"):
        open_catalog(str(data))
    (data / "images_variant_test.txt").unlink()
    with pytest.raises(NoTestSplit, match=r"no images_variant_test\.txt \(FGVC-Aircraft's test split\)"):
        open_catalog(str(data), split="test")
    (data / "images_variant_trainval.txt").write_text("1000000\n")
    with pytest.raises(DataError, match=r"images_variant_trainval\.txt: '1000000'; expected lines 'image variant'"):
        open_catalog(str(data))
    (data / "images" / "1000003.jpg").unlink()
    (data / "images_variant_trainval.txt").write_text("\n".join(rows[:8]) + "\n")
    (data / "variants.txt").unlink()
    with pytest.raises(DataError, match=r"1 of the 8 images that images_variant_trainval\.txt lists are not in "
                       r"images/, e\.g\. 1000003\.jpg"):  # fmt: skip
        open_catalog(str(data))
