"""Sets split into parts (train/, valid/, test/) whose parts each hold their images beside one CSV of their labels:
Roboflow's classification export (train/_classes.csv: a filename and a one-hot column a class; an object detection
export's _annotations.csv is refused), Hugging Face's ImageFolder with metadata (train/metadata.jsonl or .csv:
file_name, label; or one metadata file at its root for all the parts: file_name train/0001.png); a Kaggle
competition's parts of images alone beside the CSV that labels the training part (train_images/ and train.csv);
HAM10000's parts of one set beside its metadata; a held-out part of images alone labelled by a list named as it
(Tiny ImageNet's val/ and val_annotations.txt). Read in a folder (parts_catalog) or in an archive of one
(archive_parts), each part by its CSV (labels_csv.csv_labels); an unlabelled part (test/) is passed over.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .data import TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, NoTestSplit, Picked, extension, hidden, is_image
from .folders import unwrapped
from .hints import labels_beside, rank_lists
from .labels_csv import csv_catalog, csv_labels, find_csv, name_index
from .pixel_csv import holds_pixel_rows, pixel_rows_head
from .splits import archive_training_parts, folder_lists, part_list, pick_split, split_note, split_word, training_parts


def _part_list(names: list[str], has_dirs: bool) -> str | None:
    """Of the entries of a part of a split set (train/: their names, hidden ones left out), the CSV of its labels:
    the one .csv (or metadata.jsonl) beside its images alone (Roboflow's _classes.csv), or a metadata file beside
    folders of images (Hugging Face's ImageFolder: train/metadata.csv, images in train/images/); else None."""
    lists = [n for n in names if n.lower().endswith(".csv") or n == "metadata.jsonl"]
    alone = any(is_image(n) for n in names) and not has_dirs
    return lists[0] if len(lists) == 1 and (alone or Path(lists[0]).stem == "metadata") else None


def _labelled_parts(where, found: dict, parts: list[str], head: Callable[[object], str]) -> dict | None:
    """found (a part's name -> its _part_list's file) where the set's parts are named as splits and the training part
    is among them, else None; head: a file -> its first line. An object detection export (Roboflow's
    _annotations.csv, a row a box) is refused."""
    train = pick_split(parts, "train")[0]
    if any(split_word(n) not in (*TRAIN_SPLITS, *TEST_SPLITS) for n in parts) or train not in found:
        return None
    cols = {c.strip().lower() for c in head(found[train]).split(",")}
    if {"xmin", "ymin"} <= cols or {"x_min", "y_min"} <= cols:
        raise DataError(f"--data {where}: {found[train]} holds bounding boxes, a row a box (an object detection "
                        "export), not a label an image: export the set for classification (Roboflow's Folder Structure "
                        "or Multi-Label Classification), or give a CSV of one label an image with --csv")  # fmt: skip
    return found


def part_csvs(root: Path, subs: dict[str, Path]) -> dict[str, Path] | None:
    """Where root is a set split into parts (subs: its folders; train/, valid/, test/) that each hold their images
    alone beside one CSV of their labels (Roboflow's classification export: train/_classes.csv, a filename and a
    one-hot column a class), each such part's CSV by the part's name (a part without one, an unlabelled test/, is
    left out); else None. (They were read as three classes, test, train and valid.) So Hugging Face's ImageFolder
    with metadata: train/metadata.csv or metadata.jsonl (file_name, label), its images in folders in the part or not."""
    if not subs or any(split_word(n) not in (*TRAIN_SPLITS, *TEST_SPLITS) for n in subs):
        return None
    found = {}
    for name, part in subs.items():
        try:
            with os.scandir(part) as it:  # (its entries' kinds without a stat each: a part of 100,000 images)
                entries = [e for e in it if not hidden(e.name)]
        except OSError:  # (a part that cannot be listed: said where the parts are read)
            continue
        got = _part_list([e.name for e in entries], any(e.is_dir() for e in entries))
        if got and (part / got).is_file():
            found[name] = part / got

    def head(f: Path) -> str:
        with open(f, encoding="utf-8", errors="replace") as fh:
            return fh.readline()

    return _labelled_parts(root, found, list(subs), head)


class Member:
    """A list in an archive as labels_csv reads a CSV file (its suffix, its bytes; named archive:member)."""

    def __init__(self, path: Path, name: str, got):
        self.path, self.name, self.got, self.suffix = path, name, got, PurePosixPath(name).suffix

    def read_bytes(self) -> bytes:
        return self.got.read_list(self.got.lists.index(self.name))

    def __str__(self) -> str:
        return f"{self.path}:{self.name}"


def _archive_part_csvs(path: Path, got, top: str, parts: list[str]) -> dict[str, Member] | None:
    """part_csvs of an archive's parts (got: its archives.Listing; top/train/, top/valid/ ...)."""
    found = {}
    for part in parts:
        at = f"{top}{part}/"
        entries = [n[len(at) :] for n in (*got.names, *got.lists) if n.startswith(at)]
        if name := _part_list([e for e in entries if "/" not in e], any("/" in e for e in entries)):
            found[part] = Member(path, at + name, got)
    return _labelled_parts(path, found, parts, lambda m: m.read_bytes().decode("utf-8", "replace").partition("\n")[0])


def _pick(data, parts, split: str, log: Callable[[str], None]) -> str:
    """The labelled part of `split` (said), or NoTestSplit."""
    part, about = pick_split(list(parts), split)
    if part is None:
        raise NoTestSplit(f"--data {data}: {about}, none of them a labelled test split")
    log(split_note(data, about, part, split))
    return part


def root_metadata(root: Path, subs: dict[str, Path]) -> Path | None:
    """Hugging Face's ImageFolder with one metadata file for all its parts at its root (metadata.csv or
    metadata.jsonl: file_name train/0001.png, label), beside parts named as splits that hold their images alone
    (subs: the part folders); else None. (They were read as classes, test and train, with a warning.)"""
    metas = [root / n for n in ("metadata.csv", "metadata.jsonl") if (root / n).is_file()]
    if len(metas) != 1 or pick_split(list(subs), "train")[0] is None:
        return None
    try:
        return None if any(e.is_dir() for part in subs.values() for e in os.scandir(part)) else metas[0]
    except OSError:  # (a part that cannot be listed: said where the parts are read)
        return None


def parts_catalog(root: Path, data: str, split: str, image_col: str, label_col: str,
                  log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """The part of `split` of folder root split into parts labelled by CSVs: each by its own (part_csvs), all by one
    beside them (root_metadata, _csv_beside), parts of one set beside its labels (_parts_of_one), or a held-out part
    by a list named as it (_listed_held_out), or several training parts (splits.training_parts); else None."""
    with os.scandir(root) as it:  # (the entries' kinds without a stat each: a folder of 100,000 images alone)
        subs = {e.name: Path(e.path) for e in it if e.is_dir() and not hidden(e.name)}
    if not subs:
        return None
    if (labelled := part_csvs(root, subs)) is not None:
        part = _pick(data, labelled, split, log)
        return csv_catalog(root / part, labelled[part], image_col, label_col)
    if (meta := root_metadata(root, subs)) is None:
        for form in (_csv_beside, _parts_of_one, _listed_held_out, training_parts):
            if (cat := form(root, data, subs, split, image_col, label_col, log)) is not None:
                return cat
        return None
    cat = csv_catalog(root, meta, image_col, label_col)  # every part's images that it lists, then the split's
    of = [Path(n).relative_to(root).parts[0] for n in cat.names]
    part = _pick(data, dict.fromkeys(of), split, log)
    return cat.subset(np.array([i for i, p in enumerate(of) if p == part], dtype=np.int64))


def _flat(part: Path) -> bool:
    """Whether the folder holds images and no folders."""
    try:
        entries = [e for e in os.scandir(part) if not hidden(e.name)]
    except OSError:  # (a part that cannot be listed: said where the parts are read)
        return False
    return any(is_image(e.name) for e in entries) and not any(e.is_dir() for e in entries)


def _csv_beside(root: Path, data: str, subs: dict[str, Path], split: str, image_col: str, label_col: str,
                log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """A Kaggle competition's layout: parts named as splits that hold their images alone (train_images/,
    test_images/) beside the CSV that labels the training part (APTOS 2019's train.csv: id_code, diagnosis;
    Kaggle's butterflies: Training_set.csv; Dog Breed Identification's labels.csv; never sample_submission.csv):
    the part of `split`, labelled by its CSV (hints.labels_beside), else None. (They were read as classes, test and
    train, with a warning naming the CSV.) A held-out part whose CSV gives no labels (the test.csv of the
    competition's hidden answers) is no test split."""

    def csv_for(part: str) -> str | None:
        return next((n for n in labels_beside(subs[part]) if n.lower().endswith((".csv", ".jsonl"))), None)

    def read(part: str, lst: str, guess: bool) -> Catalog:
        return csv_catalog(subs[part], find_csv(subs[part], lst), image_col, label_col, guess)

    return _labelled_beside(data, list(subs), split, lambda part: _flat(subs[part]), csv_for, read, log)


def _labelled_beside(data, parts: list[str], split: str, flat: Callable[[str], bool],
                     csv_for: Callable[[str], str | None], read: Callable[[str, str, bool], Catalog],
                     log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """The part of `split` of a set split into parts of images alone (flat: a part's name -> whether) beside the CSV
    that labels each (csv_for: a part's name -> its CSV, or None), read (read: a part's name, its CSV, whether its
    labels may be guessed -> its Catalog); None where the training part has no such CSV. A held-out part its CSV does
    not label is no test split."""
    train, about = pick_split(parts, "train")
    if train is None or not split_word(train) or not flat(train) or (lst := csv_for(train)) is None:
        return None
    part = train if split == "train" else pick_split(parts, split)[0]
    if part != train and (part is None or not flat(part) or (lst := csv_for(part)) is None):
        raise NoTestSplit(f"--data {data}: {about}, none of them a test split labelled by a CSV beside it")
    try:  # (a held-out part's CSV names its labels, or labels none: its last column is no label)
        cat = read(part, lst, part == train)
    except DataError as e:
        if part == train:
            raise
        raise NoTestSplit(f"--data {data}: {about}; {part}/'s images are not labelled by {lst} ({e})") from e
    log(f"{split_note(data, about, part, split)}, its images labelled by {lst}")
    return cat


PART = re.compile(r"(.+?)[ _-]*part[ _-]*\d+", re.IGNORECASE)  # HAM10000_images_part_1: a set's part, numbered


def of_one_set(parts: list[str]) -> bool:
    """Whether the folders are numbered as the parts of one set (HAM10000_images_part_1/, _part_2/ and a copy of
    each, ham10000_images_part_1/ ...)."""
    stems = {m[1].casefold() if (m := PART.fullmatch(n)) else None for n in parts}
    return len(parts) >= 2 and len(stems) == 1 and None not in stems


def _of_one_note(data, parts: list[str], csv: str) -> str:
    shown = ", ".join(f"{n}/" for n in sorted(parts)[:3]) + (" ..." if len(parts) > 3 else "")
    return f"--data {data}: {shown} are parts of one set: its images labelled by {csv}"


def _parts_of_one(root: Path, data: str, subs: dict[str, Path], split: str, image_col: str, label_col: str,
                  log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """HAM10000 as Kaggle ships it: HAM10000_images_part_1/ and _part_2/ (and a copy of each, ham10000_images_part_1/
    ...) beside HAM10000_metadata.csv (and hmnist_28_28_RGB.csv ..., pixel rows): folders numbered as the parts of
    one set beside the one CSV that is not of pixel rows, read labelled by it, said (they were four classes, the
    folders); else None. It has no test split."""
    if split != "train" or not of_one_set(list(subs)):
        return None
    if len(csvs := sorted(p for p in root.glob("*.csv") if p.is_file() and not holds_pixel_rows(p))) != 1:
        return None
    log(_of_one_note(data, list(subs), csvs[0].name))
    return csv_catalog(root, csvs[0], image_col, label_col)


def _archive_parts_of_one(path: Path, got, top: str, parts: list[str], image_col: str, label_col: str,
                          log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """_parts_of_one in an archive (got: its archives.Listing): HAM10000 zipped as Kaggle ships it (they were four
    classes, the folders; an image's copies are found by the archive's sizes and CRCs)."""
    beside = [Member(path, n, got) for n in got.lists if n.lower().endswith(".csv") and
              posixpath.dirname(n) == top.rstrip("/")]  # fmt: skip
    csvs = [m for m in beside if not pixel_rows_head(m.read_bytes()[:65536].decode("utf-8-sig", "replace"))]
    if len(csvs) != 1:
        return None
    log(_of_one_note(path, parts, PurePosixPath(csvs[0].name).name))
    return _members_catalog(path, got, top, csvs[0], image_col, label_col)


def _listed_held_out(root: Path, data: str, subs: dict[str, Path], split: str, image_col: str, label_col: str,
                     log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """Tiny ImageNet's val/ (val/images/*.JPEG) labelled by val/val_annotations.txt; Kaggle's ImageNet's val/ by
    LOC_val_solution.csv; GTSRB's Test/ by Test.csv: in a folder, _held_out_by_list."""

    @functools.cache  # (pick_split asks it of the training part and the held-out ones, and so does _held_out_by_list)
    def classes(n: str) -> set[str]:
        return {p.name for p in unwrapped(subs[n]).iterdir() if p.is_dir() and not hidden(p.name)}

    read = lambda part, listed: csv_catalog(subs[part], listed, image_col, label_col, guess=False)
    return _held_out_by_list(data, list(subs), split, classes, folder_lists(root), read, log)


def _held_out_by_list(data, parts: list[str], split: str, classes: Callable[[str], set], lists_in: Callable,
                      read: Callable, log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """Where no held-out part of a set split into parts of class folders (classes: a part's name -> its folders'
    names) holds the training part's classes, the held-out part that a list named as it labels (splits.part_list;
    read: the part's name, the list -> its Catalog), said, its classes numbered as the training part's folders
    named by the number; else None. (It was read as a class, images, which fastacgan.evaluate refused, naming the
    options that read it.)"""
    if split == "train" or (found := part_list(parts, lists_in)) is None:
        return None
    train, about = pick_split(parts, "train")
    held = pick_split(parts, split, classes)[0]
    if not (known := classes(train)) or (held is not None and classes(held) & known):
        return None  # (a held-out part of class folders, the training part's: read as such)
    part, listed = found
    try:  # (a list that labels none, or not these images: the part as it was, and evaluate's hint naming the list)
        cat = read(part, listed)
    except DataError:
        return None
    numbered = {int(n): n for n in known if n.isdigit()}  # GTSRB's ClassId 0 is its training part's folder 00000
    if all(c.isdigit() and int(c) in numbered for c in cat.class_names):
        cat.class_names = [numbered[int(c)] for c in cat.class_names]
    log(f"{split_note(data, about, part, split)}, its images labelled by {listed}")
    return cat


def _archive_held_out_by_list(path: Path, got, top: str, parts: list[str], split: str, image_col: str,
                              label_col: str, log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """_held_out_by_list in an archive (got: its archives.Listing): tiny-imagenet-200.zip as it is downloaded, its
    lists in the part, beside it or in any folder above."""
    if split == "train":  # (before a pass over the names)
        return None
    folders: dict[str, set] = {p: set() for p in parts}
    for n in (n[len(top) :] for n in got.names if n.startswith(top)):
        part, _, rel = n.partition("/")
        if part in folders and "/" in rel:
            folders[part].add(rel.partition("/")[0])
    above = [top[: i + 1] for i, c in enumerate(top) if c == "/"][::-1] + [""]  # (top/, its folders above, the root)
    lists_in = lambda part: [n for at in (f"{top}{part}/", *above) for n in sorted(got.lists)
                             if n.startswith(at) and "/" not in n[len(at) :]]  # fmt: skip
    read = lambda part, listed: _members_catalog(path, got, f"{top}{part}/", Member(path, listed, got), image_col,
                                                 label_col, guess=False)  # fmt: skip
    return _held_out_by_list(path, parts, split, folders.__getitem__, lists_in, read, log)


def archive_parts(path: Path, got, top: str, parts: list[str], split: str, image_col: str, label_col: str,
                  log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """The part of `split` of an archive (got: its archives.Listing) of a set split into parts (top/train/ ...) each
    labelled by its own CSV (part_csvs: Roboflow's export zipped) or by one beside them (_csv_beside: a Kaggle
    competition's zip), or parts of one set beside its labels (_parts_of_one: HAM10000 zipped), else None; the
    caller names it."""
    if of_one_set(parts):
        return _archive_parts_of_one(path, got, top, parts, image_col, label_col, log) if split == "train" else None
    if (labelled := _archive_part_csvs(path, got, top, parts)) is None:
        for form in (_archive_csv_beside, _archive_held_out_by_list, archive_training_parts):
            if (cat := form(path, got, top, parts, split, image_col, label_col, log)) is not None:
                return cat
        return None
    part = _pick(path, labelled, split, log)
    return _members_catalog(path, got, f"{top}{part}/", labelled[part], image_col, label_col)


def _members_catalog(path: Path, got, at: str, csv, image_col: str, label_col: str, guess: bool = True) -> Catalog:
    """The archive's images under `at` (a part: top/train/) that the CSV names, labelled by it."""
    index = name_index((n[len(at) :], i) for i, n in enumerate(got.names) if n.startswith(at))
    hits, labels, class_names = csv_labels(csv, image_col, label_col, index, f"{path}:{at}", guess, got.copies)
    return Catalog("", [f"{path}:{got.names[i]}" for i in hits], labels, class_names, Picked(got.read, hits),
                   sources=[str(path)])  # fmt: skip


def _archive_csv_beside(path: Path, got, top: str, parts: list[str], split: str, image_col: str, label_col: str,
                        log: Callable[[str], None]) -> Catalog | None:  # fmt: skip
    """_csv_beside in an archive: APTOS 2019's zip as `kaggle competitions download` leaves it (train_images/,
    test_images/, train.csv ...)."""

    def flat(part: str) -> bool:  # its images alone
        rel = [n[len(top) + len(part) + 1 :] for n in got.names if n.startswith(f"{top}{part}/")]
        return bool(rel) and not any("/" in r for r in rel)

    beside = [(n[len(top) :], n) for n in got.lists if n.startswith(top) and "/" not in n[len(top) :]]

    def csv_for(part: str) -> str | None:
        inside = [(n[len(top) + len(part) + 1 :], n) for n in got.lists if posixpath.dirname(n) == f"{top}{part}"]
        return next((k for k in rank_lists(part, inside + beside) if k.lower().endswith((".csv", ".jsonl"))), None)

    def read(part: str, lst: str, guess: bool) -> Catalog:
        return _members_catalog(path, got, f"{top}{part}/", Member(path, lst, got), image_col, label_col, guess)

    return _labelled_beside(path, parts, split, flat, csv_for, read, log)


@dataclass
class Inside:
    """--csv where --data is an archive and the CSV is not on disk beside it: a member of the archive so named, maybe
    (missing: the error that found none on disk)."""

    name: str
    missing: str


def archive_csv(path: Path, got, csv_path) -> Path | Member | None:
    """The CSV that labels an archive's images (got: its archives.Listing): --csv on disk (a Path), or else the
    member so named (Inside: ISIC's images and labels zipped together, as Kaggle ships sets); without --csv, the
    one CSV beside an Images/ folder in it (the ISIC layout zipped, as a folder's is found); else None."""
    if csv_path is None:
        by_dir: dict[str, list[str]] = {}
        for n in (n for n in got.lists if n.lower().endswith(".csv")):
            by_dir.setdefault(posixpath.dirname(n), []).append(n)
        found = next((c[0] for d, c in by_dir.items() if len(c) == 1
                      and any(n.startswith(f"{d}/Images/" if d else "Images/") for n in got.names)), None)  # fmt: skip
    elif isinstance(csv_path, Inside):
        want = csv_path.name.replace("\\", "/").removeprefix("./")
        hits = [want] if want in got.lists else [n for n in got.lists if n.endswith(f"/{want}")]
        if len(hits) != 1:
            held = f"{len(hits)} so named ({', '.join(hits[:3])}): give its path in it" if hits else "none so named"
            raise DataError(f"{csv_path.missing}; {path} holds {held}")
        found = hits[0]
    else:
        return csv_path
    if found is not None:
        got.others -= Counter({extension(found): 1})  # (read: not among the files passed over)
        return Member(path, found, got)
    return None
