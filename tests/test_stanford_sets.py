"""Stanford Cars as torchvision, Kaggle and its own later release ship it, Stanford Dogs as its site does
(fastacgan/stanford_sets.py), and the MAT reader's text, cell and struct arrays (fastacgan/mat_file.py).

tests/data/stanford_cars/ holds MATLAB files written by scipy.io.savemat (make_fixtures.py beside them), shaped as
the set's own: struct arrays `annotations` (fname, class, a box; the release's relative_im_path and test) and a cell
array `class_names`; compressed and not; tests/data/stanford_dogs/ Stanford Dogs' lists (cell arrays of the images'
paths). The images are written here."""

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.mat_file import read_mat

FIXTURES = Path(__file__).parent / "data" / "stanford_cars"
NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def _images(folder: Path, n: int, width: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        Image.new("RGB", (24, 16), (40 * i, 0, 0)).save(folder / f"{i:0{width}d}.jpg")


def test_stanford_cars_as_torchvision_downloads_it(tmp_path):
    """torchvision's stanford_cars/: cars_train/, cars_test/ (images alone), devkit/cars_meta.mat (the class names),
    devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (the classes, 1-based). It was refused: "class
    folder devkit holds no images". Read as torchvision's StanfordCars reads it, its test split held out."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES / "torchvision", root / "stanford_cars")
    folder = root / "stanford_cars"
    _images(folder / "cars_train", 4)
    _images(folder / "cars_test", 3)
    for data in (root, folder):
        train = open_catalog(str(data))
        assert train.name == "stanford_cars" and train.class_names == NAMES and train.labels.tolist() == [0, 1, 2, 0]
        assert [Path(n).relative_to(folder).as_posix() for n in train.names] == [f"cars_train/{i:05d}.jpg" for i in
                                                                                  range(1, 5)]  # fmt: skip
        assert decode_image(train.read_bytes(1), train.names[1], 8, 3)[0, 0, 0].item() in range(75, 86)  # image 2
        test = open_catalog(str(data), split="test")
        assert test.class_names == NAMES and test.labels.tolist() == [2, 1, 0] and len(test) == 3
        assert all("/cars_test/" in n for n in test.names)
    with pytest.raises(DataError, match=rf"\. {folder} holds them with their labels \(stanford_cars\): give --data "
                       rf"{folder}$"):  # fmt: skip
        open_catalog(str(folder / "cars_train"))
    (folder / "cars_train" / "00003.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 4 images that cars_train_annos\.mat lists are not in cars_train/, "
                       r"e\.g\. 00003\.jpg"):  # fmt: skip
        open_catalog(str(folder))


def test_stanford_cars_as_kaggle_ships_it(tmp_path):
    """Kaggle's copy: cars_train/cars_train/, cars_test/cars_test/, car_devkit/devkit/ (whose cars_test_annos.mat
    has no classes): the training images read, no test split, said (naming the file that labels them)."""
    root = tmp_path / "stanford-cars-dataset"
    shutil.copytree(FIXTURES / "torchvision" / "devkit", root / "car_devkit" / "devkit")
    _images(root / "cars_train" / "cars_train", 4)
    _images(root / "cars_test" / "cars_test", 3)
    train = open_catalog(str(root))
    assert train.class_names == NAMES and train.labels.tolist() == [0, 1, 2, 0]
    assert all("/cars_train/cars_train/" in n for n in train.names)
    with pytest.raises(NoTestSplit, match=r"labelled by cars_test_annos_withlabels\.mat .*which is not here \(devkit/"
                       r"cars_test_annos\.mat gives no classes\)"):  # fmt: skip
        open_catalog(str(root), split="test")
    shutil.copy(FIXTURES / "torchvision" / "cars_test_annos_withlabels.mat", root)
    assert open_catalog(str(root), split="test").labels.tolist() == [2, 1, 0]


def test_stanford_cars_later_release(tmp_path):
    """car_ims/000001.jpg ... beside cars_annos.mat (relative_im_path, class, test; class_names): its test flag
    splits it."""
    root = tmp_path / "cars"
    shutil.copy(FIXTURES / "release" / "cars_annos.mat", tmp_path / "cars_annos.mat")
    _images(root / "car_ims", 5, width=6)
    shutil.move(tmp_path / "cars_annos.mat", root)
    train, test = open_catalog(str(root)), open_catalog(str(root), split="test")
    assert train.class_names == test.class_names == NAMES
    assert train.labels.tolist() == [1, 2, 0] and test.labels.tolist() == [0, 2]
    assert [Path(n).name for n in test.names] == ["000004.jpg", "000005.jpg"]


def test_the_mat_reader_reads_text_cells_and_structs(tmp_path):
    """read_mat(values=True) against scipy.io.loadmat: text (one row, several rows, not ASCII), cell arrays (of
    mixed values, column by column), struct arrays (with an empty field, nested), compressed and not."""
    sio = pytest.importorskip("scipy.io")
    cell = np.empty((2, 2), dtype=object)
    cell[:, :] = [[np.array([[1.5]]), "ab"], [np.zeros((0, 0)), np.array([[7]], np.int16)]]
    st = np.zeros((1, 3), dtype=[("fname", "O"), ("class", "O"), ("empty", "O"), ("inner", "O")])
    for i in range(3):
        st[0, i] = (f"{i:05d}.jpg", np.array([[i + 1]], np.uint8), np.zeros((0, 0)), {"q": np.array([[i]])})
    values = {"text": "Citroën C4", "rows": np.array(["abc", "def"]), "cell": cell, "st": st, "m": np.eye(2)}
    for compress in (True, False):
        path = tmp_path / f"v_{compress}.mat"
        sio.savemat(path, values, do_compression=compress)
        got, seen = read_mat(path, tuple(values), values=True)
        assert seen == list(values)
        assert got["text"] == "Citroën C4" and got["rows"] == ["abc", "def"]
        assert got["cell"][0].tolist() == [[1.5]] and got["cell"][1].size == 0 and got["cell"][2] == "ab"  # by column
        assert got["cell"][3].dtype == np.int16 and got["cell"][3].tolist() == [[7]]
        assert [r["fname"] for r in got["st"]] == ["00000.jpg", "00001.jpg", "00002.jpg"]
        assert [r["class"].item() for r in got["st"]] == [1, 2, 3] and all(r["empty"].size == 0 for r in got["st"])
        assert [r["inner"][0]["q"].item() for r in got["st"]] == [0, 1, 2]
        assert np.array_equal(got["m"], np.eye(2))
        want = sio.loadmat(path, squeeze_me=True)["st"]  # (the reference: torchvision reads the set so)
        assert [str(w["fname"]) for w in want] == [r["fname"] for r in got["st"]]
        assert [int(w["class"]) for w in want] == [r["class"].item() for r in got["st"]]
    sio.savemat(tmp_path / "cplx.mat", {"c": np.ones(2) + 1j})
    with pytest.raises(DataError, match="variable 'c' is not a matrix, text, a cell or struct array"):
        read_mat(tmp_path / "cplx.mat", ("c",), values=True)


def test_stanford_cars_damaged_annotations_are_named(tmp_path, monkeypatch):
    """An annotation whose class is empty or text (a damaged file) is refused naming it: it was a TypeError from
    int() (found by fuzzing the set's files)."""
    import fastacgan.stanford_sets as cars

    folder = tmp_path / "stanford_cars"
    shutil.copytree(FIXTURES / "torchvision", folder)
    _images(folder / "cars_train", 4)
    real = cars.read_mat

    def damaged(path, names, values=False):
        got, seen = real(path, names, values)
        if "annotations" in got:
            got["annotations"][1]["class"] = None
            got["annotations"][2]["class"] = "x"
        return got, seen

    monkeypatch.setattr(cars, "read_mat", damaged)
    with pytest.raises(DataError, match=r"cars_train_annos\.mat: annotation 2's class is 'None', not a number"):
        open_catalog(str(folder))


def test_stanford_dogs_as_its_site_ships_it(tmp_path):
    """Images/<wnid-breed>/ beside Annotation/ (boxes, files without an extension) and train_list.mat /
    test_list.mat: it was refused ("class folder Annotation holds no images"); now the training list's images are
    read, the test list's held out, classes by folder (in lists/ too); a list naming a folder that is not there is
    refused naming it."""
    root = tmp_path / "stanford-dogs"
    classes = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    for k, c in enumerate(classes):
        for i in range(3):
            (root / "Images" / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (100 * k, 40 * i, 0)).save(root / "Images" / c / f"{c.split('-')[0]}_{i}.jpg")
            (root / "Annotation" / c).mkdir(parents=True, exist_ok=True)
            (root / "Annotation" / c / f"{c.split('-')[0]}_{i}").write_text("<annotation/>")
    for name in ("train_list.mat", "test_list.mat"):
        shutil.copy(FIXTURES.parent / "stanford_dogs" / name, root / name)
    for moved in (False, True):
        if moved:  # (the lists in a folder of their own: read the same)
            (root / "lists").mkdir()
            for name in ("train_list.mat", "test_list.mat"):
                shutil.move(root / name, root / "lists" / name)
        train, test = open_catalog(str(root)), open_catalog(str(root), split="test")
        assert train.name == "stanford_dogs" and train.class_names == test.class_names == classes
        assert train.labels.tolist() == [0, 0, 1, 1] and test.labels.tolist() == [0, 1]
        assert [Path(n).name for n in test.names] == ["n02085620_2.jpg", "n02085782_2.jpg"]
    shutil.rmtree(root / "Images" / classes[1])
    with pytest.raises(DataError, match=r"train_list\.mat: 2 of its 4 images are in no class folder of .*Images, "
                       r"e\.g\. n02085782-Japanese_spaniel/n02085782_0\.jpg"):  # fmt: skip
        open_catalog(str(root))


def test_the_mat_reader_reads_empty_cells_and_refuses_damaged_sizes(tmp_path):
    """Written here by the format's description (no scipy): MATLAB writes an empty cell as a matrix element of no
    bytes (None); a struct array of no fields whose dimensions claim 10^10 elements (damaged) is refused, not built
    element by element (it ran until memory gave out)."""

    def element(typ: int, data: bytes) -> bytes:
        return struct.pack("<II", typ, len(data)) + data + bytes(-len(data) % 8)

    def cell(rows: int, cols: int, items: bytes) -> bytes:
        head = element(6, struct.pack("<II", 1, 0)) + element(5, struct.pack("<ii", rows, cols)) + element(1, b"c")
        return element(14, head + items)

    text = element(14, element(6, struct.pack("<II", 4, 0)) + element(5, struct.pack("<ii", 1, 2)) + element(1, b"")
                   + element(4, "ab".encode("utf-16-le")))  # fmt: skip
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    (tmp_path / "empty.mat").write_bytes(header + cell(1, 2, element(14, b"") + text))
    assert read_mat(tmp_path / "empty.mat", ("c",), values=True)[0] == {"c": [None, "ab"]}
    head = element(6, struct.pack("<II", 2, 0)) + element(5, struct.pack("<ii", 100_000, 100_000)) + element(1, b"s")
    no_fields = element(14, head + element(5, struct.pack("<i", 32)) + element(1, b""))
    (tmp_path / "huge.mat").write_bytes(header + no_fields)
    with pytest.raises(DataError, match=r"variable 's' has 10000000000 elements in \d+ bytes: damaged"):
        read_mat(tmp_path / "huge.mat", ("s",), values=True)
