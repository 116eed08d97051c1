"""Archives of an image folder: .zip (members read on demand, each process opening the archive for itself), an
uncompressed .tar (members read by offset) or a gzip/bzip2/xz-compressed tar (read once, in one pass, into
memory, since a compressed stream cannot seek; refused beyond half of the machine's memory). Labels come from
each image's class folder, as in the image folder the archive was made of, or from a CSV (labels_csv.py).
"""

from __future__ import annotations

import functools
import os
import shlex
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from . import binary_sets, listed_sets, webdataset
from .data import (
    DAMAGED,
    IMAGE_EXTS,
    TEST_SPLITS,
    TRAIN_SPLITS,
    Catalog,
    DataError,
    Every,
    NoImages,
    NoTestSplit,
    Picked,
    Spans,
    count_other,
    folder_name,
    hidden,
    is_image,
    labels_from,
)
from .folders import by_initial, folders_note, folders_within, initials_note, shard_note
from .hints import class_heads, file_kinds, kinds_hint, loose_note, others_note
from .labelled_parts import archive_csv, archive_parts, of_one_set
from .labels_csv import csv_labels, file_ends, name_index
from .limits import memory_budget
from .masks import archive_masks, mask_class_note, mask_classes, masks_note
from .splits import (
    archive_ext,
    copy_note,
    flat_parts,
    parts_copies,
    pick_split,
    set_copies,
    several_training,
    split_like,
    split_note,
    split_word,
)


def _tar_spans(path: Path, members: list[tarfile.TarInfo]) -> Spans:
    """Tar members' bytes, read by offset on demand (a plain .tar: works in worker processes)."""
    at = np.array([(m.offset_data, m.size) for m in members], dtype=np.int64).reshape(-1, 2)
    return Spans([str(path)], np.zeros(len(members), dtype=np.int32), at[:, 0], at[:, 1])


def _read_compressed(path: Path, log: Callable[[str], None], others: Counter) -> tuple[list, list]:
    """([(name, bytes)] of a compressed archive's images, of its lists: _a_list) in one pass over the stream (it
    cannot seek, so the bytes are kept in memory), refusing before they outgrow memory_budget()."""
    budget, total, out, lists, due = memory_budget(), 0, [], [], Every()
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            if not (m.isfile() and is_image(m.name)):
                if m.isfile():
                    count_other(others, m.name)
                    if _a_list(m.name, m.size):
                        lists.append((m.name, tf.extractfile(m).read()))
                continue
            total += m.size
            if total > budget:
                raise DataError(
                    f"--data {path}: a compressed archive is held in memory (a compressed stream cannot seek), and its "
                    f"images pass {budget / 2**30:.1f} GiB, half of the memory this process may take; extract it and "
                    f"give the folder, or re-pack it as an uncompressed .tar (read from disk as needed)"
                )
            out.append((m.name, tf.extractfile(m).read()))
            if due():
                log(f"reading {path.name}: {len(out)} images, {total / 2**20:,.0f} MiB so far")
    return out, lists


LIST_EXTS, LIST_MAX = (".txt", ".json", ".csv", ".jsonl"), 64 << 20  # a set's lists (listed_sets, labels_csv)


def _clean(name: str) -> str:
    """A member's name without empty or `.` parts (`tar cf x.tar .` writes ./cat/0.png; some tools write a/b//c)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _a_list(name: str, size: int) -> bool:
    return name.lower().endswith(LIST_EXTS) and size <= LIST_MAX


def _compressed(path: Path) -> bool:
    """Whether the file is a gzip, bzip2 or xz stream (by its first bytes, whatever its name says)."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head == b"\xfd7zXZ\x00"


class _ZipReader:
    """Bytes of zip members by name; each process opens the archive for itself (worker processes are forked, and
    a shared file offset would mix their reads)."""

    def __init__(self, path: Path, names: list[str]):
        self.path, self.names, self._zip, self._pid = str(path), names, None, None

    def __call__(self, i: int) -> bytes:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip.read(self.names[i])

    def __getstate__(self):  # a spawned worker opens its own
        return {"path": self.path, "names": self.names}

    def __setstate__(self, state):
        self.__init__(state["path"], state["names"])


