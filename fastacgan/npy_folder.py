"""NumPy files read as a data set (a folder of them, or one of Kuzushiji's .npz files):

- one file a class, named after it: Quick, Draw!'s numpy bitmaps (`numpy_bitmap/cat.npy`, saved by the tutorials as
  `full_numpy_bitmap_cat.npy`: uint8 [N, 784], 28x28 drawings, white on black), or any uint8 [N, H, W] or
  [N, H, W, C] arrays; --classes picks the files to read (all 345 of Quick, Draw! take 38 GB);
- the arrays of an .npz saved one by one: `x_train.npy` and `y_train.npy` (`x_test.npy`, `y_test.npy`), or
  `train_images.npy` and `train_labels.npy`, as datasets.npz_catalog reads them from an .npz;
- Kuzushiji-MNIST's and Kuzushiji-49's .npz pairs, an array each (`k49-train-imgs.npz`, `k49-train-labels.npz`,
  `k49-test-...`), their classes named by the characters of `k49_classmap.csv` beside them.

The files are mapped, not read, until the classes to train on are known; a selection larger than half the memory
this process may take is refused before it is read.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from .class_picks import picked_classes
from .data import Catalog, DataError, Every, NoTestSplit, folder_name, hidden, is_image
from .heap import byte_size
from .limits import host_memory_available

PREFIX = "full_numpy_bitmap_"  # Quick, Draw!'s files as its tutorials save them
FORMS = (("x_{}", "y_{}"), ("{}_images", "{}_labels"))  # an .npz's arrays (datasets.npz_catalog), one file each
PAIRED = {f.format(s) for form in FORMS for f in form for s in ("train", "test")}
KUZUSHIJI = re.compile(r"(.+)-(train|test)-(imgs|labels)\.npz", re.IGNORECASE)  # k49-train-imgs.npz: (k49, train, imgs)


def npy_files(d: Path) -> dict[str, Path]:
    """The .npy files in d by name (without .npy) where they are its data: d holds them and no images or folders;
    else {}."""
    found, others = {}, False
    for p in d.iterdir():
        if hidden(p.name):
            continue
        if (p.name.lower().endswith(".npy") or KUZUSHIJI.fullmatch(p.name)) and p.is_file():
            found[p.name[:-4]] = p
        elif p.is_dir() or is_image(p.name):
            others = True
    return {} if others else found


def _load(path: Path) -> np.ndarray:
    """An .npy's array (mapped), or the one array of an .npz (Kuzushiji's, read)."""
    try:
        if path.suffix.lower() != ".npz":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            if len(z.files) != 1:
                raise DataError(f"--data {path}: expected one array, found {len(z.files)} ({', '.join(z.files[:5])})")
            return z[z.files[0]]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy raises what it meets in a damaged file (BadZipFile, TokenError ...)
        raise DataError(f"--data {path}: cannot read the {path.suffix}: damaged? ({type(e).__name__}: {e})") from e


def _kuzushiji_names(files: dict[str, Path], prefix: str) -> list[str] | None:
    """The characters that name a Kuzushiji set's classes, from <prefix>_classmap.csv beside its files
    (index,codepoint,char), or None."""
    path = next(iter(files.values())).parent / f"{prefix}_classmap.csv"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = {int(r["index"]): r["char"] for r in csv.DictReader(f)}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [rows[k] for k in range(len(rows))] if set(rows) == set(range(len(rows))) else None


def _images(x: np.ndarray, path: Path) -> np.ndarray:
    """A file's images as [N, H, W] or [N, H, W, C]: a flat row each ([N, 784]: Quick, Draw!) is a square."""
    if x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] > 1 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:
        side = math.isqrt(x.shape[1])
        return x.reshape(len(x), side, side)
    if x.ndim in (3, 4) and x.dtype == np.uint8:
        return x
    raise DataError(f"--data {path}: expected images, uint8 [N, H, W] or [N, H, W, C] or a flat square row each "
                    f"([N, 784]: 28x28), found {x.dtype} {list(x.shape)}")  # fmt: skip


def _fits(nbytes: int, what: str, hint: str) -> None:
    room = host_memory_available()
    if room is not None and nbytes > room // 2:
        raise DataError(f"{what} take {byte_size(nbytes)}, more than half of the {byte_size(room)} of memory this "
                        f"process may take; {hint}")  # fmt: skip


