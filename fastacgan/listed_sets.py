"""Image sets whose lists say which images train and which are held out, read as torchvision reads them (their
class folders or files alone would be read whole, held-out images too, or as the wrong classes):

- Oxford-IIIT Pet: `root/oxford-iiit-pet/` with `images/*.jpg` and `annotations/trainval.txt` / `test.txt` (the
  splits torchvision reads), classes named by breed. `--data root` or `root/oxford-iiit-pet`.
- Food-101: `root/food-101/` with `images/<class>/<id>.jpg` and `meta/train.txt` / `test.txt` (`apple_pie/1005649`
  lines; or torchvision's `meta/train.json`; Kaggle's copy keeps them in `meta/meta/`): the 75,750 training images,
  the 25,250 of the test list held out. `--data root` or `root/food-101`; `--data root/food-101/images` reads all
  101,000 as the classes' folders, which the run says.
- FGVC-Aircraft: `root/fgvc-aircraft-2013b/data/` with `images/<id>.jpg`, `images_variant_trainval.txt` /
  `images_variant_test.txt` (`1025794 707-320`: the image, its variant, of the 100 in `variants.txt`), as
  torchvision's FGVCAircraft reads them (its default, the variants): 6,667 images, 3,333 held out. `--data root`,
  `root/fgvc-aircraft-2013b` or its `data/`. As an image folder it was one class, `images`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .data import Catalog, DataError, Files, NoTestSplit


def split_missing(split: str, msg: str) -> DataError:
    """The error for a split whose file is not there: NoTestSplit for the test split (evaluate says it and goes on),
    else a DataError."""
    return (NoTestSplit if split == "test" else DataError)(msg)


def listed_catalog(name: str, d: Path, paths: list[str], labels, classes: list[str], listed_by: str) -> Catalog:
    """The Catalog of the image files that a labels file in folder d lists, all of which must be there (listed_by:
    the file and its verb, "imagelabels.mat labels")."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        where = Path(os.path.relpath(Path(missing[0]).parent, d)).as_posix()
        raise DataError(f"--data {d}: {len(missing)} of the {len(paths)} images that {listed_by} are not in "
                        f"{where}/, e.g. {Path(missing[0]).name}")  # fmt: skip
    return Catalog(name, paths, labels, classes, Files(paths), sources=paths)


PET_SPLITS = {"train": "trainval.txt", "test": "test.txt"}


def has_pets(d: Path) -> bool:
    return (d / "annotations" / "trainval.txt").is_file() and (d / "images").is_dir()


def pets_in(d: Path, split: str) -> Catalog:
    """Oxford-IIIT Pet in torchvision's oxford-iiit-pet folder d: images/<Breed>_<n>.jpg and annotations/trainval.txt
    (`Abyssinian_100 1 1 1`: the image, its class 1..37, species, breed id), the training split as torchvision's;
    test.txt the test split. The classes are named as torchvision names them, by the breed in the images' names
    (american_bulldog_12: "American Bulldog"). As an image folder it was two classes, "annotations" (the trimaps)
    and "images"."""
    lst = d / "annotations" / PET_SPLITS[split]
    if not lst.is_file():
        raise split_missing(split, f"--data {d}: no annotations/{lst.name} (Oxford-IIIT Pet's {split} split)")
    rows = [line.split() for line in lst.read_text(errors="replace").splitlines() if line.strip()[:1] not in "#"]
    bad = next((r for r in rows if len(r) < 2 or not r[1].isdigit()), None)
    if bad is not None or not rows:
        raise DataError(f"{lst}: {'no rows' if bad is None else repr(' '.join(bad))}; expected lines 'image class-id "
                        f"...' (Abyssinian_100 1 1 1)")  # fmt: skip
    breeds = {int(r[1]): " ".join(w.title() for w in r[0].rsplit("_", 1)[0].split("_")) for r in rows}
    ids = sorted(breeds)
    labels = np.searchsorted(ids, [int(r[1]) for r in rows]).astype(np.int64)
    paths = [str(d / "images" / f"{r[0]}.jpg") for r in rows]
    return listed_catalog("oxford_pet", d, paths, labels, [breeds[k] for k in ids], f"annotations/{lst.name} lists")


FOOD_META = ("meta", "meta/meta")  # torchvision's food-101/meta/; the Kaggle copy's meta/meta/


def _food_meta(d: Path) -> Path | None:
    return next((d / m for m in FOOD_META if any((d / m / f"train.{x}").is_file() for x in ("txt", "json"))), None)


def has_food(d: Path) -> bool:
    return (d / "images").is_dir() and _food_meta(d) is not None


