"""SVHN, STL-10, Flowers-102, EMNIST and QMNIST as torchvision downloads them, and idx files given one by one, read
without torchvision or scipy.

- SVHN: `train_32x32.mat` / `test_32x32.mat` / `extra_32x32.mat` in torchvision's `root`, MATLAB 5 files holding
  X (uint8 [32, 32, 3, N], column-major) and y ([N, 1], the digits 1..10, where 10 is the digit 0, as the set's
  authors number them; torchvision maps 10 to 0, and so does this). `--data root` or `--data train_32x32.mat`.
- STL-10: `root/stl10_binary/` with `train_X.bin` (uint8, each image 3 x 96 x 96, column-major), `train_y.bin`
  (labels 1..10), `test_X.bin` / `test_y.bin` and `class_names.txt`. `--data root`, `root/stl10_binary` or
  `.../train_X.bin`. Its `unlabeled_X.bin` has no labels, which an AC-GAN needs.
- Oxford 102 Flowers: `root/flowers-102/` with `jpg/image_00001.jpg` ... and `imagelabels.mat`: all 8,189 images
  (a GAN's data: setid.mat's train/val/test split is a classifier's). `--data root` or `root/flowers-102`.
- Oxford-IIIT Pet, Food-101, FGVC-Aircraft, CUB-200-2011 and DTD: fastacgan/listed_sets.py; Stanford Cars and
  Stanford Dogs: fastacgan/stanford_sets.py.
- USPS and SEMEION: `usps.bz2` / `usps.t.bz2`, `semeion.data` in torchvision's root (fastacgan/usps.py).
- An idx images file as --data (`train-images-idx3-ubyte[.gz]`, Kaggle's `train-images.idx3-ubyte`), its labels
  beside it; EMNIST's `EMNIST/raw/emnist-<split>-train-images-idx3-ubyte[.gz]` (six splits: one is named by its
  file), its images turned upright (they are stored transposed) and its classes named as torchvision names them.
- QMNIST: `root/QMNIST/raw/qmnist-train-images-idx3-ubyte.gz` and `qmnist-train-labels-idx2-int.gz` (int32 rows of
  8, the digit first); `qmnist-test-*` the test split. `--data root`, `root/QMNIST` or the images file.

The MAT reader: fastacgan/mat_file.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import downsampled_imagenet, hf_sets, listed_sets, lmdb_sets, stanford_sets, tfrecords, usps
from .data import Catalog, DataError, NoTestSplit, file_safe
from .listed_sets import Folder, split_missing
from .mat_file import read_mat

# ------------------------------------------------------------------------------------------------ the sets

SVHN_FILE = re.compile(r"(train|test|extra)_32x32\.mat", re.I)
STL_X, STL_Y = "{}_X.bin", "{}_y.bin"  # .format("train" or "test")
STL_SIDE = 96


def svhn_catalog(path: Path) -> Catalog:
    """The images of one SVHN .mat file (or any MATLAB 5 file with SVHN's X [H, W, C, N] and y [N] or [N, 1]),
    labelled by the digits they show (SVHN's 10 read as 0)."""
    from .datasets import arrays_catalog

    got, seen = read_mat(path, ("X", "y"))
    if set(got) != {"X", "y"}:
        raise DataError(f"--data {path}: a .mat file needs the variables X (images [H, W, C, N]) and y (labels), "
                        f"as SVHN's; it has {', '.join(seen) or 'no variables'}")  # fmt: skip
    x, y = got["X"], got["y"].reshape(-1)
    if x.ndim not in (3, 4):
        raise DataError(f"--data {path}: X is {list(x.shape)}; expected images [H, W, C, N] or [H, W, N]")
    images = np.moveaxis(x, -1, 0)  # [N, H, W(, C)]: one image after another
    svhn = SVHN_FILE.fullmatch(path.name) is not None
    if svhn and y.size and y.min() >= 1 and y.max() <= 10:
        y = y % 10  # the digit 0 is labelled 10
    digits = [str(d) for d in range(10)] if svhn else None
    return arrays_catalog(images, y, f"{path}:X", "svhn" if svhn else path.stem, [str(path)], f"{path}:y", digits)


def svhn_in(d: Path, split: str) -> Catalog:
    """The SVHN split in torchvision's root folder d (train_32x32.mat; test: test_32x32.mat)."""
    path = d / f"{split}_32x32.mat"
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in d.iterdir() if SVHN_FILE.fullmatch(p.name)))
        raise split_missing(split, f"--data {d}: no {path.name} (SVHN's {split} split; it holds {have})")
    return svhn_catalog(path)


