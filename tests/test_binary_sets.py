"""SVHN's .mat files and STL-10's binary files as torchvision downloads them (fastacgan/binary_sets.py).

tests/data/svhn/ holds two files written by scipy.io.savemat (train: compressed, labels uint8; test: not
compressed, labels double), the images X[r, c, ch, n] = (7r + 3c + 50ch + 11n) % 256. STL-10's files are written
here as its authors describe them and read back, for the reference, with torchvision's own code."""

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from fastacgan.binary_sets import read_mat
from fastacgan.data import DataError, NoTestSplit, open_catalog
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


def test_a_run_trains_on_svhn(svhn_root, tmp_path, capsys):
    main(["--data", str(svhn_root), *TINY, "--batch-size", "4", "--steps", "2", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "-> 6 images, 10 classes (0, 1, 2, 3, 4, 5 ...), 3 channel(s)" in out
    assert "SVHN and STL-10 files" in out  # the resident loader: already decoded
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
    (tmp_path / "stl10_binary.tar.gz").write_bytes(bytes(64))  # 2.6 GB, and the reading would find no images
    with pytest.raises(DataError, match=r"STL-10's download is read unpacked: tar xzf stl10_binary\.tar\.gz, then"):
        open_catalog("stl10_binary.tar.gz")
