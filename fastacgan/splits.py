"""A data set split into parts: the words that name a part (train, test, val ...; training_set/, seg_train/), which
part of a folder's or an archive's parts to read, the held-out set beside a training set named as one, and what is
said where folders are named so but are no parts."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from .data import (
    ARCHIVE_EXTS,
    TEST_SPLITS,
    TRAIN_SPLITS,
    Catalog,
    DataError,
    NoTestSplit,
    Picked,
    folder_name,
    hidden,
    labels_from,
)


def flat_parts(data, parts: list[str], hint: str) -> None:
    """Warn where the class folders are all named as a split set's parts, one the training part, and hold images
    alone (Kaggle's butterflies: train/*.jpg, test/*.jpg, their labels in Training_set.csv): read as classes."""
    warnings.warn(f"--data {data}: {', '.join(sorted(parts))} are named as a split set's parts but hold images alone, "
                  f"read as classes of those names{hint}", stacklevel=4)  # fmt: skip


def split_like(data, deep: dict[str, bool], classes: list[str]) -> None:
    """Warn where classes are named as a split set's parts and hold folders (`deep`: such a class -> whether its
    images lie in folders inside it) beside a folder that is no part (the chest X-ray download's chest_xray/ holds
    train/, test/, val/ and a copy of them all in chest_xray/chest_xray/): read as classes, a likely mistake."""
    if any(deep.get(c) for c in classes if split_word(c) in TRAIN_SPLITS):
        if not (other := [c for c in classes if c not in deep]):  # (train/ beside training/ of images alone)
            trains = [c for c in classes if split_word(c) in TRAIN_SPLITS]
            warnings.warn(f"--data {data}: {', '.join(sorted(deep))} are read as classes: {', '.join(trains)} are "
                          "each named as the training part; give the one to train on", stacklevel=3)  # fmt: skip
            return
        warnings.warn(f"--data {data}: {', '.join(sorted(deep))} are read as classes beside {', '.join(other[:3])}"
                      f"{' ...' if len(other) > 3 else ''}, which is no part of a set split into train/ and test/ or "
                      f"val/; if it is such a set, move {other[0]} out of {data}, or give the folder that holds only "
                      "the parts", stacklevel=3)  # fmt: skip


def set_copies(names: list[str], held: Callable[[str], list[str] | set[str]]) -> list[str]:
    """Of the class folders, those that hold a copy of the set: folders named as two or more of the others and no
    other folder (Kaggle's flowers/ beside daisy/, rose/ ...: flowers/flowers/daisy/ ...), as some downloads nest
    one. held: a class folder's name -> the names of the folders in it ("" for an image)."""
    if not 3 <= len(names) <= 200:  # (a folder each is listed: not for ImageNet's 1,000)
        return []
    return [n for n in names if len(inner := set(held(n)) - {""}) >= 2 and inner <= set(names) - {n}]


def parts_copies(parts: list[str], held: Callable[[str], list[str] | set[str]]) -> tuple[list[str], str]:
    """Of folders that are no split set as they are, those that hold a copy of the others (set_copies) where the
    rest are one (the chest X-ray download's chest_xray/chest_xray/ beside train/, test/, val/), and the words that
    say so ("" where none)."""
    if pick_split(parts, "train")[0] is not None or not any(map(split_word, parts)):
        return [], ""
    copies = set_copies(parts, held)
    if not copies or pick_split([n for n in parts if n not in copies], "train")[0] is None:
        return [], ""
    return copies, f" ({', '.join(f'{c}/' for c in copies)}: a copy of them, passed over)"


def copy_note(data, name: str) -> str:
    """The line that says a class folder holding a copy of the set was passed over."""
    return (f"note: --data {data}: {name}/ holds folders named as the other classes: a copy of the set, as some "
            "downloads nest one; passed over, no class")  # fmt: skip


# the words of a part of unlabelled images beside the training part (Intel's seg_pred/; GTSRB's Meta/, a sign a class):
# neither trained on nor held out
UNLABELLED_PART = ("pred", "predict", "prediction", "unlabeled", "unlabelled", "meta")


def split_word(name: str) -> str | None:
    """The split that a folder's name names: train, test, val ... (any case), as the name itself or as the one
    split word among its words (Kaggle's training_set/ and test_set/, Intel's seg_train/ and seg_test/); "pred"
    for a part of unlabelled images (seg_pred/); else None."""
    low = name.lower()
    words = [w for w in re.split(r"[^a-z]+", low) if w]
    found = [w for w in words if w in (*TRAIN_SPLITS, *TEST_SPLITS)]
    if low in (*TRAIN_SPLITS, *TEST_SPLITS) or len(found) == 1:
        return found[0] if found else low
    return "pred" if not found and any(w in UNLABELLED_PART for w in words) else None


def pick_split(parts: list[str], split: str, classes_of: Callable[[str], set] | None = None) -> tuple[str | None, str]:
    """Folder names -> (the one that holds `split`, or None; a description of the parts), when the names are those
    of a data set split into parts: every one names a split (split_word: train, test, val, ...; any case; as a word,
    training_set; a part of unlabelled images, seg_pred, is passed over) and one of them the training split.
    (None, "") when they are something else: class names. One name that names no split beside held-out parts only
    is the training part (Places365's data_256_standard/ beside val_256/; images/ beside test/), where the caller
    finds class folders in it. For "test", of several held-out parts the first (TEST_SPLITS' order) whose class
    folders (`classes_of`: a part's name -> their names) share one with the training part's: an unlabelled test/
    (Kaggle's test/*.jpg, Tiny ImageNet's test/images/) is passed over for a labelled val/."""
    kind = {n: split_word(n) for n in parts}
    if len(parts) > 1 and list(kind.values()).count(None) == 1 and set(kind.values()) <= {None, *TEST_SPLITS}:
        kind = {n: k or "train" for n, k in kind.items()}
    if not parts or None in kind.values():
        return None, ""
    train = [n for n in parts if kind[n] in TRAIN_SPLITS]
    if len(train) != 1:
        return None, ""
    held = _held_parts(kind)
    if split != "train" and classes_of is not None and len(held) > 1:
        known = classes_of(train[0])
        held = [n for n in held if classes_of(n) & known] + held
    about = f"split into {', '.join(sorted(parts))}"
    return (train[0] if split == "train" else (held[0] if held else None)), about


def split_note(data, about: str, part: str, split: str) -> str:
    """The line that says which part of a set split into parts is read (a folder, or an archive)."""
    part += "" if part.lower().endswith(ARCHIVE_EXTS) else "/"
    return f"--data {data}: {about}; {'training on' if split == 'train' else 'held out:'} {part}"


def archive_ext(name: str) -> str:
    """The archive extension a file's name ends with (.tar.gz, .zip; any case), or ""."""
    return next((e for e in ARCHIVE_EXTS if name.lower().endswith(e)), "")


def held_out_sibling(path: Path) -> Path | None:
    """The held-out counterpart beside a training set named as one: train.tar.gz -> test.tar.gz (else val.tar.gz
    ...: TEST_SPLITS' order), cifar10/train -> cifar10/test, isic_Train.zip -> isic_TEST.zip; the split name a word
    of the name, matched in any case. None when there is none (or the name names no training split)."""
    tail = archive_ext(path.name) if path.is_file() else ""
    stem = path.name[: len(path.name) - len(tail)]
    words = re.split(r"([^A-Za-z]+)", stem)  # the name's words and what separates them
    rank = {}
    for k in (k for k, w in enumerate(words) if w.lower() in TRAIN_SPLITS):
        for r, held in enumerate(TEST_SPLITS):
            rank.setdefault(("".join([*words[:k], held, *words[k + 1 :]]) + tail).lower(), r)
    if not rank:
        return None
    found = sorted((rank[p.name.lower()], p.name, p) for p in path.parent.iterdir()
                   if p.name.lower() in rank and p.is_dir() == path.is_dir())  # fmt: skip
    return found[0][2] if found else None


def listed_part(data: str) -> str:
    """Where a folder split into parts holds no held-out part of class folders, one whose labels may be in a list
    named as that part (part_list): the options that read it; "" where there is none."""
    from .folders import unwrapped  # (folders imports this module)

    root = Path(data).expanduser()
    if not root.is_dir():
        return ""
    root = unwrapped(root)
    parts = [p.name for p in root.iterdir() if p.is_dir() and not hidden(p.name)]
    if (found := part_list(parts, folder_lists(root))) is None:
        return ""
    part, lst = found
    return f"; {part}/ may be labelled by {lst.name}: --test-data {root / part} --test-csv {lst}"


LISTS = (".csv", ".tsv", ".txt")  # a part's list of labels (part_list)


def part_list(parts: list[str], lists_in: Callable[[str], list]) -> tuple[str, object] | None:
    """Of a set split into parts (their names), a held-out part (val/ first) and a list named as it (Tiny ImageNet's
    val/ and val/val_annotations.txt; Kaggle's ImageNet: Data/CLS-LOC/val/ and LOC_val_solution.csv three folders
    above); lists_in: a held-out part -> the lists where its own may be (paths, or an archive's member names),
    nearest first. None where there is none."""
    if pick_split(parts, "train")[0] is None:
        return None
    kind = lambda n: (split_word(n) or "")[:3]  # noqa: E731 - val, valid, validation: one kind
    for part in sorted((n for n in parts if split_word(n) in TEST_SPLITS), key=lambda n: (kind(n) != "val", n)):
        if found := [f for f in lists_in(part) if PurePosixPath(f).suffix.lower() in LISTS
                     and kind(PurePosixPath(f).stem) == kind(part)]:  # fmt: skip
            return part, found[0]
    return None


def folder_lists(root: Path) -> Callable[[str], list[Path]]:
    """part_list's lists_in for a folder's parts: the lists in the part, beside it or up to three folders above."""

    def lists_in(part: str) -> list[Path]:
        found = []
        for d in (root / part, root, *list(root.parents)[:3]):
            try:
                found += sorted(f for f in d.iterdir() if f.suffix.lower() in LISTS and f.is_file())
            except OSError:  # (a folder above that this user may not list)
                continue
        return found

    return lists_in


def files_of(files: list[Path], split: str, where: Path, split_of: Callable[[Path], str], kind: str) -> list[Path]:
    """The files of a set's `split` (Hugging Face's train-00000-of-00001.parquet, WebDataset's shards): those that
    split_of says are of a training split (train), else those that name no split; those of a test split, else of a
    validation one (test). Else NoTestSplit (test) or a DataError naming the splits there are; kind: "shards"."""
    by: dict[str, list[Path]] = {}
    for f in files:
        by.setdefault(split_of(f), []).append(f)
    part = next((s for s in (TRAIN_SPLITS if split == "train" else TEST_SPLITS) if s in by), None)
    if part is None and split == "train" and "" in by:
        part = ""  # (one split's files, named as no split: 0000.parquet, data-00000-of-00001.arrow)
    if part is None:
        have = ", ".join(sorted(k or "no split named" for k in by))
        msg = f"--data {where}: no {split} split among its {kind} (theirs: {have})"
        raise (NoTestSplit if split == "test" else DataError)(msg)
    return by[part]


def set_name(d: Path, first: Path) -> str:
    """The run's name for a set of files in folder d whose first file is `first`: the words before its split in the
    file's name (load_dataset's cache: cifar10-train.arrow; TensorFlow Datasets' cifar10-train.tfrecord-00000-of-
    00001), else its folder's, above folders named as its split or its files' kind (cifar10/plain_text/,
    food101/data/, Kaggle's tfrecords-jpeg-192x192/train/; in the Hub's cache, datasets--uoft-cs--cifar10/snapshots/
    <commit>/plain_text/: cifar10)."""
    words = re.split(r"[-_.]", first.name)
    at = next((k for k, w in enumerate(words) if w.lower() in (*TRAIN_SPLITS, *TEST_SPLITS)), 0)
    if at:
        return "-".join(words[:at])
    while d.name.lower() in ("data", "plain_text", "default", *TRAIN_SPLITS, *TEST_SPLITS) and d.parent != d:
        d = d.parent
    return folder_name(d)


def _held_parts(kind: dict[str, str | None]) -> list[str]:
    """The held-out parts (kind: a part's name -> its split_word), in TEST_SPLITS' order, then by name."""
    return sorted((n for n, k in kind.items() if k in TEST_SPLITS), key=lambda n: (TEST_SPLITS.index(kind[n]), n))


def several_training(parts: list[str]) -> tuple[list[str], str | None] | None:
    """(the training parts, the held-out part: test before val, or None) where the parts are all named as a split
    set's and several as its training part (ImageNet-100's train.X1/ ... train.X4/ beside val.X/); else None."""
    kinds = {n: split_word(n) for n in parts}
    trains = sorted(n for n, k in kinds.items() if k in TRAIN_SPLITS)
    if len(trains) < 2 or any(k not in (*TRAIN_SPLITS, *TEST_SPLITS) for k in kinds.values()):
        return None
    held = _held_parts(kinds)
    return trains, held[0] if held else None


def joined_parts(data, parts: list[str], split: str, read_part: Callable[[str], Catalog],
                 has_classes: Callable[[str], bool], log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """ImageNet-100 as Kaggle ships it: train.X1/ ... train.X4/ (a quarter of its classes each) beside val.X/, all
    holding class folders (has_classes: a part's name -> whether): the training parts read as one set (read_part: a
    part's name -> its Catalog), said, the held-out part held out; else None. (It was refused: the parts were read
    as classes, and a warning about them failed.)"""
    if (found := several_training(parts)) is None or not all(map(has_classes, found[0])):
        return None  # (parts of images alone: said where the parts are read)
    (trains, held), about = found, f"split into {', '.join(sorted(parts))}"
    if split != "train":
        if held is None:
            raise NoTestSplit(f"--data {data}: {about}, none of them a test split ({', '.join(TEST_SPLITS)})")
        log(split_note(data, about, held, split))
        return read_part(held)
    log(f"--data {data}: {about}; training on {', '.join(f'{n}/' for n in trains)}, together")
    cats = [read_part(n) for n in trains]
    names = sorted({c for cat in cats for c in cat.class_names})  # (a class in two parts: one class)
    labels = np.concatenate([np.array([names.index(c) for c in cat.class_names])[cat.labels] for cat in cats])
    return Catalog("", [n for cat in cats for n in cat.names], labels.astype(np.int64), names,
                   _Joined([cat.read for cat in cats], [len(cat) for cat in cats]),
                   sources=[s for cat in cats for s in cat.sources])  # fmt: skip


class _Joined:
    """i -> the bytes of image i of catalogs laid end to end (their readers, their sizes)."""

    def __init__(self, reads: list[Callable[[int], bytes]], sizes: list[int]):
        self.reads, self.ends = reads, np.cumsum(sizes)

    def __call__(self, i: int) -> bytes:
        k = int(np.searchsorted(self.ends, i, side="right"))
        return self.reads[k](i - int(self.ends[k - 1] if k else 0))


def training_parts(root: Path, data: str, subs: dict[str, Path], split: str, image_col: str, label_col: str,
                   log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """joined_parts of a folder (subs: its folders); image_col, label_col: as labelled_parts.parts_catalog's other
    forms take them."""
    from .folders import folder_catalog, unwrapped  # (folders imports this module)

    has = lambda n: any(p.is_dir() and not hidden(p.name) for p in unwrapped(subs[n]).iterdir())
    return joined_parts(data, list(subs), split, lambda n: folder_catalog(unwrapped(subs[n]), log), has, log)


def archive_training_parts(path: Path, got, top: str, parts: list[str], split: str, image_col: str,
                           label_col: str, log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """joined_parts in an archive (got: its archives.Listing): ImageNet-100's zip, each training part's class
    folders read as the folder's are; image_col, label_col: as labelled_parts.archive_parts' other forms take them."""

    def read_part(part: str) -> Catalog:
        at = f"{top}{part}/"
        hits = [i for i, n in enumerate(got.names) if n.startswith(at) and "/" in n[len(at) :]]
        labels, names = labels_from([got.names[i][len(at) :].partition("/")[0] for i in hits])
        return Catalog("", [f"{path}:{got.names[i]}" for i in hits], labels, names, Picked(got.read, hits),
                       sources=[str(path)])  # fmt: skip

    has = lambda part: any(n.startswith(f"{top}{part}/") and "/" in n[len(top) + len(part) + 1 :] for n in got.names)
    return joined_parts(path, parts, split, read_part, has, log)