def _food_list(meta: Path, split: str) -> tuple[Path, list[str]] | None:
    """The list of a Food-101 split (meta/train.txt: `apple_pie/1005649` lines; or meta/train.json, {class: [those]},
    which torchvision reads), or None where neither is there."""
    txt, js = meta / f"{split}.txt", meta / f"{split}.json"
    if txt.is_file():
        return txt, txt.read_text(errors="replace").split()
    if not js.is_file():
        return None
    try:
        got = json.loads(js.read_text(errors="replace"))
    except ValueError as e:
        raise DataError(f"{js}: not JSON ({e})") from e
    if not isinstance(got, dict) or not all(isinstance(v, list) for v in got.values()):
        raise DataError(f'{js}: expected {{class: ["class/image", ...]}} (Food-101\'s meta/{split}.json)')
    return js, [str(x) for v in got.values() for x in v]


def food_in(d: Path, split: str) -> Catalog:
    """Food-101 in its food-101 folder d: images/<class>/<id>.jpg, the split's list in meta/ (_food_list); the
    classes, in sorted order as torchvision's, those of both lists (so a split's labels are the other's)."""
    meta = _food_meta(d)
    rel = meta.relative_to(d).as_posix()
    if (got := _food_list(meta, split)) is None:
        raise split_missing(split, f"--data {d}: no {rel}/{split}.txt (Food-101's {split} split)")
    lst, rows = got
    rows = _class_rows(lst, rows, "apple_pie/1005649")
    other = _food_list(meta, "test" if split == "train" else "train")
    classes = sorted({r.split("/")[0] for r in rows + (other[1] if other else [])})
    label = {c: k for k, c in enumerate(classes)}
    labels = np.array([label[r.split("/")[0]] for r in rows], dtype=np.int64)
    paths = [str(d / "images" / f"{r}.jpg") for r in rows]
    return listed_catalog("food101", d, paths, labels, classes, f"{rel}/{lst.name} lists")


def whole_note(folder: Path) -> str | None:
    """Where a folder of class folders given as --data is the images of one of these sets (food-101/images,
    CUB_200_2011/images, dtd/images), that the set's lists are beside it: it read all of them, held-out images too."""
    d = folder.parent
    if folder.name != "images":
        return None
    lists = {"Food-101": has_food(d) and f"{_food_meta(d).relative_to(d).as_posix()}/",
             "CUB-200-2011": has_cub(d) and "train_test_split.txt", "DTD": _dtd_dir(d) == d and "labels/"}  # fmt: skip
    if (found := next(((n, f) for n, f in lists.items() if f), None)) is None:
        return None
    name, lists = found
    return (f"note: {folder} is {name}'s images, read whole, its test list's too ({lists} lists its split): "
            f"--data {d} trains on its training list and holds out the test list")  # fmt: skip


def _class_rows(lst: Path, rows: list[str], example: str) -> list[str]:
    """A list's `class/image` rows (Food-101's, DTD's), checked."""
    if bad := next((r for r in rows if r.count("/") != 1), None) if rows else "(none)":
        raise DataError(f"{lst}: image {bad!r}; expected lines 'class/image' ({example})")
    return rows


AIRCRAFT = "images_variant_{}.txt"  # FGVC-Aircraft's lists (torchvision's default annotation level): trainval, test
AIRCRAFT_SPLITS = {"train": "trainval", "test": "test"}


def _aircraft_dir(d: Path) -> Path | None:
    """FGVC-Aircraft's data/ folder: d itself, or in it (fgvc-aircraft-2013b/data/); None for other folders."""
    return next((f for f in (d, d / "data") if (f / AIRCRAFT.format("trainval")).is_file() and (f / "images").is_dir()),
                None)  # fmt: skip


def has_aircraft(d: Path) -> bool:
    return _aircraft_dir(d) is not None


def aircraft_in(d: Path, split: str) -> Catalog:
    """FGVC-Aircraft in folder d (its data/ or the folder of it): the images that the split's list names, labelled
    by variant; the classes in variants.txt's order, as torchvision's (else the lists' variants, sorted)."""
    data = _aircraft_dir(d)
    lists = {s: data / AIRCRAFT.format(AIRCRAFT_SPLITS[s]) for s in ("train", "test")}
    if not lists[split].is_file():
        raise split_missing(split, f"--data {d}: no {lists[split].name} (FGVC-Aircraft's {split} split)")
    rows = {s: [line.split(None, 1) for line in f.read_text(errors="replace").splitlines() if line.strip()]
            for s, f in lists.items() if f.is_file()}  # fmt: skip
    if bad := next((r for r in rows[split] if len(r) < 2), None) if rows[split] else ["(none)"]:
        raise DataError(f"{lists[split]}: {bad[0]!r}; expected lines 'image variant' (1025794 707-320)")
    names = data / "variants.txt"
    classes = names.read_text(errors="replace").splitlines() if names.is_file() else []
    classes = [c.strip() for c in classes if c.strip()] or sorted({r[1].strip() for rs in rows.values() for r in rs})
    label = {c: k for k, c in enumerate(classes)}
    if unknown := next((r[1].strip() for r in rows[split] if r[1].strip() not in label), None):
        raise DataError(f"{lists[split]}: variant {unknown!r} is not in {names.name}")
    labels = np.array([label[r[1].strip()] for r in rows[split]], dtype=np.int64)
    paths = [str(data / "images" / f"{r[0]}.jpg") for r in rows[split]]
    return listed_catalog("fgvc_aircraft", d, paths, labels, classes, f"{lists[split].name} lists")