def pair_catalog(d: Path, split: str, files: dict[str, Path]) -> Catalog | None:
    """The images and labels of `split` in d (files: npy_files(d)): an .npz's arrays saved one by one (x_train.npy
    and y_train.npy: FORMS) or Kuzushiji's pair (k49-train-imgs.npz, k49-train-labels.npz); None where d holds no
    such files (or, for "test", no test pair)."""
    from .datasets import arrays_catalog

    low = {n.lower(): n for n in files}
    kuzushiji = sorted({m[1] for n in low if (m := KUZUSHIJI.fullmatch(n + ".npz"))})
    forms = [*FORMS, *((f"{p}-{{}}-imgs", f"{p}-{{}}-labels") for p in kuzushiji)]
    for xf, yf in forms:
        xk, yk = low.get(xf.format(split)), low.get(yf.format(split))
        if xk and yk:
            x, y = _load(files[xk]), _load(files[yk])
            _fits(x.nbytes, f"--data {files[xk]}: its images", "save a part of them")
            names = _kuzushiji_names(files, xk.rsplit("-", 2)[0]) if xf.endswith("-imgs") else None
            return arrays_catalog(np.asarray(x), np.asarray(y), str(files[xk]), folder_name(d), [str(files[xk])],
                                  str(files[yk]), class_names=names)  # fmt: skip
    if split == "train" and (PAIRED & set(low) or kuzushiji):
        raise DataError(f"--data {d}: its NumPy files ({', '.join(sorted(files)[:6])}) have no training pair: "
                        "x_train.npy with y_train.npy (or train_images.npy with train_labels.npy; Kuzushiji's "
                        "k49-train-imgs.npz with k49-train-labels.npz)")  # fmt: skip
    return None


def kuzushiji_file_catalog(path: Path, split: str) -> Catalog | None:
    """A Kuzushiji images .npz given as --data (k49-train-imgs.npz): it, with its labels beside it; the test split
    is the -test- pair beside a -train- file. None for other files."""
    m = KUZUSHIJI.fullmatch(path.name)
    if m is None or m[3].lower() != "imgs":
        return None
    if split != "train":
        path = path.with_name(f"{m[1]}-test-{m[3]}.npz")
        if m[2].lower() != "train" or not path.is_file():
            raise NoTestSplit(f"--data {path}: one split of its set")
    labels = path.with_name(f"{path.name[: -len('imgs.npz')]}labels.npz")
    if not labels.is_file():
        raise DataError(f"--data {path}: no {labels.name} beside it (the labels)")
    pair = {path.name[:-4]: path, labels.name[:-4]: labels}
    return pair_catalog(path.parent, KUZUSHIJI.fullmatch(path.name)[2].lower(), pair)


def class_files_catalog(d: Path, files: dict[str, Path], classes: str = "", log=lambda msg: None) -> Catalog:
    """One class a file (files: npy_files(d)), named by the file (Quick, Draw!'s prefix dropped); classes:
    --classes, applied before any file is read."""
    from .datasets import arrays_catalog

    by_class = {n.removeprefix(PREFIX): p for n, p in files.items()}
    names = sorted(by_class)
    wanted = picked_classes(classes, names) if classes else names
    arrays = [_images(_load(by_class[c]), by_class[c]) for c in wanted]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        one = {a.shape[1:]: c for c, a in zip(wanted, arrays)}  # a class of each shape
        raise DataError(f"--data {d}: the files' images differ in shape ("
                        + ", ".join(f"{one[s]}: {list(s)}" for s in sorted(shapes)) + ")")  # fmt: skip
    total = sum(a.nbytes for a in arrays)
    pick = f"--classes picks the classes (files) to train on, e.g. --classes {','.join(names[:3])}"
    _fits(total, f"--data {d}: the {len(arrays)} files' images", pick)
    out = np.empty((sum(len(a) for a in arrays), *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    at, due = 0, Every()
    for k, a in enumerate(arrays):
        out[at : at + len(a)] = a
        at += len(a)
        if due(k == len(arrays) - 1):
            log(f"reading {d}: {k + 1} of {len(arrays)} .npy files ({byte_size(out[:at].nbytes)})")
    labels = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    return arrays_catalog(out, labels, str(d), folder_name(d), [str(by_class[c]) for c in wanted],
                          class_names=wanted)  # fmt: skip