def has_svhn(d: Path) -> bool:
    return any((d / f"{s}_32x32.mat").is_file() for s in ("train", "test", "extra"))


def has_stl(d: Path) -> bool:
    return any((d / STL_X.format(s)).is_file() for s in ("train", "test"))


def stl_catalog(x_path: Path) -> Catalog:
    """STL-10's images in x_path (..._X.bin) and their labels in the ..._y.bin beside it; the class names from
    class_names.txt beside them where it is there."""
    from .datasets import arrays_catalog

    y_path = x_path.with_name(x_path.name[: -len("_X.bin")] + "_y.bin")
    if not y_path.is_file():
        raise DataError(f"--data {x_path}: no {y_path.name} beside it: an AC-GAN needs labels (STL-10's "
                        "unlabeled_X.bin has none; train_X.bin and test_X.bin do)")  # fmt: skip
    one = 3 * STL_SIDE * STL_SIDE
    try:
        raw, y = np.fromfile(x_path, np.uint8), np.fromfile(y_path, np.uint8).astype(np.int64)
    except OSError as e:
        raise DataError(f"--data {x_path}: cannot read ({e})") from e
    if raw.size % one:
        raise DataError(f"--data {x_path}: {raw.size} bytes is not a whole number of {STL_SIDE}x{STL_SIDE} RGB images "
                        f"({one} bytes each): cut short or not STL-10's")  # fmt: skip
    images = raw.reshape(-1, 3, STL_SIDE, STL_SIDE).transpose(0, 3, 2, 1)  # each image is stored column-major
    names_file = x_path.with_name("class_names.txt")
    names = names_file.read_text(errors="replace").split() if names_file.is_file() else None
    if len(y) == len(images) and y.size and y.min() >= 1 and (names is None or y.max() <= len(names)):
        y = y - 1  # numbered from 1
    return arrays_catalog(images, y, str(x_path), "stl10", [str(x_path), str(y_path)], str(y_path), names)


def stl_in(d: Path, split: str) -> Catalog:
    """The STL-10 split in its stl10_binary folder d."""
    path = d / STL_X.format(split)
    if not path.is_file():
        raise split_missing(split, f"--data {d}: no {path.name} (STL-10's {split} split)")
    return stl_catalog(path)


def has_flowers(d: Path) -> bool:
    return (d / "imagelabels.mat").is_file() and (d / "jpg").is_dir()


def flowers_in(d: Path, split: str) -> Catalog:
    """Oxford 102 Flowers in torchvision's flowers-102 folder d: jpg/image_00001.jpg ... and imagelabels.mat (labels
    1..102, one per image in number order), all of its images: setid.mat's split is a classifier's (1,020 training
    images, 10 a class), so there is no test split here."""
    from .datasets import _class_list

    if split != "train":
        raise NoTestSplit(f"--data {d}: Flowers-102's images all train the GAN (setid.mat's split is a classifier's)")
    got, seen = read_mat(d / "imagelabels.mat", ("labels",))
    if "labels" not in got:
        raise DataError(f"--data {d}: imagelabels.mat has no variable 'labels' (it has {', '.join(seen) or 'none'})")
    labels, classes = _class_list("flowers102", got["labels"].reshape(-1).astype(np.int64))  # names: 1..102
    rels = [f"jpg/image_{i:05d}.jpg" for i in range(1, len(labels) + 1)]
    return Folder(d).catalog("flowers102", rels, labels, classes, "imagelabels.mat labels")


# ------------------------------------------------------------------------------------------------ idx files, EMNIST

