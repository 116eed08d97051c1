"""Stanford's fine-grained sets as they are downloaded, with their MATLAB lists (fastacgan/mat_file.py).

Stanford Cars (196 classes of cars: 8,144 training images, 8,041 test images), read as torchvision's StanfordCars
reads it:
- torchvision's `root/stanford_cars/`: `cars_train/00001.jpg` ..., `cars_test/`, `devkit/cars_meta.mat` (the class
  names), `devkit/cars_train_annos.mat` (`annotations`: fname, class 1..196, a box a car) and
  `cars_test_annos_withlabels.mat` (the test images' classes: the devkit's `cars_test_annos.mat` has none);
- Kaggle's copy (jessicali9530/stanford-cars-dataset): `cars_train/cars_train/`, `cars_test/cars_test/` and
  `car_devkit/devkit/`;
- the set's later release: `car_ims/000001.jpg` ... beside `cars_annos.mat` (`annotations`: relative_im_path,
  class, test, 1 for a test image; and `class_names`).
As an image folder it was refused ("class folder devkit holds no images"), its parts of images alone.

Stanford Dogs (120 breeds, 20,580 images) as its site ships it: `Images/n02085620-Chihuahua/n02085620_10074.jpg`
... beside `Annotation/` (boxes) and the lists `train_list.mat` / `test_list.mat` (`file_list`: a cell array of
those paths; or in `lists/`): the 12,000 training images, the 8,580 of the test list held out, classes by folder
(it was refused: "class folder Annotation holds no images"; `--data .../Images` reads all of them, the test list's
too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Catalog, DataError, NoTestSplit
from .listed_sets import Folder, split_missing
from .mat_file import read_mat

TEST_LABELS = "cars_test_annos_withlabels.mat"


def _devkit(d: Path) -> Path | None:
    return next((d / r for r in ("devkit", "car_devkit/devkit", "car_devkit") if (d / r / "cars_meta.mat").is_file()),
                None)  # fmt: skip


def _images(d: Path, split: str) -> Path | None:
    """The folder of a split's images: cars_train/, or Kaggle's cars_train/cars_train/."""
    return next((d / r for r in (f"cars_{split}/cars_{split}", f"cars_{split}") if (d / r).is_dir()), None)


def _release(d: Path) -> bool:  # car_ims/ beside cars_annos.mat
    return (d / "cars_annos.mat").is_file() and (d / "car_ims").is_dir() and _images(d, "train") is None


def has_cars(d: Path) -> bool:
    return (_devkit(d) is not None and _images(d, "train") is not None) or _release(d)


def _variable(path: Path, name: str, kind: str, fields: tuple[str, ...] = ()) -> list:
    """A MATLAB file's struct array (kind "struct", whose elements have `fields`) or cell array of text ("text")."""
    got, seen = read_mat(path, (name,), values=True)
    value = got.get(name)
    want = dict if kind == "struct" else str
    if not isinstance(value, list) or not value or not all(isinstance(v, want) for v in value):
        held = f"it has {type(value).__name__}" if name in got else f"its variables: {', '.join(seen) or 'none'}"
        raise DataError(f"--data {path}: expected a {'struct' if kind == 'struct' else 'cell'} array {name!r} ({held})")
    if missing := [f for f in fields if f not in value[0]]:
        raise DataError(f"--data {path}: {name} has no field {', '.join(missing)} (its fields: {', '.join(value[0])})")
    return value


def _numbers(rows: list[dict], field: str, path: Path) -> list[int]:
    """Each struct element's `field`, one whole number (a damaged file's is refused, naming the element)."""
    out = []
    for k, r in enumerate(rows):
        value = np.asarray(r[field] if r[field] is not None else [])
        if value.size != 1 or value.dtype.kind not in "iuf":
            raise DataError(f"--data {path}: annotation {k + 1}'s {field} is {str(r[field])[:40]!r}, not a number")
        out.append(int(value.reshape(-1)[0]))
    return out


def cars_in(d: Path, split: str) -> Catalog:
    """The images of `split` in Stanford Cars' folder d, labelled by their annotations (class i is class_names'
    i-th), as torchvision's StanfordCars reads them; the test split where its labels are there (else NoTestSplit)."""
    if _release(d):
        annos = d / "cars_annos.mat"
        rows = _variable(annos, "annotations", "struct", ("relative_im_path", "class", "test"))
        names = _variable(annos, "class_names", "text")
        rows = [r for r, test in zip(rows, _numbers(rows, "test", annos)) if test == (split != "train")]
        rels = [str(r["relative_im_path"]).replace("\\", "/") for r in rows]
    else:
        kit = _devkit(d)
        names = _variable(kit / "cars_meta.mat", "class_names", "text")
        annos = kit / "cars_train_annos.mat"
        if split != "train":
            annos = next((p for p in (d / TEST_LABELS, kit / TEST_LABELS, d.parent / TEST_LABELS) if p.is_file()), None)
            if annos is None:
                raise NoTestSplit(f"--data {d}: Stanford Cars' test images are labelled by {TEST_LABELS} (torchvision "
                                  f"keeps it in stanford_cars/), which is not here ({kit.name}/cars_test_annos.mat "
                                  "gives no classes)")  # fmt: skip
        if (images := _images(d, split)) is None:
            raise split_missing(split, f"--data {d}: no cars_{split}/ folder of Stanford Cars' {split} images")
        rows = _variable(annos, "annotations", "struct", ("fname", "class"))
        rels = [(images / str(r["fname"])).relative_to(d).as_posix() for r in rows]
    labels = np.array(_numbers(rows, "class", annos), dtype=np.int64).reshape(-1) - 1
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(f"--data {annos}: classes numbered {labels.min() + 1} to {labels.max() + 1}, but "
                        f"class_names names {len(names)}")  # fmt: skip
    return Folder(d).catalog("stanford_cars", rels, labels, names, f"{annos.name} lists")


def _dog_list(d: Path, split: str) -> Path | None:
    name = f"{'train' if split == 'train' else 'test'}_list.mat"
    return next((p for p in (d / name, d / "lists" / name) if p.is_file()), None)


def has_dogs(d: Path) -> bool:
    return (d / "Images").is_dir() and _dog_list(d, "train") is not None


def dogs_in(d: Path, split: str) -> Catalog:
    """The images of Stanford Dogs' `split` list in its folder d, each of its class folder in Images/."""
    if (listed := _dog_list(d, split)) is None:
        raise split_missing(split, f"--data {d}: no {split}_list.mat (Stanford Dogs' {split} split)")
    files = [f.replace("\\", "/") for f in _variable(listed, "file_list", "text")]
    classes = sorted(p.name for p in (d / "Images").iterdir() if p.is_dir() and not p.name.startswith("."))
    index = {c: k for k, c in enumerate(classes)}
    if stray := [f for f in files if f.split("/")[0] not in index]:
        raise DataError(f"--data {listed}: {len(stray)} of its {len(files)} images are in no class folder of "
                        f"{d / 'Images'}, e.g. {stray[0]}")  # fmt: skip
    labels = np.array([index[f.split("/")[0]] for f in files], dtype=np.int64)
    return Folder(d).catalog("stanford_dogs", [f"Images/{f}" for f in files], labels, classes, f"{listed.name} lists")