# the compression methods Python's zipfile reads (stored, deflate, bzip2, lzma), and some it does not: 7-Zip's and
# WinZip's options, Windows' own Deflate64 for large files
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {9: "Deflate64", 93: "Zstandard", 95: "xz", 98: "PPMd"}


def _check_zip_members(path: Path, images: list[zipfile.ZipInfo]) -> None:
    """Refuse, at once and by name, a zip whose images cannot be read here: every read would fail, and the images
    were counted as unreadable one by one ("none of the images probed could be opened")."""
    locked = [i for i in images if i.flag_bits & 0x1]
    if locked:
        raise DataError(f"--data {path}: {len(locked)} of its {len(images)} images are encrypted (a zip with a "
                        "password): extract it with the password and give the folder, or zip it again without "
                        "one")  # fmt: skip
    odd = [i for i in images if i.compress_type not in _ZIP_METHODS]
    if odd:
        method = odd[0].compress_type
        name = _ZIP_METHOD_NAMES.get(method, f"method {method}")
        raise DataError(f"--data {path}: {len(odd)} of its {len(images)} images are compressed with {name}, which "
                        "Python's zipfile cannot read: extract it (7-Zip) and give the folder, or zip it again with "
                        "Deflate (or as a .tar)")  # fmt: skip


@dataclass
class Listing:
    """An archive's image members (names, sorted; read: i -> the bytes of member i), its lists (_a_list: the same),
    the kinds of the other files it holds (count_other), and whether image members are copies of one file (copies:
    their numbers -> whether; a zip's sizes and CRCs, a plain tar's sizes and ends, labels_csv.file_ends)."""

    names: list[str]
    read: Callable[[int], bytes]
    lists: list[str]
    read_list: Callable[[int], bytes]
    others: Counter
    copies: Callable[[list[int]], bool]


def _same(keys: list) -> Callable[[list[int]], bool]:
    """Listing.copies where keys[i] tells member i's copies (a zip's sizes and CRCs; the bytes held in memory)."""
    return lambda ids: len({keys[i] for i in ids}) == 1


def _tar_copies(path: Path, members: list[tarfile.TarInfo]) -> Callable[[list[int]], bool]:
    def copies(ids: list[int]) -> bool:  # the same size and ends (labels_csv.file_ends)
        with open(path, "rb") as f:
            ends = {(m.size, file_ends(f, m.offset_data, m.size)) for m in (members[i] for i in ids)}
        return len(ends) == 1

    return copies


def _archive_listing(path: Path, log: Callable[[str], None]) -> Listing:
    """The Listing of a .zip or a tar archive."""
    others = Counter()
    try:
        if path.name.lower().endswith(".zip"):  # a zip's directory is at its end: members are read on demand
            with zipfile.ZipFile(path) as zf:  # (PowerShell's Compress-Archive writes \ between folders)
                infos = {i.filename.replace("\\", "/"): i for i in zf.infolist() if not i.is_dir()}
            infos = {_clean(n): i for n, i in infos.items() if not n.endswith("/")}  # (__MACOSX/: data.hidden)
            files = {n: i.filename for n, i in infos.items()}
            names = sorted(n for n in files if is_image(n))
            _check_zip_members(path, [infos[n] for n in names])
            reader = _ZipReader(path, [files[n] for n in names])
            lists = [n for n, i in infos.items() if _a_list(n, i.file_size)]
            read_list = _ZipReader(path, [files[n] for n in lists])
            copies = _same([(infos[n].file_size, infos[n].CRC) for n in names])
            for n in files:
                count_other(others, n)
        elif _compressed(path):
            found, kept = _read_compressed(path, log, others)
            found = sorted((_clean(n), b) for n, b in found)
            names, held = [n for n, _ in found], [b for _, b in found]  # (held in memory)
            reader, copies = held.__getitem__, _same(held)
            lists, read_list = [_clean(n) for n, _ in kept], [b for _, b in kept].__getitem__
        else:
            with tarfile.open(path, "r:") as tf:  # the headers only: tarfile seeks over the members' data
                files, due = [], Every()  # (a header a member: 1.28 M of them take half a minute, said as it goes)
                for m in tf:
                    files += [m] if m.isfile() else []
                    if due():
                        log(f"listing {path.name}: {len(files):,} files so far")
            members = sorted((m for m in files if is_image(m.name)), key=lambda m: _clean(m.name))
            kept = [m for m in files if _a_list(m.name, m.size)]
            names, lists = [_clean(m.name) for m in members], [_clean(m.name) for m in kept]
            reader, read_list, copies = _tar_spans(path, members), _tar_spans(path, kept), _tar_copies(path, members)
            for m in files:
                count_other(others, m.name)
    except DAMAGED as e:
        raise DataError(f"--data {path}: cannot read the archive ({e})") from e
    if not names:  # (what it holds instead: DICOM scans, NIfTI volumes; a CIFAR tar under another name)
        held = f"; it holds {file_kinds(others, 5)}{kinds_hint(others)}" if others else ""
        if others[".tar"] >= 2 and others[".tar"] >= others.total() // 2:  # ImageNet's ILSVRC2012_img_train.tar
            q = shlex.quote(str(path.expanduser().resolve()))
            held += (": a tar a class, as ImageNet's training tar holds them; unpack each into a folder of its name, "
                     f'then give --data train: mkdir train && tar xf {q} -C train && (cd train && for f in *.tar; do '
                     'mkdir "${f%.tar}" && tar xf "$f" -C "${f%.tar}" && rm "$f"; done)')  # fmt: skip
        raise NoImages(f"--data {path}: the archive holds no images ({', '.join(IMAGE_EXTS)}){held}")
    return Listing(names, reader, lists, read_list, others, copies)