IDX_IMAGES_FILE = re.compile(r"(.*)images([-.])idx3-ubyte(\.gz)?", re.I)  # Kaggle's copies: train-images.idx3-ubyte
EMNIST_FILE = re.compile(r"emnist-([a-z]+)-(?:train|test)-images-idx3-ubyte(?:\.gz)?")
EMNIST_CSV = re.compile(r"emnist-([a-z]+)-(?:train|test)\.csv", re.I)  # Kaggle's copy of each split
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# torchvision's EMNIST class names by split; bymerge and balanced merge the lower-case letters written as the
# capitals are; letters labels a..z as 1..26 (read as 0..25 here: torchvision's class 0 is "N/A", of no image)
EMNIST_CLASSES = {
    "byclass": list(_ALNUM),
    **dict.fromkeys(("bymerge", "balanced"), [c for c in _ALNUM if c not in "cijklmopsuvwxyz"]),
    "letters": list(_ALNUM[36:]),
    **dict.fromkeys(("digits", "mnist"), list(_ALNUM[:10])),
}


def emnist_upright(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray, str, list | None]:
    """EMNIST's images are stored transposed (each column-major), in its idx files and in Kaggle's CSVs of them
    (emnist-letters-train.csv): turned back, as NIST shows them; letters' labels 1..26 read as 0..25; (images,
    labels, the set's name, the split's class names)."""
    y = y - 1 if split == "letters" and y.size and y.min() >= 1 else y
    return x.swapaxes(1, 2), y, f"emnist_{split}", EMNIST_CLASSES.get(split)


def emnist_splits(d: Path) -> list[str]:
    """The EMNIST splits whose training images are in folder d (a stat per split, no listing: this is asked of
    every sub-folder of a --data folder)."""
    return [
        s for s in EMNIST_CLASSES if any((d / f"emnist-{s}-train-images-idx3-ubyte{z}").is_file() for z in ("", ".gz"))
    ]


def emnist_in(d: Path, split: str) -> Catalog:
    """EMNIST's folder holds six data sets: --data names one by its images file."""
    found = emnist_splits(d)
    example = next(d.glob(f"emnist-{found[0]}-train-images-idx3-ubyte*"))
    raise DataError(f"--data {d} holds EMNIST's splits {', '.join(found)}, each a data set of its own: give the "
                    f"training images of one, e.g. --data {example} (balanced: 47 classes of digits and letters; "
                    "letters: 26)")  # fmt: skip


def _beside(path: Path, name: str) -> Path | None:
    """The file `name` beside path, or in a folder of its name beside path's folder (Kaggle's MNIST copy holds
    train-images-idx3-ubyte/train-images-idx3-ubyte and train-labels-idx1-ubyte/train-labels-idx1-ubyte)."""
    return next((p for p in (path.with_name(name), path.parent.parent / name / name) if p.is_file()), None)


def idx_file_catalog(path: Path, split: str) -> Catalog | None:
    """An idx images file given as --data (train-images-idx3-ubyte[.gz], EMNIST's emnist-letters-train-images-...),
    its labels file beside it (idx_catalog); the test split is the t10k-/test- file beside it. None for other
    files."""
    m = IDX_IMAGES_FILE.fullmatch(path.name)
    if m is None:
        return None
    if split != "train":  # MNIST's t10k- file (EMNIST's test-: held_out_sibling's)
        t10k = _beside(path, path.name.replace("train", "t10k", 1)) if "train" in path.name else None
        if t10k is None:
            raise NoTestSplit(f"--data {path}: one split of its set")
        path, m = t10k, IDX_IMAGES_FILE.fullmatch(t10k.name)
    stem = f"{m[1]}labels{m[2]}idx1-ubyte"
    qmnist = f"{m[1]}labels{m[2]}idx2-int"  # (QMNIST's)
    labels = next(filter(None, (_beside(path, n + z) for n in (stem, qmnist) for z in ("", ".gz"))), None)
    if labels is None:
        raise DataError(f"--data {path}: no {stem}[.gz] beside it (the labels)")
    return idx_catalog(path, labels)


