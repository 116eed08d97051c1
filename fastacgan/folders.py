"""The image-folder form of --data: root/<class>/**/<image> listed into a Catalog (class folders in sorted order,
or only those --classes names), read through lone folders (unwrapped), and a folder split into parts (train/, test/
or val/, each holding class folders; the words and the choice of part: splits.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import binary_sets
from .class_picks import picked_classes
from .data import (
    ARCHIVE_EXTS,
    IMAGE_EXTS,
    TEST_SPLITS,
    TRAIN_SPLITS,
    Catalog,
    DataError,
    Every,
    Files,
    count_other,
    extension,
    folder_name,
    hidden,
    is_image,
    read_file,
)
from .hints import file_kinds, kinds_hint, loose_note, others_note, unsorted_hint
from .masks import MASK_DIRS, mask_class_note, mask_classes, mask_files, masks_note
from .pixel_csv import holds_pixel_rows
from .splits import copy_note, flat_parts, parts_copies, pick_split, set_copies, split_like, split_word

LISTS = (".csv", ".tsv", ".txt", ".json", ".jsonl")  # labels or annotations beside a set's folders
RUN_MARKS = {"config.json", "metrics.jsonl", "checkpoints"}  # what a training run's --out folder holds
CLUTTER = "BACKGROUND_Google"  # Caltech-101's folder of clutter images beside its 101 object classes


def folder_catalog(root: Path, log: Callable[[str], None] = lambda msg: None, classes: str = "") -> Catalog:
    """root/<class>/**/<image>; classes in sorted order, or in --classes' order (`classes`), and then only those
    class folders are listed (a few of ImageNet's 1,000 in a moment, not after a walk of 1.28 M files)."""
    entries = list(root.iterdir())
    class_dirs = sorted(p for p in entries if p.is_dir() and not hidden(p.name))
    loose = sorted(p.name for p in entries if is_image(p.name) and not p.is_dir())
    if not class_dirs:
        packed = sorted(p.name for p in entries if p.is_file() and p.name.lower().endswith(ARCHIVE_EXTS))
        rows = sorted(p.name for p in entries if p.suffix.lower() == ".csv" and p.is_file() and holds_pixel_rows(p))
        hint = f" (it holds {len(loose)} loose images)" if loose else ""
        msg = f"--data {root}: no class folders found{hint}; expected {root}/<class>/<image>"
        msg += kinds_hint(Counter(extension(p.name) for p in entries if p.is_file()))  # .dcm, .arrow
        # the data set as it was downloaded: train.tar.gz, test.tar.gz; Kaggle's MNIST as train.csv, test.csv
        for files, what in ((packed, "archives"), (rows, "CSVs of images, one a row")):
            if files:
                shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
                pick = next((n for n in files if "train" in n.lower()), files[0])
                msg += f". It holds {what} ({shown}): give one as --data, e.g. --data {root / pick}"
        if loose and (kind := binary_sets.set_in(root.parent)):  # flowers-102/jpg, oxford-iiit-pet/images
            raise DataError(f"{msg}. {root.parent} holds them with their labels ({kind}): give --data {root.parent}")
        raise DataError(msg + (unsorted_hint(root, loose, alone=True) if loose else ""))
    if by_initial([d.name for d in class_dirs], lambda x: _held(root / x)):
        return _initials_catalog(root, class_dirs, classes, log)
    names = [d.name for d in class_dirs]
    for m in mask_classes(names, lambda n: _first_images(root / n)):  # (Kvasir-SEG's masks/ beside images/)
        names.remove(m)
        log(mask_class_note(root, m))
    inside = lambda n: [e.name for e in os.scandir(root / n) if e.is_dir() and not hidden(e.name)]  # noqa: E731
    for c in set_copies(names, inside):  # (Kaggle's flowers/flowers/daisy/ beside flowers/daisy/)
        names.remove(c)
        log(copy_note(root, c))
    if CLUTTER in names and len(names) > 1 and CLUTTER not in classes.split(","):  # (--classes may name it)
        names.remove(CLUTTER)
        log(f"note: {root}'s {CLUTTER}/ is Caltech-101's background clutter, no object class: passed over, as "
            "torchvision's Caltech101 passes it over")  # fmt: skip
    # the classes in the order --classes gives them (as open_catalog orders them for every other form)
    class_names = picked_classes(classes, names) if classes else names
    label_of = {c: k for k, c in enumerate(class_names)}
    class_dirs = [d for d in class_dirs if d.name in label_of]
    paths, ids, due, others, deep, inner, masks = [], [], Every(), Counter(), {}, {}, []
    for k, d in enumerate(class_dirs):
        files = _images_under(d, mine := Counter(), masks)
        others += mine
        if not files:  # (what it holds instead: CUB-200's attributes/, LSUN's data.mdb)
            held = f"; it holds {file_kinds(mine, 5)}{kinds_hint(mine)}" if mine else ""
            raise DataError(f"class folder {d} holds no images ({', '.join(IMAGE_EXTS)}){held}{_classes_in(d)}")
        if split_word(d.name) in (*TRAIN_SPLITS, *TEST_SPLITS):  # (training_set/ too)
            deep[d.name] = any(os.sep in f[len(str(d)) + 1 :] for f in files)
        if len(class_dirs) <= 20:  # the folders in it that hold its images (see folders_note)
            inner[d.name] = folders_within(tuple(f[len(str(d)) + 1 :].split(os.sep)[:-1]) for f in files)
        paths += files
        ids += [label_of[d.name]] * len(files)
        if due():
            log(f"listing {root}: {len(paths)} images in {k + 1} of {len(class_dirs)} class folders")
    if loose:
        log(loose_note(root, loose))
    if masks:
        log(masks_note(root, [os.path.relpath(m, root) + os.sep * m.endswith(os.sep) for m in masks]))
    if others:
        log(others_note(root, others))
    # labels beside folders that may be no classes: CelebA's img_align_celeba/ beside list_attr_celeba.txt,
    # HAM10000's HAM10000_images_part_1/ and _part_2/ beside HAM10000_metadata.csv
    lists = sorted(p.name for p in entries if p.suffix.lower() in (".csv", ".tsv", ".txt") and p.is_file())
    lists = lists if len(names) == 1 else [n for n in lists if not n.lower().endswith(".txt")]  # (a readme.txt)
    if lists:
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        log(f"note: {root} holds {', '.join(lists[:4])} beside its class folder{'s' * (len(names) > 1)} ({shown}): "
            "where that holds the labels, give it with --csv (and the column with --csv-label-col)")  # fmt: skip
    if len(names) == 1 and (note := _one_class_note(root, names[0], paths)):  # (a labels file beside kept it)
        log(note)
    split_like(root, deep, names)
    for note in (shard_note(names), folders_note(root, inner)):
        if note:
            log(note)
    labels = np.asarray(ids, dtype=np.int64)
    return Catalog(folder_name(root), paths, labels, class_names, Files(paths), sources=paths)


def _one_class_note(root: Path, name: str, paths: list[str]) -> str:
    """Where the one class folder holds its images in folders, which may be the classes or a split set's parts, the
    --data that reads them: the folder where they part, by its shortest name (read through lone folders), past
    folders of no images (Kaggle's ImageNet: ILSVRC/ beside LOC_val_solution.csv holds Annotations/ and ImageSets/
    beside Data/, whose CLS-LOC/ holds train/, val/, test/: --data .../ILSVRC/Data)."""
    dirs = {os.path.dirname(p) for p in paths}
    top = Path(os.path.commonpath(dirs)) if dirs else root
    subs = sorted({Path(d).relative_to(top).parts[0] for d in dirs if Path(d) != top})
    if len(subs) < 2:
        return ""
    at, rel = root / name, top.relative_to(root / name).parts
    give = next((p for p in (at.joinpath(*rel[:k]) for k in range(len(rel))) if unwrapped(p) == top), top)
    where = "" if unwrapped(at) == top else f" of {top.relative_to(root).as_posix()}/"
    return (
        f"note: the one class folder of {root}, {name}/, holds {'its images in ' * bool(where)}folders "
        f"({', '.join(subs[:3])}{' ...' * (len(subs) > 3)}){where}: --data {give} reads them as classes or parts"
    )


def folders_within(below: Iterable[tuple[str, ...]]) -> set[str]:
    """The folders that hold a class's images (below: each image's folders inside the class folder), under lone
    folders (Office-31's amazon/images/<class>/: the classes, not images)."""
    below, at = list(below), 0
    while len(names := {b[at] for b in below if len(b) > at}) == 1 and all(len(b) > at + 1 for b in below):
        at += 1
    return names


def folders_note(root: Path, inner: dict[str, set], archive: bool = False) -> str:
    """The line that says how the class folders hold their images in folders (inner: class -> the folders in it that
    hold images: folders_within), or "": every one the same folders (PlantVillage's color/, grayscale/ and
    segmented/ each hold its 38 classes, Office-31's amazon/, dslr/, webcam/ its 31, in images/; class folders may
    each be split into train/ and test/), or every one a few folders of its own (LC25000's colon_image_sets/ holds
    colon_aca/ and colon_n/, lung_image_sets/ lung_aca/, lung_n/ and lung_scc/: the tissue classes, two levels
    down). Either way a class is every image under its folder; many folders in a class (a patient's each, a day's
    each) are no classes: not said."""
    sets = list(inner.values())
    if len(sets) < 2:
        return ""
    give = ", unpacked, as --data" if archive else f" as --data (--data {root / next(iter(inner))})"
    tail = f": a class is every image under its folder; if those folders are the classes, give one class folder{give}"
    if len(sets[0]) >= 2 and all(s == sets[0] for s in sets):
        shown = ", ".join(sorted(sets[0])[:4]) + (" ..." if len(sets[0]) > 4 else "")
        if all(split_word(n) for n in sets[0]):
            return (
                f"note: each class folder of {root} is split into the same parts ({shown}): all are read as its class"
            )
        return f"note: each class folder of {root} holds the same {len(sets[0])} folders ({shown}){tail}"
    if not all(2 <= len(s) <= 20 for s in sets):
        return ""
    shown = "; ".join(f"{c}/: {', '.join(sorted(s)[:3])}{' ...' * (len(s) > 3)}" for c, s in list(inner.items())[:3])
    more = " ..." if len(sets) > 3 else ""
    return f"note: each class folder of {root} holds its images in folders of its own ({shown}{more}){tail}"


def shard_note(names: list[str]) -> str:
    """The line that says that the class folders (sorted) number the shards of one set (00000, 01000, 02000 ...:
    equal widths of 4 digits or more, 0, s, 2s ... with s >= 100), else ""."""
    if len(names) < 3 or not all(n.isdigit() and len(n) == len(names[0]) >= 4 for n in names):
        return ""
    step = int(names[1]) - int(names[0])
    if step < 100 or [int(n) for n in names] != list(range(0, step * len(names), step)):
        return ""
    return (f"note: the class folders {', '.join(names[:3])} ... are numbered in steps of {step}, as the shards of "
            "one set are (FFHQ's images1024x1024/00000/, 01000/ ...): the AC-GAN learns them as classes, which such "
            "shards are not; give folders of classes, or --csv with the labels")  # fmt: skip


def by_initial(letters: list[str], held: Callable[[str], Iterable[str]]) -> bool:
    """The class folders (their names: letters) are initial letters holding the class folders, as SUN397 and
    Places365 ship them (a/abbey/, a/apartment_building/outdoor/, b/bakery/shop/): each letter folder holds folders
    whose names begin with its letter, and no image (a set of handwritten letters has its images in A/, B/ ..., or
    in A/writer_1/ ...). held(letter): the names of the folders in it, "" for an image; asked only where the names
    are letters (an image folder's and an archive's listing)."""
    if len(letters) < 3 or not all(len(x) == 1 and x.isalpha() for x in letters):
        return False
    return all((subs := list(held(x))) and all(n.lower().startswith(x.lower()) for n in subs) for x in letters)


def _held(folder: Path) -> list[str]:
    """by_initial's held for a folder: its folders' names, "" for each image in it."""
    return ["" if is_image(p.name) else p.name for p in folder.iterdir()
            if is_image(p.name) or (p.is_dir() and not hidden(p.name))]  # fmt: skip


def initials_note(data, letters: list[str], names: list[str]) -> str:
    """The line that says the class folders are initial letters and the classes the folders in them."""
    return (
        f"note: {data}'s folders are initial letters ({', '.join(f'{x}/' for x in letters[:3])} ...), as SUN397 "
        f"and Places365 ship them: the classes are the folders in them ({', '.join(names[:3])} ...: {len(names)})"
    )


def _initials_catalog(root: Path, letters: list[Path], classes: str, log: Callable[[str], None]) -> Catalog:
    """root/<letter>/<class>/<image>: an image's class is the path between its letter folder and itself (abbey,
    apartment_building/outdoor), as torchvision's SUN397 names them. As an image folder, the classes were the
    letters."""
    paths, of, others, due = [], [], Counter(), Every()
    for k, d in enumerate(letters):
        for f in _images_under(d, others):
            paths.append(f)
            of.append(os.path.relpath(os.path.dirname(f), d).replace(os.sep, "/"))
        if due():
            log(f"listing {root}: {len(paths)} images in {k + 1} of {len(letters)} letter folders")
    if not paths:
        raise DataError(f"--data {root}: its folders {', '.join(d.name for d in letters[:5])} ... hold no images")
    names = sorted(set(of))
    class_names = picked_classes(classes, names) if classes else names
    label_of = {c: k for k, c in enumerate(class_names)}
    keep = [i for i, c in enumerate(of) if c in label_of]
    log(initials_note(root, [d.name for d in letters], names))
    if others:
        log(others_note(root, others))
    labels = np.asarray([label_of[of[i]] for i in keep], dtype=np.int64)
    paths = [paths[i] for i in keep]
    return Catalog(folder_name(root), paths, labels, class_names, Files(paths), sources=paths)


def _classes_in(empty: Path) -> str:
    """Where a folder beside a class folder of no images holds folders of images, the data set is likely one level
    down (CUB-200: images/<class>/ beside attributes/; Stanford Dogs: images/Images/<class>/ beside annotations/,
    read through its folder of its name: unwrapped): what to give; where it or a folder beside it holds a CSV of
    pixel rows (Sign Language MNIST's sign_mnist_train/), that CSV."""
    found = (p for p in empty.parent.iterdir() if p.is_dir() and p != empty and not hidden(p.name))
    found = sorted(found, key=lambda p: (split_word(p.name) not in TRAIN_SPLITS, p.name))  # a training part first
    rows = [f for d in (empty, *found) for f in sorted(d.glob("*.csv")) if holds_pixel_rows(f)]  # Sign Language MNIST
    if rows := sorted(rows, key=lambda f: "train" not in f.name.lower()):
        return f"; {rows[0]} is a CSV of images, one a row: give it as --data"
    for d in found:
        subs = sorted(p for p in unwrapped(d).iterdir() if p.is_dir() and not hidden(p.name))
        if subs and any(is_image(f.name) for f in subs[0].iterdir()):
            return f"; {d} holds folders of images ({subs[0].name}, ...): if those are the classes, give --data {d}"
        if not subs and (loose := [f.name for f in d.iterdir() if is_image(f.name)]):  # ISIC 2018's _Input/
            return f"; {d} holds images alone{unsorted_hint(d, loose)}"
    return ""


def a_note(name: str) -> bool:
    """A file that says what a data set is or how it was made (a README, its licence, how to cite it, a paper's PDF,
    a script: Animals-10's translate.py beside raw-img/; the Rice Image Dataset's Rice_Citation_Request.txt): no
    part of its data. A CSV is none, whatever its name."""
    name = name.lower()
    notes = (".md", ".pdf", ".html", ".rtf", ".py", ".ipynb", ".sh")
    said = ("readme", "licen", "copying", "cita", "cite", "attribution")  # (as a word of the name: Rice_Citation_...)
    if name.endswith((".csv", ".tsv", ".jsonl")):
        return False
    return name.endswith(notes) or any(w.startswith(said) for w in re.split(r"[^a-z]+", name))


def _has_folders(folder: Path) -> bool:
    return any(p.is_dir() and not hidden(p.name) for p in folder.iterdir())


def unwrapped(part: Path) -> Path:
    """The folder whose folders are the classes: `part`, or, where it holds one folder and nothing else but notes
    (a_note), that folder's, as deep as such lone folders go: Kaggle's archives unpack so (training_set/training_set/
    <class>/; PetImages/<class>/ beside a licence and a readme), and GTSRB's (Final_Training/Images/<class>/). A lone
    folder with no folders in it (cats/cats/*.png) is a class: not entered; nor one named as a split's part. A folder
    beside labels lists is entered only where it holds a split set of class folders (_split_set)."""
    for _ in range(8):  # (a link to a folder above would nest forever)
        subs = [p for p in part.iterdir() if not hidden(p.name) and not (a_note(p.name) and p.is_file())]
        lone = subs[0] if len(subs) == 1 and subs[0].is_dir() else None
        dirs = [p for p in subs if p.is_dir()]
        if lone is None and len(dirs) == 1 and all(p.suffix.lower() in LISTS for p in subs if p != dirs[0]):
            lone = dirs[0] if _split_set(dirs[0]) else None  # (Kaggle's Stanford Cars: car_data/ beside anno_train.csv)
        # (a lone part of a split set, xray/train/ alone, is left to split_folder: it says there is no test part)
        if lone is None or not _has_folders(lone) or (split_word(lone.name) and lone.name.lower() != part.name.lower()):
            break
        part = lone
    return part


def _split_set(folder: Path) -> bool:
    """Whether a folder (through its lone folders) is a set split into parts whose training part holds class folders:
    a labels list beside it is then no reason to stop there (what it labels, the class folders label too)."""
    inner = unwrapped(folder)
    parts = [p.name for p in inner.iterdir() if p.is_dir() and not hidden(p.name)]
    train = pick_split(parts, "train")[0]
    return train is not None and _has_folders(unwrapped(inner / train))


def _first_images(folder: Path, most: int = 3) -> list[bytes]:
    """The bytes of the first few readable images under a folder (in its listing's order)."""
    found = (os.path.join(d, f) for d, _, files in walk(folder) for f in sorted(files) if is_image(f))
    blobs = []
    for path in found:
        with contextlib.suppress(OSError):  # (an unreadable file is named where the class is read)
            blobs.append(read_file(path))
        if len(blobs) == most:
            break
    return blobs


def _any_image(folder: Path) -> bool:
    return any(is_image(f) for _, _, files in walk(folder) for f in files)


def split_folder(root: Path, split: str) -> tuple[Path | None, str]:
    """root/<train|test|val...>/<class>/...: (the folder of `split`, or None when there is none; a description).
    (root, "") when root is not laid out so: its folders are then the class folders."""
    subs = {p.name: p for p in root.iterdir() if p.is_dir() and not hidden(p.name)}

    def folders(n: str) -> set:  # the folders in part n (in its one folder of its name: training_set/training_set/)
        return {p.name for p in unwrapped(subs[n]).iterdir() if p.is_dir() and not hidden(p.name)}

    train, about = pick_split(list(subs), "train")
    bare = [n for n in subs if split_word(n) is None]  # beside the parts, folders of no images (Fruits 360's papers/)
    if train is None and 0 < len(bare) <= 3 and len(bare) < len(subs) and not any(_any_image(subs[n]) for n in bare):
        subs = {n: p for n, p in subs.items() if n not in bare}
        train, about = pick_split(list(subs), "train")
        about += f" ({', '.join(sorted(bare))}: no images)" if about else ""
    copies, copied = parts_copies(list(subs), lambda n: _held(subs[n]))  # (chest_xray/chest_xray/)
    if copies:
        subs = {n: p for n, p in subs.items() if n not in copies}
        train, about = pick_split(list(subs), "train")
        about += copied
    flat = train is not None and split_word(train) and not folders(train) and _any_image(subs[train])
    if len(subs) > 1 and flat:  # Kaggle's butterflies: train/*.jpg, test/*.jpg, Training_set.csv; Dogs vs. Cats
        loose = [p.name for p in subs[train].iterdir() if is_image(p.name)]  # (train/cat.0.jpg: a hint to sort them)
        flat_parts(root, list(subs), unsorted_hint(subs[train], loose))
    if train is None or not folders(train):
        return root, ""  # (a training part that holds no class folders: classes merely named so)
    part = pick_split(list(subs), split, folders)[0]
    return (unwrapped(subs[part]) if part else None), about


def _unlistable(e: OSError) -> None:
    """os.walk's error handler: a folder that cannot be listed (no permission, a lost mount) is an error naming it,
    not a folder of no images (os.walk's default passes it over in silence)."""
    raise DataError(f"cannot list {e.filename}: {e.strerror or e}")


def walk(folder: Path, keep_hidden: bool = False):
    """os.walk of `folder` (its (dirpath, dirnames, filenames) triples), following symbolic links to folders as
    torchvision's ImageFolder does (a data set put together from links: cat/extra -> /data/more_cats), each real
    folder once: a link to a folder already walked, or to one that holds `folder` (a link back up the tree, which
    would walk forever or take in the other classes), is passed over; with two links to one folder, the first in
    name order is read. Hidden folders (.ipynb_checkpoints, .git) are passed over too unless `keep_hidden`, and
    SYSTEM_DIRS' always. A folder that cannot be listed is a DataError naming it."""
    top = os.path.realpath(folder)
    seen = set()
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_unlistable, followlinks=True):
        real = top if dirpath == str(folder) else os.path.realpath(dirpath)
        if real in seen or (real != top and top.startswith(real.rstrip(os.sep) + os.sep)):
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(n for n in dirnames if not hidden(n) or (keep_hidden and n.startswith(".")))
        yield dirpath, dirnames, filenames