def _root_level(dirs: list[tuple[str, ...]]) -> int:
    """How many folders all the images share: those of the folder the archive was made of (shapes/ in
    shapes/circle/x.png), 0 when it was made of the folder's contents. The class folders are one level below."""
    k, shallowest = 0, min(len(d) for d in dirs)
    while k < shallowest and len({d[k] for d in dirs}) == 1:
        k += 1
    return k


def split_archives(root: Path, data: str, split: str, log: Callable[[str], None]) -> Catalog | None:
    """A folder of a split set's archives, one a part, and no folders (train.tar.gz beside test.tar.gz, as
    ../shared/data/cifar10-jpeg holds CIFAR-10): the archive of `split`, read whole, named after the folder; None
    for another folder (one of archives that name no split: images.zip beside masks.zip)."""
    try:
        entries = [p for p in root.iterdir() if not hidden(p.name)]
    except OSError:
        return None
    if any(p.is_dir() for p in entries):
        return None
    if shards := webdataset.folder_shards(entries):  # (imagenet1k-train-0000.tar ...)
        return webdataset.shards_catalog(shards, split, root, log)
    packed: dict[str, Path] = {}  # part name -> its archive
    for p in entries:
        if ext := archive_ext(p.name):
            packed[p.name[: -len(ext)]] = p
    part, about = pick_split(list(packed), split)
    if not about:
        return None
    about = f"split into {', '.join(sorted(p.name for p in packed.values()))}"
    if part is None:
        raise NoTestSplit(f"--data {data}: {about}, none of them a test split ({', '.join(TEST_SPLITS)})")
    log(split_note(data, about, packed[part].name, split))
    cat = archive_catalog(packed[part], log)
    cat.name = folder_name(root)  # (the default --out: runs/cifar10-jpeg, not runs/train)
    return cat