def idx_catalog(images: Path, labels: Path) -> Catalog:
    """An idx images file and its labels file, named after their folder (torchvision's MNIST/raw: MNIST; MNIST,
    Fashion-MNIST and KMNIST get torchvision's class names). EMNIST's images are stored transposed (each
    column-major): they are turned back, as NIST shows them, and its classes named per split."""
    from .datasets import arrays_catalog, read_idx

    x, y = read_idx(images), read_idx(labels)
    if y.ndim == 2 and y.shape[1] == 8 and x.ndim == 3:  # QMNIST's: the digit, then its NIST writer, series, ...
        y = y[:, 0]  # (the digit alone: torchvision's QMNIST targets, compat=True)
    folder = images.parent.parent if images.parent.name == "raw" else images.parent
    name, classes = file_safe(folder.name.lower()), None
    if em := EMNIST_FILE.fullmatch(images.name):
        x, y, name, classes = emnist_upright(x, y, em[1])
    return arrays_catalog(x, y, str(images), name, [str(images), str(labels)], str(labels), classes)


QMNIST = "qmnist-{}-images-idx3-ubyte"  # in torchvision's QMNIST/raw: train, test (its 60,000: MNIST's 10,000 and more)


def _qmnist(d: Path, split: str) -> Path | None:
    """QMNIST's images file of split in folder d or its raw/ (torchvision's QMNIST/raw), plain or .gz."""
    names = [f"{QMNIST.format(split)}{z}" for z in ("", ".gz")]
    return next((f / n for f in (d / "raw", d) for n in names if (f / n).is_file()), None)


def qmnist_in(d: Path, split: str) -> Catalog:
    """QMNIST in torchvision's QMNIST folder d (or its raw/): qmnist-train-images-idx3-ubyte.gz and
    qmnist-train-labels-idx2-int.gz (idx_file_catalog); the test split: qmnist-test-*, torchvision's QMNIST test."""
    if (images := _qmnist(d, split)) is None:
        raise split_missing(split, f"--data {d}: no {QMNIST.format(split)}[.gz] (QMNIST's {split} split)")
    return idx_file_catalog(images, "train")


# the sets a folder may be: kind -> (whether folder d holds it, its reader, a word of the folder's usual name)
FOLDER_SETS = {
    "svhn": (has_svhn, svhn_in, "svhn"),
    "stl10": (has_stl, stl_in, "stl"),
    "flowers102": (has_flowers, flowers_in, "flower"),
    "stanford_cars": (stanford_sets.has_cars, stanford_sets.cars_in, "car"),
    "stanford_dogs": (stanford_sets.has_dogs, stanford_sets.dogs_in, "dog"),
    **listed_sets.SETS,  # Oxford-IIIT Pet, Food-101, FGVC-Aircraft, CUB-200-2011, DTD
    "emnist": (emnist_splits, emnist_in, "emnist"),
    "qmnist": (lambda d: _qmnist(d, "train") is not None, qmnist_in, "qmnist"),
    "imagenet_ds": (downsampled_imagenet.has_batches, downsampled_imagenet.batches_in, "imagenet"),
    "usps": (usps.has_usps, usps.usps_in, "usps"),
    "semeion": (lambda d: (d / usps.SEMEION).is_file(), usps.semeion_in, "semeion"),
    "hf": (hf_sets.has_hf_set, hf_sets.hf_set_in, "parquet"),
    "lsun": (lmdb_sets.has_lsun, lmdb_sets.lsun_in, "lmdb"),
    "tfrecord": (tfrecords.has_tfrecords, tfrecords.tfrecords_in, "tfrec"),
}


def set_in(d: Path, named: str | None = None) -> str | None:
    """Which of FOLDER_SETS folder d holds, or None. named: only the sets whose folders are usually so named
    (a sub-folder of --data: each check is a few stat calls, and ImageNet has 1,000 class folders)."""
    return next((kind for kind, (has, _, word) in FOLDER_SETS.items()
                 if (named is None or word in named.lower()) and has(d)), None)  # fmt: skip


def binary_file_catalog(path: Path, split: str) -> Catalog | None:
    """An SVHN-style .mat file, an STL-10 ..._X.bin file or an idx images file given as --data (one split: a test
    split is the file of that name beside it, held_out_sibling), else None."""
    lower = path.name.lower()
    if (cat := idx_file_catalog(path, split)) is not None:
        return cat
    if (cat := downsampled_imagenet.batch_file_catalog(path, split)) is not None:
        return cat
    if not lower.endswith(".mat") and not path.name.endswith("_X.bin"):
        return None
    if split != "train":
        raise NoTestSplit(f"--data {path}: one split of its set")
    return svhn_catalog(path) if lower.endswith(".mat") else stl_catalog(path)