def _images_under(folder: Path, others: Counter | None = None, masks: list[str] | None = None) -> list[str]:
    """The image files anywhere under `folder` (walk: links to folders followed), as sorted path strings (`others`
    counts the other files by extension); with `masks`, but the masks (fastacgan/masks.py), which are added to it
    (a folder's path ending in a separator). os.walk reads each directory's entry types with its listing, where a
    per-file is_file() costs a stat call (3.6x slower for 100,000 files here, more on a network file system)."""
    out = []
    for dirpath, dirnames, filenames in walk(folder):
        if masks is not None and (found := [n for n in dirnames if n.lower() in MASK_DIRS]):
            dirnames[:] = [n for n in dirnames if n not in found]
            masks += [os.path.join(dirpath, n, "") for n in found]
        if masks is not None and (skip := mask_files(filenames)):
            filenames = [f for f in filenames if f not in skip]
            masks += sorted(os.path.join(dirpath, f) for f in skip)
        if "checkpoints" in dirnames and RUN_MARKS <= {*filenames, *dirnames}:
            marks = ", ".join(sorted(RUN_MARKS))
            raise DataError(f"{dirpath} holds a training run's outputs ({marks}), whose images would be trained "
                            f"on as class {folder.name}; move it out of the data folder")  # fmt: skip
        for f in filenames:
            if is_image(f):
                out.append(os.path.join(dirpath, f))
            elif others is not None:
                count_other(others, f)
    return sorted(out)
