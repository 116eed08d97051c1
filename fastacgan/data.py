"""Data: what --data names, as a `Catalog` (names, labels, classes, how to read each image's bytes, or the pixels
of a set stored decoded). `open_catalog` resolves every form: the built-in set (builtin.py), image folders
(folders.py), archives (archives.py), CSV labels (labels_csv.py), torchvision's and Keras' files (datasets.py); then
--classes and --max-images. Nothing is decoded here: decode.py decodes (the whole set once, or per batch in the
streaming loaders), and loaders.py serves batches in an order that depends only on (seed, epoch, rank).
"""

from __future__ import annotations

import lzma
import os
import re
import tarfile
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import features


def pil_reads(module: str) -> bool:
    """Whether this Pillow has the decoder `module` (PIL.features' name): "avif" from Pillow 11.3 on, in its wheels."""
    try:
        return features.check_module(module)
    except ValueError:  # an older Pillow, which does not know the name
        return False


# JPEGs saved from browsers are often .jfif; .pbm/.pnm are Netpbm's bitmaps and any-map (PIL reads them all); AVIF
# (web images) where this Pillow reads it, else such files are passed over, saying so (others_note)
IMAGE_EXTS = (".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
              ".pbm", ".pnm", *((".avif",) if pil_reads("avif") else ()))  # fmt: skip
# the first bytes of the image files a stored value may be: JPEG, PNG, GIF, BMP, WebP (RIFF....WEBP), TIFF
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")
# a tar, uncompressed or compressed with gzip, bzip2 or xz (Python reads each; zstd it reads from 3.14 only)
TAR_EXTS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
ARCHIVE_EXTS = (*TAR_EXTS, ".zip")
# what reading a damaged archive or compressed stream raises (a .tar.xz's LZMAError escaped as a traceback)
DAMAGED = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError)
# the folder names of a data set split into parts (Kaggle's and many papers' layout: train/<class>/...,
# test/<class>/...): the training split, and the held-out one in order of preference
TRAIN_SPLITS = ("train", "training", "trainset")
TEST_SPLITS = ("test", "testing", "testset", "val", "valid", "validation", "valset", "eval", "evaluation")
WINDOWS_JUNK = ("thumbs.db", "desktop.ini")  # Explorer's thumbnail cache and folder settings
VERSION = re.compile(r"\d+\.\d+\.\d+")  # a TensorFlow Datasets set's version folder: cifar10/3.0.2/
# folders systems put beside a set's own, passed over as hidden ones (hidden()): a Mac zip's, a NAS's JPEG thumbnails
SYSTEM_DIRS = {"__MACOSX", "$RECYCLE.BIN", "System Volume Information", "@eaDir", "lost+found"}


class DataError(ValueError):
    """Bad input data; the message names the file or option."""


class NoImages(DataError):
    """An archive with no image members (open_catalog then tries it as CIFAR's python-version archive)."""


class NoTestSplit(DataError):
    """open_catalog(split="test") on a form of data that has no test split (all but datasets.py's)."""


@dataclass
class Catalog:
    name: str  # short name, used for the default output folder
    names: list[str]  # one display name (path) per image, for messages
    labels: np.ndarray  # int64 [N]
    class_names: list[str]
    read: Callable[[int], bytes] | None  # i -> encoded bytes (None for a set already decoded: `images`)
    # decoded uint8 [N, H, W, C] at the set's native size: the built-in set, and the sets that torchvision and Keras
    # store as pixel arrays (CIFAR, MNIST: datasets.py); decode_all fits them to the model's size and channels
    images: torch.Tensor | None = None
    skipped: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the files the images come from (a folder's, an archive)
    # the image folder --data names, when the images are listed from one: anything written inside it (a run's
    # outputs) would be listed with the data next time
    folder: Path | None = None
    # where the images come from when not from --data as a whole: the held-out set beside it, its test split
    origin: str = ""

    def __len__(self) -> int:
        return len(self.names)

    def read_bytes(self, i: int) -> bytes:
        """The encoded bytes of image i, or a DataError naming it when they cannot be read (a file gone since it
        was listed, a zip member failing its CRC, ...): a bad image, handled under --bad-images like one that
        cannot be decoded."""
        try:
            return self.read(i)
        except Exception as e:  # noqa: BLE001 - whatever the reader raises, the image is named
            raise DataError(f"{self.names[i]}: cannot read ({type(e).__name__}: {e})") from e

    def subset(self, idx: np.ndarray) -> Catalog:
        base = self.read
        return Catalog(
            self.name,
            [self.names[i] for i in idx],
            self.labels[idx],
            self.class_names,
            None if base is None else Picked(base, idx),
            None if self.images is None else self.images[torch.as_tensor(idx)],
            sources=self.sources,
            folder=self.folder,
            origin=self.origin,
        )


def file_safe(name: str) -> str:
    """A name as part of a file name: path separators and other odd characters become '_' ("T-shirt/top")."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def is_image(name: str) -> bool:
    """A file name, or an archive member's path: an image file, not hidden() nor in a hidden() folder (__MACOSX/)."""
    return name.lower().endswith(IMAGE_EXTS) and not hidden(name)


def hidden(name: str) -> bool:  # a name, or a path with a part, that starts with a dot or is one of SYSTEM_DIRS
    return any(p.startswith(".") or p in SYSTEM_DIRS for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def count_other(others: Counter, name: str) -> None:
    """Count a file (a name or a member's path) that is not an image, by extension: unless it is hidden or one of
    Windows' folder files."""
    if not (is_image(name) or hidden(name) or name.replace("\\", "/").rsplit("/", 1)[-1].lower() in WINDOWS_JUNK):
        others[extension(name)] += 1


def extension(name: str) -> str:
    """A file's extension in lower case, with the one before a compression's (.nii.gz: a NIfTI scan; .csv.gz) and
    without a shard's number (TensorFlow Datasets' cifar10-train.tfrecord-00000-of-00001: .tfrecord)."""
    stem, ext = os.path.splitext(name.lower())
    ext = ext.split("-", 1)[0] if "-of-" in ext else ext
    return os.path.splitext(stem)[1] + ext if ext in (".gz", ".bz2", ".xz") else ext


def labels_from(class_of_item: list[str]) -> tuple[np.ndarray, list[str]]:
    classes = sorted(set(class_of_item))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[c] for c in class_of_item], dtype=np.int64), classes


