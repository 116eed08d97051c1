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
- CUB-200-2011 (`CUB_200_2011/` with `images.txt`, `train_test_split.txt`) and DTD (`dtd/` with `labels/train1.txt`).

Each is read from its folder (Folder) or from an archive of it (Members: `CUB_200_2011.tgz`, DTD's tar, a zip),
the lists found wherever the archive keeps the folder (in_archive).
"""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import Catalog, DataError, Files, NoTestSplit, Picked


def split_missing(split: str, msg: str) -> DataError:
    """The error for a split whose file is not there: NoTestSplit for the test split (evaluate says it and goes on),
    else a DataError."""
    return (NoTestSplit if split == "test" else DataError)(msg)


def _missing(data: str, rels: list[str], have: Callable[[str], bool], listed_by: str) -> None:
    """Refuse a set whose list names images that are not there (rels: relative to the set's folder)."""
    if missing := [r for r in rels if not have(r)]:
        where, name = posixpath.split(missing[0])
        raise DataError(f"--data {data}: {len(missing)} of the {len(rels)} images that {listed_by} are not in "
                        f"{where or '.'}/, e.g. {name}")  # fmt: skip


class Folder:
    """A set's folder on disk as the readers below ask of it (rel: a path in it, with /)."""

    def __init__(self, d: Path):
        self.d, self.data = d, str(d)

    def is_file(self, rel: str) -> bool:
        try:  # (a damaged list's name too long for a file name: ENAMETOOLONG, which pathlib raises)
            return (self.d / rel).is_file()
        except OSError:
            return False

    def is_dir(self, rel: str) -> bool:
        try:
            return (self.d / rel).is_dir()
        except OSError:
            return False

    def text(self, rel: str) -> str:
        return (self.d / rel).read_text(errors="replace")

    def where(self, rel: str) -> str:
        return str(self.d / rel)

    def catalog(self, name: str, rels: list[str], labels, classes: list[str], listed_by: str) -> Catalog:
        """The Catalog of the image files that a list names, all of which must be there (listed_by: the list and
        its verb, "imagelabels.mat labels")."""
        _missing(self.data, rels, self.is_file, listed_by)
        paths = [str(self.d / r) for r in rels]
        return Catalog(name, paths, labels, classes, Files(paths), sources=paths)


class Members:
    """A set's folder inside an archive (`path`): its members under `prefix` ("" or "CUB_200_2011/"); lists and
    images (): a member's name -> its index for `read_list` and `read` (archives.Listing); dirs: () -> the folders
    in it. The images and the folders are indexed once a set's lists are found (the readers ask is_file of lists
    only: a zip of ImageNet beside a .txt is not indexed)."""

    def __init__(self, path: Path, prefix: str, images: Callable[[], dict[str, int]], lists: dict[str, int],
                 dirs: Callable[[], set[str]],
                 read: Callable[[int], bytes], read_list: Callable[[int], bytes]):  # fmt: skip
        self.path, self.prefix, self.data, self.dirs = path, prefix, str(path), dirs
        self.images, self.lists, self.read, self.read_list = images, lists, read, read_list

    def is_file(self, rel: str) -> bool:  # (a list: the readers ask it of no image)
        return self.prefix + rel in self.lists

    def is_dir(self, rel: str) -> bool:
        return self.prefix + rel in self.dirs()

    def text(self, rel: str) -> str:
        return self.read_list(self.lists[self.prefix + rel]).decode("utf-8", "replace")

    def where(self, rel: str) -> str:
        return f"{self.path}:{self.prefix}{rel}"

    def catalog(self, name: str, rels: list[str], labels, classes: list[str], listed_by: str) -> Catalog:
        images = self.images()
        _missing(self.data, rels, lambda r: self.prefix + r in images, listed_by)
        picks = [images[self.prefix + r] for r in rels]
        return Catalog(name, [self.where(r) for r in rels], labels, classes, Picked(self.read, picks),
                       sources=[self.data])  # fmt: skip


Tree = Folder | Members


def _tree(d: Path | Tree) -> Tree:
    return Folder(d) if isinstance(d, Path) else d


PET_SPLITS = {"train": "trainval.txt", "test": "test.txt"}


def has_pets(d: Path | Tree) -> bool:
    t = _tree(d)
    return t.is_file("annotations/trainval.txt") and t.is_dir("images")


def pets_in(d: Path | Tree, split: str) -> Catalog:
    """Oxford-IIIT Pet in torchvision's oxford-iiit-pet folder d: images/<Breed>_<n>.jpg and annotations/trainval.txt
    (`Abyssinian_100 1 1 1`: the image, its class 1..37, species, breed id), the training split as torchvision's;
    test.txt the test split. The classes are named as torchvision names them, by the breed in the images' names
    (american_bulldog_12: "American Bulldog"). As an image folder it was two classes, "annotations" (the trimaps)
    and "images"."""
    t, lst = _tree(d), f"annotations/{PET_SPLITS[split]}"
    if not t.is_file(lst):
        raise split_missing(split, f"--data {t.data}: no {lst} (Oxford-IIIT Pet's {split} split)")
    rows = [line.split() for line in t.text(lst).splitlines() if line.strip()[:1] not in "#"]
    bad = next((r for r in rows if len(r) < 2 or not r[1].isdigit()), None)
    if bad is not None or not rows:
        raise DataError(f"{t.where(lst)}: {'no rows' if bad is None else repr(' '.join(bad))}; expected lines 'image "
                        f"class-id ...' (Abyssinian_100 1 1 1)")  # fmt: skip
    breeds = {int(r[1]): " ".join(w.title() for w in r[0].rsplit("_", 1)[0].split("_")) for r in rows}
    ids = sorted(breeds)
    labels = np.searchsorted(ids, [int(r[1]) for r in rows]).astype(np.int64)
    rels = [f"images/{r[0]}.jpg" for r in rows]
    return t.catalog("oxford_pet", rels, labels, [breeds[k] for k in ids], f"{lst} lists")


FOOD_META = ("meta", "meta/meta")  # torchvision's food-101/meta/; the Kaggle copy's meta/meta/


def _food_meta(t: Tree) -> str | None:
    return next((m for m in FOOD_META if any(t.is_file(f"{m}/train.{x}") for x in ("txt", "json"))), None)


def has_food(d: Path | Tree) -> bool:
    t = _tree(d)
    return _food_meta(t) is not None and t.is_dir("images")


def _food_list(t: Tree, meta: str, split: str) -> tuple[str, list[str]] | None:
    """(the list, its rows) of a Food-101 split (meta/train.txt: `apple_pie/1005649` lines; or meta/train.json,
    {class: [those]}, which torchvision reads), or None where neither is there."""
    txt, js = f"{meta}/{split}.txt", f"{meta}/{split}.json"
    if t.is_file(txt):
        return txt, t.text(txt).split()
    if not t.is_file(js):
        return None
    try:
        got = json.loads(t.text(js))
    except ValueError as e:
        raise DataError(f"{t.where(js)}: not JSON ({e})") from e
    if not isinstance(got, dict) or not all(isinstance(v, list) for v in got.values()):
        raise DataError(f'{t.where(js)}: expected {{class: ["class/image", ...]}} (Food-101\'s meta/{split}.json)')
    return js, [str(x) for v in got.values() for x in v]


def food_in(d: Path | Tree, split: str) -> Catalog:
    """Food-101 in its food-101 folder d: images/<class>/<id>.jpg, the split's list in meta/ (_food_list); the
    classes, in sorted order as torchvision's, those of both lists (so a split's labels are the other's)."""
    t = _tree(d)
    meta = _food_meta(t)
    if (got := _food_list(t, meta, split)) is None:
        raise split_missing(split, f"--data {t.data}: no {meta}/{split}.txt (Food-101's {split} split)")
    lst, rows = got
    rows = _class_rows(t, lst, rows, "apple_pie/1005649")
    other = _food_list(t, meta, "test" if split == "train" else "train")
    classes = sorted({r.split("/")[0] for r in rows + (other[1] if other else [])})
    label = {c: k for k, c in enumerate(classes)}
    labels = np.array([label[r.split("/")[0]] for r in rows], dtype=np.int64)
    return t.catalog("food101", [f"images/{r}.jpg" for r in rows], labels, classes, f"{lst} lists")


def whole_note(folder: Path) -> str | None:
    """Where a folder of class folders given as --data is the images of one of these sets (food-101/images,
    CUB_200_2011/images, dtd/images), that the set's lists are beside it: it read all of them, held-out images too."""
    d = folder.parent
    if folder.name != "images":
        return None
    t = Folder(d)
    lists = {"Food-101": has_food(t) and f"{_food_meta(t)}/", "CUB-200-2011": has_cub(t) and "train_test_split.txt",
             "DTD": _dtd_dir(t) == "" and "labels/"}  # fmt: skip
    if (found := next(((n, f) for n, f in lists.items() if f), None)) is None:
        return None
    name, lists = found
    return (f"note: {folder} is {name}'s images, read whole, its test list's too ({lists} lists its split): "
            f"--data {d} trains on its training list and holds out the test list")  # fmt: skip


def _class_rows(t: Tree, lst: str, rows: list[str], example: str) -> list[str]:
    """A list's `class/image` rows (Food-101's, DTD's), checked."""
    if bad := next((r for r in rows if r.count("/") != 1), None) if rows else "(none)":
        raise DataError(f"{t.where(lst)}: image {bad!r}; expected lines 'class/image' ({example})")
    return rows


AIRCRAFT = "images_variant_{}.txt"  # FGVC-Aircraft's lists (torchvision's default annotation level): trainval, test
AIRCRAFT_SPLITS = {"train": "trainval", "test": "test"}


def _in(folder: str, rel: str) -> str:
    return f"{folder}/{rel}" if folder else rel


def _aircraft_dir(t: Tree) -> str | None:
    """FGVC-Aircraft's data/ folder: d itself (""), or in it ("data": fgvc-aircraft-2013b/data/); None for other
    folders."""
    return next((f for f in ("", "data")
                 if t.is_file(_in(f, AIRCRAFT.format("trainval"))) and t.is_dir(_in(f, "images"))), None)  # fmt: skip


def has_aircraft(d: Path | Tree) -> bool:
    return _aircraft_dir(_tree(d)) is not None


def aircraft_in(d: Path | Tree, split: str) -> Catalog:
    """FGVC-Aircraft in folder d (its data/ or the folder of it): the images that the split's list names, labelled
    by variant; the classes in variants.txt's order, as torchvision's (else the lists' variants, sorted)."""
    t = _tree(d)
    data = _aircraft_dir(t)
    lists = {s: _in(data, AIRCRAFT.format(AIRCRAFT_SPLITS[s])) for s in ("train", "test")}
    if not t.is_file(lists[split]):
        raise split_missing(split, f"--data {t.data}: no {lists[split]} (FGVC-Aircraft's {split} split)")
    rows = {s: [line.split(None, 1) for line in t.text(f).splitlines() if line.strip()]
            for s, f in lists.items() if t.is_file(f)}  # fmt: skip
    if bad := next((r for r in rows[split] if len(r) < 2), None) if rows[split] else ["(none)"]:
        raise DataError(f"{t.where(lists[split])}: {bad[0]!r}; expected lines 'image variant' (1025794 707-320)")
    names = _in(data, "variants.txt")
    classes = t.text(names).splitlines() if t.is_file(names) else []
    classes = [c.strip() for c in classes if c.strip()] or sorted({r[1].strip() for rs in rows.values() for r in rs})
    label = {c: k for k, c in enumerate(classes)}
    if unknown := next((r[1].strip() for r in rows[split] if r[1].strip() not in label), None):
        raise DataError(f"{t.where(lists[split])}: variant {unknown!r} is not in variants.txt")
    labels = np.array([label[r[1].strip()] for r in rows[split]], dtype=np.int64)
    rels = [_in(data, f"images/{r[0]}.jpg") for r in rows[split]]
    return t.catalog("fgvc_aircraft", rels, labels, classes, f"{lists[split]} lists")


CUB = ("images.txt", "train_test_split.txt")  # CUB-200-2011's lists beside its images/ (and classes.txt)


def has_cub(d: Path | Tree) -> bool:
    t = _tree(d)
    return all(t.is_file(f) for f in CUB) and t.is_dir("images")


def _id_rows(t: Tree, f: str, example: str) -> dict[str, str]:
    """The rows of one of CUB-200-2011's lists, `id value` lines, by id."""
    rows = [line.split(None, 1) for line in t.text(f).splitlines() if line.strip()]
    if bad := next((r for r in rows if len(r) < 2), None) if rows else ["(none)"]:
        raise DataError(f"{t.where(f)}: {bad[0]!r}; expected lines 'id value' ({example})")
    return {r[0]: r[1].strip() for r in rows}


def cub_in(d: Path | Tree, split: str) -> Catalog:
    """CUB-200-2011 in its CUB_200_2011 folder d: the images that images.txt lists and train_test_split.txt puts
    in the split (1: training, 0: test), each of the class of its folder (as image_class_labels.txt says); the
    classes in classes.txt's order (the folders', sorted), named as --data CUB_200_2011/images names them."""
    t = _tree(d)
    images = _id_rows(t, CUB[0], "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg")
    sides = _id_rows(t, CUB[1], "1 0: the image, 1 if it trains")
    if bad := next((i for i in images if sides.get(i) not in ("0", "1")), None):
        raise DataError(f"{t.where(CUB[1])}: image {bad} of {CUB[0]} is {sides.get(bad, 'not there')!r}; expected 1 "
                        "(it trains) or 0 (the test split)")  # fmt: skip
    if bad := next((p for p in images.values() if p.count("/") != 1), None):
        raise DataError(f"{t.where(CUB[0])}: image {bad!r}; expected lines 'id class/image.jpg'")
    rows = [p for i, p in images.items() if sides[i] == ("1" if split == "train" else "0")]
    if not rows:
        raise split_missing(split, f"--data {t.data}: {CUB[1]} puts no image in the {split} split")
    names = "classes.txt"
    classes = list(_id_rows(t, names, "1 001.Black_footed_Albatross").values()) if t.is_file(names) else []
    classes = classes or sorted({p.split("/")[0] for p in images.values()})
    label = {c: k for k, c in enumerate(classes)}
    if unknown := next((p for p in rows if p.split("/")[0] not in label), None):
        raise DataError(f"{t.where(CUB[0])}: image {unknown!r}: its class is not in {names}")
    labels = np.array([label[p.split("/")[0]] for p in rows], dtype=np.int64)
    return t.catalog("cub200", [f"images/{p}" for p in rows], labels, classes, f"{CUB[0]} lists")


DTD_SPLITS = {"train": ("train", "val"), "test": ("test",)}  # partition 1's lists (labels/train1.txt ...)


def _dtd_dir(t: Tree) -> str | None:
    """DTD's folder of images/ and labels/: d itself (""), or in it ("dtd": torchvision's root/dtd/dtd/); None for
    other folders."""
    return next((f for f in ("", "dtd") if t.is_file(_in(f, "labels/train1.txt")) and t.is_dir(_in(f, "images"))),
                None)  # fmt: skip


def has_dtd(d: Path | Tree) -> bool:
    return _dtd_dir(_tree(d)) is not None


def dtd_in(d: Path | Tree, split: str) -> Catalog:
    """DTD (the Describable Textures Dataset) in folder d (_dtd_dir): partition 1's training and validation images
    train, its test images are held out; the classes, sorted as torchvision's, those of all three lists."""
    t = _tree(d)
    data = _dtd_dir(t)
    lists = {s: _in(data, f"labels/{s}1.txt") for s in ("train", "val", "test")}
    if missing := [f for s, f in lists.items() if s in DTD_SPLITS[split] and not t.is_file(f)]:
        raise split_missing(split, f"--data {t.data}: no {missing[0]} (DTD's {split} split)")
    rows = {s: _class_rows(t, f, t.text(f).split(), "banded/banded_0002.jpg") for s, f in lists.items() if t.is_file(f)}
    classes = sorted({r.split("/")[0] for rs in rows.values() for r in rs})
    label = {c: k for k, c in enumerate(classes)}
    mine = [r for s in DTD_SPLITS[split] for r in rows[s]]
    labels = np.array([label[r.split("/")[0]] for r in mine], dtype=np.int64)
    names = " and ".join(lists[s] for s in DTD_SPLITS[split])
    return t.catalog("dtd", [_in(data, f"images/{r}") for r in mine], labels, classes, f"{names} list")


# the sets above: kind -> (whether a folder holds it, its reader, a word of the folder's usual name)
SETS = {
    "oxford_pet": (has_pets, pets_in, "pet"),
    "food101": (has_food, food_in, "food"),
    "fgvc_aircraft": (has_aircraft, aircraft_in, "aircraft"),
    "cub200": (has_cub, cub_in, "cub"),
    "dtd": (has_dtd, dtd_in, "dtd"),
}


def in_archive(path: Path, got, split: str) -> Catalog | None:
    """The set in an archive (got: its archives.Listing), or in a folder of it, where it is one of these (SETS:
    CUB-200-2011's tarball, Food-101's, DTD's, FGVC-Aircraft's), read as the folder it unpacks into; else None."""
    roots = {n.rsplit("/", k)[0] if n.count("/") >= k else "" for n in got.lists for k in range(1, 5)}  # 4 up
    if not roots:
        return None
    lists = {n: i for i, n in enumerate(got.lists)}  # (the images and folders: indexed once a set is found)
    images = functools.cache(lambda: {n: i for i, n in enumerate(got.names)})
    dirs = functools.cache(lambda: {n[:k] for n in (*got.names, *got.lists) for k, c in enumerate(n) if c == "/"})
    for root in sorted(roots, key=lambda r: (r.count("/") if r else -1, r)):
        tree = Members(path, f"{root}/" if root else "", images, lists, dirs, got.read, got.read_list)
        if read := next((read for has, read, _ in SETS.values() if has(tree)), None):
            return read(tree, split)
    return None