CUB = ("images.txt", "train_test_split.txt")  # CUB-200-2011's lists beside its images/ (and classes.txt)


def has_cub(d: Path) -> bool:
    return (d / "images").is_dir() and all((d / f).is_file() for f in CUB)


def _id_rows(f: Path, example: str) -> dict[str, str]:
    """The rows of one of CUB-200-2011's lists, `id value` lines, by id."""
    rows = [line.split(None, 1) for line in f.read_text(errors="replace").splitlines() if line.strip()]
    if bad := next((r for r in rows if len(r) < 2), None) if rows else ["(none)"]:
        raise DataError(f"{f}: {bad[0]!r}; expected lines 'id value' ({example})")
    return {r[0]: r[1].strip() for r in rows}


def cub_in(d: Path, split: str) -> Catalog:
    """CUB-200-2011 in its CUB_200_2011 folder d: the images that images.txt lists and train_test_split.txt puts
    in the split (1: training, 0: test), each of the class of its folder (as image_class_labels.txt says); the
    classes in classes.txt's order (the folders', sorted), named as --data CUB_200_2011/images names them."""
    images = _id_rows(d / CUB[0], "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg")
    sides = _id_rows(d / CUB[1], "1 0: the image, 1 if it trains")
    if bad := next((i for i in images if sides.get(i) not in ("0", "1")), None):
        raise DataError(f"{d / CUB[1]}: image {bad} of {CUB[0]} is {sides.get(bad, 'not there')!r}; expected 1 (it "
                        "trains) or 0 (the test split)")  # fmt: skip
    if bad := next((p for p in images.values() if p.count("/") != 1), None):
        raise DataError(f"{d / CUB[0]}: image {bad!r}; expected lines 'id class/image.jpg'")
    rows = [p for i, p in images.items() if sides[i] == ("1" if split == "train" else "0")]
    if not rows:
        raise split_missing(split, f"--data {d}: {CUB[1]} puts no image in the {split} split")
    names = d / "classes.txt"
    classes = list(_id_rows(names, "1 001.Black_footed_Albatross").values()) if names.is_file() else []
    classes = classes or sorted({p.split("/")[0] for p in images.values()})
    label = {c: k for k, c in enumerate(classes)}
    if unknown := next((p for p in rows if p.split("/")[0] not in label), None):
        raise DataError(f"{d / CUB[0]}: image {unknown!r}: its class is not in {names.name}")
    labels = np.array([label[p.split("/")[0]] for p in rows], dtype=np.int64)
    paths = [str(d / "images" / p) for p in rows]
    return listed_catalog("cub200", d, paths, labels, classes, f"{CUB[0]} lists")


DTD_SPLITS = {"train": ("train", "val"), "test": ("test",)}  # partition 1's lists (labels/train1.txt ...)


def _dtd_dir(d: Path) -> Path | None:
    """DTD's folder of images/ and labels/: d, or in it (torchvision's root/dtd/dtd/); None for other folders."""
    return next((f for f in (d, d / "dtd") if (f / "labels" / "train1.txt").is_file() and (f / "images").is_dir()),
                None)  # fmt: skip


def has_dtd(d: Path) -> bool:
    return _dtd_dir(d) is not None


def dtd_in(d: Path, split: str) -> Catalog:
    """DTD (the Describable Textures Dataset) in folder d (_dtd_dir): partition 1's training and validation images
    train, its test images are held out; the classes, sorted as torchvision's, those of all three lists."""
    data = _dtd_dir(d)
    lists = {s: data / "labels" / f"{s}1.txt" for s in ("train", "val", "test")}
    if missing := [f.name for s, f in lists.items() if s in DTD_SPLITS[split] and not f.is_file()]:
        raise split_missing(split, f"--data {d}: no labels/{missing[0]} (DTD's {split} split)")
    rows = {s: _class_rows(f, f.read_text(errors="replace").split(), "banded/banded_0002.jpg")
            for s, f in lists.items() if f.is_file()}  # fmt: skip
    classes = sorted({r.split("/")[0] for rs in rows.values() for r in rs})
    label = {c: k for k, c in enumerate(classes)}
    mine = [r for s in DTD_SPLITS[split] for r in rows[s]]
    labels = np.array([label[r.split("/")[0]] for r in mine], dtype=np.int64)
    paths = [str(data / "images" / r) for r in mine]
    names = " and ".join(f"labels/{s}1.txt" for s in DTD_SPLITS[split])
    return listed_catalog("dtd", d, paths, labels, classes, f"{names} list")