LARGE_FILE_MB = 100  # a data file this large is said before it is read (an archive says its progress itself)
PROGRESS_EVERY_S = 5.0  # progress lines while a large folder is listed, an archive read or a set decoded


class Every:
    """Throttle for progress lines: calling it is true at most once per `seconds` (and always with done=True)."""

    def __init__(self, seconds: float | None = None):  # None: PROGRESS_EVERY_S
        self.seconds, self.start = PROGRESS_EVERY_S if seconds is None else seconds, time.time()
        self.last = self.start

    def __call__(self, done: bool = False) -> bool:
        now = time.time()
        if done or now - self.last > self.seconds:
            self.last = now
            return True
        return False

    def rate(self, count: int) -> float:
        """count per second from the start to the last line's time."""
        return count / max(1e-9, self.last - self.start)


def folder_name(folder: Path) -> str:
    """A data folder's name, which names the default output folder: its own, --data . and .. included; in a download
    cache, its data set's: kagglehub's .../datasets/<owner>/<name>/versions/<n>, the Hugging Face Hub's
    .../datasets--<owner>--<name> and its snapshots/<commit>, TensorFlow Datasets' <name>/3.0.2: <name>."""
    folder = folder.resolve()
    kaggle = folder.parent.name == "versions" and folder.name.isdigit()
    if kaggle or (folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("datasets--")):
        folder = folder.parent.parent
    elif VERSION.fullmatch(folder.name):  # TensorFlow Datasets' version folder: cifar10/3.0.2
        folder = folder.parent
    return folder.name.split("--")[-1] if folder.name.startswith("datasets--") else folder.name or "data"


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# Catalog.read is called in the decoding worker processes. Where they are started by spawn or forkserver (macOS;
# Python 3.14's default on Linux) it travels to them by pickle, which a lambda or a local function cannot: the
# readers are these classes.
class Files:
    """i -> the bytes of the i-th file."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __call__(self, i: int) -> bytes:
        return read_file(self.paths[i])


class Spans:
    """i -> the bytes at offsets[i] (sizes[i] of them) in files[which[i]]: images kept inside a larger file (an LMDB
    database's values, TFRecord records' features); each call opens the file, so worker processes read for
    themselves."""

    def __init__(self, files: list[str], which: np.ndarray, offsets: np.ndarray, sizes: np.ndarray):
        self.files, self.which, self.offsets, self.sizes = files, which, offsets, sizes

    def __call__(self, i: int) -> bytes:
        with open(self.files[self.which[i]], "rb") as f:
            f.seek(int(self.offsets[i]))
            return f.read(int(self.sizes[i]))


class Picked:
    """k -> what `read` gives for the k-th of `picks` (a subset, a part of an archive, the CSV's rows)."""

    def __init__(self, read: Callable[[int], bytes], picks):
        self.read, self.picks = read, picks

    def __call__(self, k: int) -> bytes:
        return self.read(int(self.picks[k]))


def open_catalog(
    data: str,
    csv_opt: str = "",
    image_col: str = "",
    label_col: str = "",
    classes: str = "",
    max_images: int = 0,
    seed: int = 0,
    image_size: int = 0,
    log: Callable[[str], None] = lambda msg: None,
    split: str = "train",
) -> Catalog:
    """Resolve --data (and --csv, --classes, --max-images) to a Catalog, or raise DataError. log: progress
    lines for long work (listing a large folder, reading a compressed archive), and which part of a split set is
    used. split: "test" reads the test split of the data sets that have one (torchvision's and Keras' files,
    datasets.py; an image folder or archive split into train/ and test/ or val/ folders; a training set with a
    held-out one beside it, named like it: held_out_sibling), else raises NoTestSplit; "train" reads the training
    part of such a set; "held" (evaluate's --test-data) the test split of a set given whole (an MNIST folder, CIFAR
    batches, FER2013's CSV, a folder split into parts: cat.origin says so), else the data as given (cifar10/test,
    a folder of class folders; train_32x32.mat itself, not the test file beside it)."""
    from .splits import held_out_sibling, split_word

    args = (csv_opt, image_col, label_col, classes, max_images, seed, image_size, log)
    if split == "held":  # (a name that names a training split is one part, given itself)
        try:
            if split_word(Path(data).name) not in TRAIN_SPLITS:
                cat = _open_catalog(data, *args, "test")
                cat.origin = cat.origin or f"{data} (its test split)"
                return cat
        except NoTestSplit:
            pass
        split = "train"
    try:
        return _open_catalog(data, *args, split)
    except NoTestSplit:
        beside = None if csv_opt or data.startswith("builtin:") else held_out_sibling(Path(data).expanduser())
        if beside is None:
            raise
        log(f"--data {data}: held out: {beside}, beside it")
        cat = _open_catalog(str(beside), *args, "train")
        cat.origin = str(beside)
        return cat


def _open_catalog(data: str, csv_opt: str, image_col: str, label_col: str, classes: str, max_images: int, seed: int,
                  image_size: int, log: Callable[[str], None], split: str) -> Catalog:  # fmt: skip
    no_split = NoTestSplit(f"--data {data}: only CIFAR batches, idx files, .npz sets, SVHN and STL-10 files, image "
                           "folders and archives split into train/ and test/ (or val/) folders, training sets with a "
                           "held-out set beside them (train.tar.gz and test.tar.gz) and the built-in digits have a "
                           "test split")  # fmt: skip
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}: train or test")
    picked = classes  # (--classes: the forms that apply it themselves set it to "")
    if not data.strip():  # `--data "$DIR"` with DIR unset: the working folder would be listed as an image folder
        raise DataError("--data is empty: give an image folder, an archive, a data set's files or builtin:digits")
    from .hints import class_warnings, file_hint, not_found_hint

    if data.startswith("builtin:"):
        from .builtin import builtin_catalog

        cat = builtin_catalog(data, image_size, split, log)
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"--data {data}: no such file or folder{not_found_hint(data)}")
        # the forms' modules import this one (Catalog, DataError), so they are imported here
        from . import caches, datasets  # download caches; torchvision's and Keras' on-disk formats
        from .archives import archive_catalog, split_archives
        from .folders import LISTS, a_note, folder_catalog, split_folder, unwrapped
        from .labelled_parts import Inside, parts_catalog
        from .labels_csv import csv_catalog, find_csv
        from .listed_sets import whole_note
        from .npy_folder import class_files_catalog, npy_files, pair_catalog
        from .splits import split_note

        if path.is_file():
            try:
                csv_path = find_csv(path.parent, csv_opt) if csv_opt else None
            except DataError as e:  # (in the archive itself? ISIC's images and labels zipped together)
                if not str(path).lower().endswith(ARCHIVE_EXTS):
                    raise
                csv_path = Inside(csv_opt, str(e))
            archive = lambda: archive_catalog(path, log, csv_path, image_col, label_col, split)  # noqa: E731
            if (mb := path.stat().st_size >> 20) >= LARGE_FILE_MB and not str(path).lower().endswith(ARCHIVE_EXTS):
                log(f"--data {data}: reading its {mb:,} MB")  # (EMNIST's byclass CSV: half a minute, no other line)
            if (cat := datasets.array_file_catalog(path, split, label_col)) is not None:
                pass  # an .npz, or a CSV of pixel rows (Kaggle's MNIST)
            elif not str(path).lower().endswith(ARCHIVE_EXTS):
                raise DataError(f"--data {data}: a file must be a .zip or a tar (.tar, .tar.gz, .tgz, .tar.bz2, "
                                f".tar.xz) of an image folder, a CIFAR python-version archive, an .npz with x_train "
                                f"and y_train, a CSV of pixel rows and labels, SVHN's .mat, STL-10's _X.bin, USPS' "
                                f".bz2, an idx images file, a Parquet, Arrow or TFRecord file"
                                f"{file_hint(path)}")  # fmt: skip
            elif path.name.lower().startswith("stl10_binary"):  # 2.6 GB to decompress, and no image files in it
                raise DataError(f"--data {data}: STL-10's download is read unpacked: tar xzf {path.name}, then give "
                                "the stl10_binary folder it makes")  # fmt: skip
            elif path.name.lower().startswith(("cifar-10-python", "cifar-100-python")):
                cat = datasets.cifar_archive(path, split) or archive()
            elif split == "test" and csv_path:  # an archive labelled by a CSV has one part (read no further)
                raise no_split
            else:
                try:
                    cat = archive()
                except NoImages:  # a CIFAR archive (a tar) under another name?
                    if path.name.lower().endswith(".zip") or (cat := datasets.cifar_archive(path, split)) is None:
                        raise
        else:
            if msg := caches.cache_error(path):  # (~/.cache/huggingface/hub itself: "class folder ... no images")
                raise DataError(msg)
            top, snap = path, caches.hub_snapshot(path, log) or caches.kaggle_version(path, log) or path
            if (inner := unwrapped(snap)) != snap:  # Kaggle's set/set/<class>/, GTSRB/Final_Training/Images/<class>/
                lists = sorted(p.name for p in snap.iterdir() if p.suffix.lower() in LISTS and not a_note(p.name))
                beside = f" beside {', '.join(lists[:3])} (where that holds labels, give it with --csv)" * bool(lists)
                log(f"--data {data}: reading {inner.relative_to(snap).as_posix()}/ in it, the one folder it "
                    f"holds{beside}")  # fmt: skip
            path = inner
            csv_path = find_csv(path, csv_opt)
            cat = None if csv_path else datasets.array_set_catalog(path, split, log, label_col)
            cat = cat or (None if csv_path else split_archives(path, data, split, log))  # train.tar.gz, test.tar.gz
            if cat is None and not csv_path and (npys := npy_files(path)):  # x_train.npy; Quick, Draw!'s <class>.npy
                cat = pair_catalog(path, split, npys)
                if cat is None and split == "train":  # (--classes picks the files to read: applied)
                    cat, classes = class_files_catalog(path, npys, classes, log), ""
            if cat is None and not csv_path:  # (Roboflow's train/_classes.csv; Hugging Face's metadata.csv)
                if (cat := parts_catalog(path, data, split, image_col, label_col, log)) is not None:
                    cat.folder, cat.name = top, folder_name(top)
            part, about = (path, "") if csv_path or cat is not None else split_folder(path, split)
            if part is None:
                raise NoTestSplit(f"--data {data}: {about}, none of them a test split ({', '.join(TEST_SPLITS)})")
            if cat is None and split == "test" and not about:
                raise no_split
            if cat is None:
                if csv_path:
                    cat = csv_catalog(path, csv_path, image_col, label_col)
                else:  # an image folder lists only the class folders of --classes
                    if about:
                        log(split_note(data, about, part.relative_to(path).parts[0], split))  # (not a folder in it)
                    cat, classes = folder_catalog(part, log, classes), ""
                    if note := whole_note(part):  # (food-101/images: its lists beside)
                        log(note)
                    cat.folder, cat.name = top, folder_name(top)  # the output folder: named after the set, not a part
            if cat is not None and snap != top:  # (named after the data set, not its commit or version)
                cat.name = folder_name(snap)
        if cat is None:  # split == "test" of an archive that is not split into parts
            raise no_split
    if len(cat) == 0:
        raise DataError(f"--data {data}: no images found")
    for msg in () if picked else class_warnings(data, cat.class_names, cat.labels):  # (lists; Cat beside cat)
        warnings.warn(msg, stacklevel=2)
    if classes:
        from .class_picks import picked_classes

        wanted = picked_classes(classes, cat.class_names)
        keep_ids = [cat.class_names.index(c) for c in wanted]
        idx = np.flatnonzero(np.isin(cat.labels, keep_ids))
        remap = {old: new for new, old in enumerate(keep_ids)}
        sub = cat.subset(idx)
        sub.labels = np.array([remap[int(v)] for v in sub.labels], dtype=np.int64)
        sub.class_names = wanted
        cat = sub
    if max_images and len(cat) > max_images:
        rng = np.random.default_rng(seed)
        full = np.bincount(cat.labels, minlength=len(cat.class_names))
        cat = cat.subset(np.sort(rng.choice(len(cat), max_images, replace=False)))
        lost = [f"{c} ({n} in the data)" for c, n, kept in zip(cat.class_names, full, np.bincount(
            cat.labels, minlength=len(full))) if n and not kept]  # fmt: skip
        if lost:
            warnings.warn(f"--max-images {max_images}: the random subset holds no image of {', '.join(lost[:10])}"
                          f"{' ...' if len(lost) > 10 else ''}; the model still has such a class and learns it from no "
                          "real image. Raise --max-images, or leave them out with --classes", stacklevel=2)  # fmt: skip
    return cat