def archive_catalog(path: Path, log: Callable[[str], None] = lambda msg: None, csv_path=None,
                    image_col: str = "", label_col: str = "", split: str = "train") -> Catalog | None:  # fmt: skip
    """A .zip or tar of an image folder: members [<folder>/]<class>/.../<image>, labelled by their class folder, as
    the folder's images would be (_root_level; images beside the class folders are passed over, said in a line); or,
    with a CSV (labelled_parts.archive_csv), members anywhere named by its image column, labelled by it. An image
    folder split into parts ([<folder>/]train/<class>/..., test/<class>/...; data.TRAIN_SPLITS, TEST_SPLITS): the
    part of `split`, or None when split is "test" and there is no such part (nor a split)."""
    if csv_path is None and not path.name.lower().endswith(".zip") and webdataset.is_shard(path):
        return webdataset.shard_catalog([path], path, log) if split == "train" else None
    got = _archive_listing(path, log)
    if (csv_path := archive_csv(path, got, csv_path)) is not None and split != "train":
        return None  # (an archive labelled by a CSV has one part)
    if csv_path is None and (cat := listed_sets.in_archive(path, got, split)) is not None:
        return cat
    names, reader, set_name = got.names, got.read, path.name[: len(path.name) - len(archive_ext(path.name))]
    said = lambda: got.others and log(others_note(path, got.others))  # noqa: E731 - not for a set's own lists
    if csv_path is not None:
        said()
        index = name_index((n, i) for i, n in enumerate(names))
        hits, labels, class_names = csv_labels(csv_path, image_col, label_col, index, f"{path}", same=got.copies)
        return Catalog(set_name, [f"{path}:{names[i]}" for i in hits], labels, class_names,
                       Picked(reader, hits), sources=[str(path)])  # fmt: skip
    dirs = [tuple(n.split("/")[:-1]) for n in names]
    k = _root_level(dirs)  # the class folders' level: images beside them are passed over, as in a folder
    keep = [i for i, d in enumerate(dirs) if len(d) > k]
    if not keep:  # every image in the one folder that all share: an archive of one class folder, or of no folder
        lone = dirs[0][k - 1] if k else ""  # (Kaggle's Dogs vs. Cats: train.zip of train/cat.0.jpg, train/dog.0.jpg)
        if (not k or split_word(lone)) and (found := class_heads([Path(n).name for n in names])):
            raise DataError(f"--data {path}: {f'{lone}/ in it' if k else 'it'} holds images alone, no class folders. "
                            f"Their names begin with what look like classes, {found[1]}: unpack it, put each class's "
                            f"images in a folder of its own ({lone or '.'}/{found[0].most_common(1)[0][0]}/...) and "
                            "give the folder that holds them")  # fmt: skip
        if k == 0:
            raise DataError(f"--data {path}: {names[0]} is not inside a class folder; expected <class>/<image> "
                            f"members, or give the labels with --csv")  # fmt: skip
        if (kind := binary_sets.set_in(path.parent)) in ("flowers102", *listed_sets.SETS):  # (102flowers.tgz)
            raise DataError(f"--data {path}: its images are all in {lone}/, no class folders; {path.parent} holds "
                            f"them with their labels ({kind}): give --data {path.parent}")  # fmt: skip
        k, keep = k - 1, range(len(names))
    loose = [names[i] for i, d in enumerate(dirs) if len(d) == k]
    under: dict[str, list[tuple]] = {}  # part (or class) -> its members' folders: each part's asked of its own
    for i in keep:
        under.setdefault(dirs[i][k], []).append(dirs[i])
    parts = sorted(under)

    @functools.cache
    def inner(n: str) -> int:  # the level of part n's class folders: below lone folders, as folders.unwrapped reads
        at, ds = k + 1, under[n]  # them (n/n/<class>/, n/images/<class>/; not a lone part, train/ alone)
        while all(len(d) > at for d in ds) and any(len(d) > at + 1 for d in ds):
            lone = {d[at] for d in ds}
            if len(lone) != 1 or (split_word(name := lone.pop()) and name.lower() != ds[0][at - 1].lower()):
                break
            at += 1
        return at

    def folders(n: str) -> set:  # the folders in part (or class) n
        at = inner(n)
        return {d[at] for d in under[n] if len(d) > at}

    copies, copied = parts_copies(parts, folders)  # (the chest X-ray download's chest_xray/chest_xray/)
    if copies:
        parts, keep = [n for n in parts if n not in copies], [i for i in keep if dirs[i][k] not in copies]
    part, about = pick_split(parts, split, folders)
    about += copied if about else ""
    top = "".join(f"{d}/" for d in dirs[keep[0]][:k])
    if (about or of_one_set(parts) or several_training(parts)) and (cat := archive_parts(
            path, got, top, parts, split, image_col, label_col, log)) is not None:  # fmt: skip
        cat.name = set_name  # (Roboflow's export zipped, HAM10000's: each part's images labelled by a CSV)
        return cat
    said()
    if about and folders(pick_split(parts, "train")[0]):  # .../train/<class>/<image>
        if part is None:
            raise NoTestSplit(f"--data {path}: {about}, none of them a test split ({', '.join(TEST_SPLITS)})")
        log(split_note(path, about, part, split))
        keep, at = [i for i in keep if dirs[i][k] == part], inner(part)
        loose += [names[i] for i in keep if len(dirs[i]) == at]
        keep, k = [i for i in keep if len(dirs[i]) > at], at
        if not keep:  # a part of unlabelled images (Kaggle's test/), as the folder form says it
            raise DataError(f"--data {path}: no class folders found in {part}/ (it holds {len(loose)} loose images); "
                            f"expected {part}/<class>/<image>")  # fmt: skip
    elif split != "train":
        return None
    elif about and len(parts) > 1 and all(map(split_word, parts)):  # parts named so, images alone (splits.flat_parts)
        train = pick_split(parts, "train")[0]  # (Dogs vs. Cats: train/cat.0.jpg, train/dog.0.jpg beside test1/)
        heads = class_heads([Path(names[i]).name for i in keep if dirs[i][k] == train])
        flat_parts(path, parts, f"; the names of {train}/'s images begin with what look like classes, {heads[1]}: "
                   "unpack it and put each class's images in a folder of its own" if heads else "; where a CSV labels "
                   "the training part's images, unpack it and give that part with --csv")  # fmt: skip
    else:  # classes named as parts, holding folders: a likely mistake (splits.split_like)
        named = [p for p in parts if split_word(p) in (*TRAIN_SPLITS, *TEST_SPLITS)]  # (training_set/ too)
        split_like(path, {p: bool(folders(p)) for p in named}, parts)
    if loose:
        log(loose_note(path, loose))
    keep, masks = archive_masks(names, dirs, keep, k)
    if masks:  # (COVID-19 Radiography's <class>/masks/ beside <class>/images/)
        log(masks_note(path, masks))
    if len(keep) < len(names):
        names, reader, dirs = [names[i] for i in keep], Picked(reader, keep), [dirs[i] for i in keep]
    tops = sorted({d[k] for d in dirs})  # the class folders (or SUN397's initial letters)
    firsts = lambda c: [reader(j) for j in islice((j for j, d in enumerate(dirs) if d[k] == c), 3)]  # noqa: E731

    @functools.cache
    def held() -> dict[str, set]:  # class folder -> the folders in it, "" for an image (one pass, asked of letters)
        by: dict[str, set] = {}
        for d in dirs:
            by.setdefault(d[k], set()).add(d[k + 1] if len(d) > k + 1 else "")
        return by

    # class folders that are no classes: Kvasir-SEG's masks/ beside images/; Kaggle's flowers/flowers/daisy/ beside
    # flowers/daisy/ (a copy of the set)
    for find, note in ((lambda: mask_classes(tops, firsts), mask_class_note),
                       (lambda: set_copies(tops, lambda x: held()[x]), copy_note)):  # fmt: skip
        if gone := find():
            keep = [i for i, d in enumerate(dirs) if d[k] not in gone]
            names, reader, dirs = [names[i] for i in keep], Picked(reader, keep), [dirs[i] for i in keep]
            tops = [t for t in tops if t not in gone]
            for c in gone:
                log(note(path, c))
    initials = by_initial(tops, lambda x: held()[x])  # SUN397's and Places365's a/abbey/, b/bakery/shop/
    labels, class_names = labels_from(["/".join(d[k + 1 :]) if initials else d[k] for d in dirs])
    if initials:
        log(initials_note(path, tops, class_names))
    below: dict[str, list] = {c: [] for c in class_names} if len(class_names) <= 20 and not initials else {}
    for d in dirs if below else ():  # (the folders in each class folder: folders.folders_note)
        below[d[k]].append(d[k + 1 :])
    within = {c: folders_within(b) for c, b in below.items()}
    for note in (shard_note(class_names), folders_note(path, within, archive=True)):
        if note:
            log(note)
    return Catalog(set_name, [f"{path}:{n}" for n in names], labels, class_names, reader, sources=[str(path)])
