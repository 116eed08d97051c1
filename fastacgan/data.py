"""Data: find the images and labels (image folder, tar archive, CSV, built-in), decode them, and serve batches.

A `Catalog` says what the data set is (names, labels, classes, how to read each file's bytes); nothing is
decoded until `decode_all` (the whole set into one uint8 [N, H, W, C] tensor, used whenever it fits in
--cache-gb) or the streaming loader (decoding per batch in worker processes). Both loaders serve the same
batches: epoch e visits the images in the order randperm(N, seed, e), drop-last, so a resumed run sees
exactly the data an uninterrupted one would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TAR_EXTS = (".tar", ".tar.gz", ".tgz")
ARCHIVE_EXTS = (*TAR_EXTS, ".zip")
LABEL_COLUMNS = ("label", "target", "class", "diagnosis", "dx")


class DataError(ValueError):
    """Bad input data; the message names the file or option."""


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

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: np.ndarray) -> Catalog:
        base = self.read
        return Catalog(
            self.name,
            [self.names[i] for i in idx],
            self.labels[idx],
            self.class_names,
            None if base is None else (lambda i, _m=idx, _r=base: _r(int(_m[i]))),
            None if self.images is None else self.images[torch.as_tensor(idx)],
            sources=self.sources,
        )


def file_safe(name: str) -> str:
    """A name as part of a file name: path separators and other odd characters become '_' ("T-shirt/top")."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS) and not Path(name).name.startswith(".")


def _labels_from(class_of_item: list[str]) -> tuple[np.ndarray, list[str]]:
    classes = sorted(set(class_of_item))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[c] for c in class_of_item], dtype=np.int64), classes


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


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def folder_catalog(root: Path, log: Callable[[str], None] = lambda msg: None) -> Catalog:
    """root/<class>/**/<image>; classes in sorted order."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = [p.name for p in root.iterdir() if _is_image(p.name)]
        hint = f" (it holds {len(loose)} loose images)" if loose else ""
        raise DataError(f"--data {root}: no class folders found{hint}; expected {root}/<class>/<image>")
    paths, classes, due = [], [], Every()
    for k, d in enumerate(class_dirs):
        files = sorted(str(p) for p in d.rglob("*") if p.is_file() and _is_image(p.name))
        if not files:
            raise DataError(f"class folder {d} holds no images ({', '.join(IMAGE_EXTS)})")
        paths += files
        classes += [d.name] * len(files)
        if due():
            log(f"listing {root}: {len(paths)} images in {k + 1} of {len(class_dirs)} class folders")
    labels, class_names = _labels_from(classes)
    return Catalog(root.name, paths, labels, class_names, lambda i: _read_file(paths[i]), sources=paths)


class _TarReader:
    """Bytes of tar members: from memory (`blobs`, what a compressed archive gives), or read by offset on demand
    (`offsets` [(offset, size)], a plain .tar: works in worker processes)."""

    def __init__(self, path: Path, offsets: list[tuple[int, int]] | None, blobs: list[bytes] | None = None):
        self.path, self.offsets, self.blobs = str(path), offsets, blobs

    def __call__(self, i: int) -> bytes:
        if self.blobs is not None:
            return self.blobs[i]
        off, size = self.offsets[i]
        with open(self.path, "rb") as f:
            f.seek(off)
            return f.read(size)


def memory_budget() -> int:
    """Bytes a compressed archive's images may take in memory: half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        return 1 << 62


def _read_compressed(path: Path, log: Callable[[str], None]) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image member of a compressed archive, in one pass over the stream (a compressed stream
    cannot seek, so the bytes are kept in memory), refusing before they outgrow memory_budget()."""
    budget, total, out, due = memory_budget(), 0, [], Every()
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            if not (m.isfile() and _is_image(m.name)):
                continue
            total += m.size
            if total > budget:
                raise DataError(
                    f"--data {path}: a compressed archive is held in memory (a compressed stream cannot seek), and its "
                    f"images pass {budget / 2**30:.1f} GiB, half of this machine's memory; extract it and give the "
                    f"folder, or re-pack it as an uncompressed .tar (read from disk as needed)"
                )
            out.append((m.name, tf.extractfile(m).read()))
            if due():
                log(f"reading {path.name}: {len(out)} images, {total / 2**20:,.0f} MiB so far")
    return out


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


def _archive_listing(path: Path, log: Callable[[str], None]) -> tuple[list[str], Callable[[int], bytes]]:
    """(the image members' names, sorted; i -> the bytes of member i) of a .zip or a tar archive."""
    try:
        if path.name.lower().endswith(".zip"):  # a zip's directory is at its end: members are read on demand
            with zipfile.ZipFile(path) as zf:
                names = sorted(i.filename for i in zf.infolist() if not i.is_dir() and _is_image(i.filename)
                               and not i.filename.startswith("__MACOSX/"))  # fmt: skip
            return names, _ZipReader(path, names)
        if _compressed(path):
            found = sorted(_read_compressed(path, log))
            return [n for n, _ in found], _TarReader(path, None, [b for _, b in found])
        with tarfile.open(path, "r:") as tf:  # the headers only: tarfile seeks over the members' data
            members = sorted((m for m in tf.getmembers() if m.isfile() and _is_image(m.name)), key=lambda m: m.name)
        return [m.name for m in members], _TarReader(path, [(m.offset_data, m.size) for m in members])
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"--data {path}: cannot read the archive ({e})") from e


def archive_catalog(path: Path, log: Callable[[str], None] = lambda msg: None, csv_path: Path | None = None,
                    image_col: str = "", label_col: str = "") -> Catalog:  # fmt: skip
    """A .zip or tar of an image folder: members .../<class>/<image>, the class is the image's parent folder; or,
    with csv_path, members anywhere named by the CSV's image column, labelled by it (see csv_catalog)."""
    names, reader = _archive_listing(path, log)
    if not names:
        raise DataError(f"--data {path}: the archive holds no images ({', '.join(IMAGE_EXTS)})")
    set_name = Path(path).name
    for ext in (*TAR_EXTS, ".zip"):
        set_name = set_name.removesuffix(ext)
    if csv_path is not None:
        index = _name_index((n, i) for i, n in enumerate(names))
        hits, labels, class_names = _csv_labels(csv_path, image_col, label_col, index, f"{path}")
        return Catalog(set_name, [f"{path}:{names[i]}" for i in hits], labels, class_names,
                       lambda k, _r=reader, _h=hits: _r(_h[k]), sources=[str(path)])  # fmt: skip
    flat = [n for n in names if len(Path(n).parts) < 2]
    if flat:
        raise DataError(f"--data {path}: {flat[0]} is not inside a class folder; expected <class>/<image> members, "
                        f"or give the labels with --csv")  # fmt: skip
    labels, class_names = _labels_from([Path(n).parts[-2] for n in names])
    return Catalog(set_name, [f"{path}:{n}" for n in names], labels, class_names, reader, sources=[str(path)])


def _find_csv(root: Path, csv_opt: str) -> Path | None:
    """--csv, relative to the working folder or to root (a folder, or the folder of an archive); without it, the
    one *.csv in a folder that holds Images/ (the ISIC layout)."""
    if csv_opt:
        p = Path(csv_opt).expanduser()
        p = p if p.is_absolute() or p.exists() else root / p
        if not p.is_file():
            raise DataError(f"--csv {csv_opt}: file not found (looked at {p})")
        return p
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) == 1 and (root / "Images").is_dir():
        return csvs[0]
    return None


def _name_index(items) -> dict:
    """(relative name, value) pairs -> a lookup by relative name, file name and stem (the first of each wins)."""
    index: dict = {}
    for rel, value in items:
        for key in (rel, Path(rel).name, Path(rel).stem):
            index.setdefault(key, value)
    return index


def _one_hot_columns(cols: list[str], rows: list[dict], csv_path: Path) -> list[str] | None:
    """The columns (in order) if they hold only 0s and 1s, one 1 a row (ISIC 2019's ground truth: image, MEL, NV,
    BCC, ...); None if they are not all 0/1; an error naming the row if a row marks no class or several."""
    if len(cols) < 2:
        return None
    marked = []
    for r in rows:
        try:
            values = [float(r[c] or "nan") for c in cols]
        except ValueError:
            return None
        if any(v not in (0.0, 1.0) for v in values):
            return None
        marked.append(sum(values))
    bad = next((k for k, m in enumerate(marked) if m != 1), None)
    if bad is not None:
        raise DataError(f"--csv {csv_path}: columns {', '.join(cols)} look one-hot, but row {bad + 2} marks "
                        f"{int(marked[bad])} classes; name the label column with --csv-label-col")  # fmt: skip
    return cols


def _csv_labels(csv_path: Path, image_col: str, label_col: str, index: dict, where: str):
    """(the index values of the CSV's images in row order, labels int64, class names) for a labels CSV: an image
    column (--csv-image-col, default the first) and a label column (--csv-label-col, default 'label', 'target',
    'class', 'diagnosis' or 'dx'), or else one-hot columns (a 1 in the column of the image's class), or else the
    last column. Numeric labels give classes in numeric order, names in sorted order, one-hot columns in theirs."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        rows = list(reader)
    if not rows or len(cols) < 2:
        raise DataError(f"--csv {csv_path}: needs a header and at least one row with two columns")
    lower = {c.lower(): c for c in cols}
    image_col = image_col or cols[0]
    one_hot = None
    if not label_col and not any(c in lower for c in LABEL_COLUMNS):
        one_hot = _one_hot_columns([c for c in cols if c != image_col], rows, csv_path)
    label_col = label_col or next((lower[c] for c in LABEL_COLUMNS if c in lower), cols[-1])
    for opt, col in (("--csv-image-col", image_col), ("--csv-label-col", label_col)):
        if col not in cols:
            raise DataError(f"{opt} {col!r}: no such column in {csv_path} (columns: {', '.join(cols)})")
    hits, missing, raw_labels = [], [], []
    for r in rows:
        key = (r[image_col] or "").strip()
        hit = index.get(key, index.get(Path(key).name, index.get(Path(key).stem)))
        if hit is None:
            missing.append(key)
            continue
        hits.append(hit)
        raw_labels.append(next(c for c in one_hot if float(r[c]) == 1.0) if one_hot else (r[label_col] or "").strip())
    if missing:
        raise DataError(
            f"--csv {csv_path}: {len(missing)} of {len(rows)} names in column {image_col!r} match no image in "
            f"{where}, e.g. {', '.join(repr(m) for m in missing[:5])}"
        )
    if one_hot:
        class_names = [c for c in one_hot if c in set(raw_labels)]  # the classes that occur, in column order
        order = {c: k for k, c in enumerate(class_names)}
        labels = np.array([order[c] for c in raw_labels], dtype=np.int64)
    elif all(lab.lstrip("-").isdigit() for lab in raw_labels):  # numeric labels: classes in numeric order
        values = sorted({int(v) for v in raw_labels})
        class_names = [str(v) for v in values]
        order = {v: k for k, v in enumerate(values)}
        labels = np.array([order[int(v)] for v in raw_labels], dtype=np.int64)
    else:
        labels, class_names = _labels_from(raw_labels)
    return hits, labels, class_names


def csv_catalog(root: Path, csv_path: Path, image_col: str, label_col: str) -> Catalog:
    """Images in root/Images (or root) named by a CSV column, labels from another column or one-hot columns (ISIC
    layouts)."""
    image_dir = root / "Images" if (root / "Images").is_dir() else root
    files = sorted(p for p in image_dir.rglob("*") if p.is_file() and _is_image(p.name))
    index = _name_index((str(p.relative_to(image_dir)), str(p)) for p in files)
    paths, labels, class_names = _csv_labels(csv_path, image_col, label_col, index, str(image_dir))
    return Catalog(root.name, paths, labels, class_names, lambda i: _read_file(paths[i]), sources=paths)


def builtin_catalog(spec: str, image_size: int) -> Catalog:
    from .builtin import CLASS_NAMES, render_digits

    kind, _, count = spec.partition(":")[2].partition(":")
    if kind != "digits":
        raise DataError(f"--data {spec}: unknown built-in data set (available: builtin:digits[:COUNT])")
    images, labels = render_digits(int(count) if count else 10_000, image_size or 28)
    names = [f"builtin:digits/{i}" for i in range(len(labels))]
    return Catalog("digits", names, labels.numpy(), list(CLASS_NAMES), None, images)


def _wanted_classes(classes: str, names: list[str]) -> list[str]:
    """--classes: comma-separated class names, or START:END ranges of positions in the sorted class list (END
    excluded: the ImageNet ACGAN's classes_idx=(10, 20) is 10:20); a class named like a range is taken by name."""
    wanted = []
    for c in (c.strip() for c in classes.split(",")):
        a, colon, b = c.partition(":")
        if colon and c not in names and a.isdigit() and b.isdigit():
            if not int(a) < int(b) <= len(names):
                raise DataError(f"--classes {c}: a range START:END needs START < END <= {len(names)} (the classes)")
            wanted += names[int(a) : int(b)]
        elif c:
            wanted.append(c)
    if len(set(wanted)) != len(wanted):
        raise DataError(f"--classes {classes}: a class is named twice")
    return wanted


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
    lines for long work (listing a large folder, reading a compressed archive). split: "test" reads the test split
    of the data sets that have one (torchvision's and Keras' files, datasets.py), else raises NoTestSplit."""
    no_split = NoTestSplit(f"--data {data}: only CIFAR batches, idx files and .npz sets have a test split")
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}: train or test")
    if data.startswith("builtin:"):
        if split == "test":
            raise no_split
        cat = builtin_catalog(data, image_size)
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"--data {data}: no such file or folder")
        from . import datasets  # torchvision's and Keras' on-disk formats

        if path.is_file():
            csv_path = _find_csv(path.parent, csv_opt) if csv_opt else None
            archive = lambda: archive_catalog(path, log, csv_path, image_col, label_col)  # noqa: E731
            if path.name.lower().endswith(".npz"):
                cat = datasets.npz_catalog(path, split)
            elif not str(path).lower().endswith(ARCHIVE_EXTS):
                raise DataError(f"--data {data}: a file must be a .zip, .tar, .tar.gz or .tgz of an image folder, "
                                f"a CIFAR python-version archive, or an .npz with x_train and y_train")  # fmt: skip
            elif path.name.lower().startswith(("cifar-10-python", "cifar-100-python")):
                cat = datasets.cifar_archive(path, split) or archive()
            elif split == "test":  # an archive of an image folder (read no further)
                raise no_split
            else:
                try:
                    cat = archive()
                except DataError as e:  # no image members: a CIFAR archive (a tar) under another name?
                    if "holds no images" not in str(e) or path.name.lower().endswith(".zip"):
                        raise
                    if (cat := datasets.cifar_archive(path, split)) is None:
                        raise
        else:
            csv_path = _find_csv(path, csv_opt)
            cat = None if csv_path else datasets.array_set_catalog(path, split)
            if cat is None and split == "test":
                raise no_split
            if cat is None:
                cat = csv_catalog(path, csv_path, image_col, label_col) if csv_path else folder_catalog(path, log)
        if split == "test" and cat.images is None:  # a tar that was named like CIFAR's but holds images
            raise no_split
    if len(cat) == 0:
        raise DataError(f"--data {data}: no images found")
    if classes:
        wanted = _wanted_classes(classes, cat.class_names)
        unknown = [c for c in wanted if c not in cat.class_names]
        if unknown:
            raise DataError(f"--classes: {', '.join(unknown)} not in the data (classes: {', '.join(cat.class_names)})")
        keep_ids = [cat.class_names.index(c) for c in wanted]
        idx = np.flatnonzero(np.isin(cat.labels, keep_ids))
        remap = {old: new for new, old in enumerate(keep_ids)}
        sub = cat.subset(idx)
        sub.labels = np.array([remap[int(v)] for v in sub.labels], dtype=np.int64)
        sub.class_names = wanted
        cat = sub
    if max_images and len(cat) > max_images:
        rng = np.random.default_rng(seed)
        cat = cat.subset(np.sort(rng.choice(len(cat), max_images, replace=False)))
    return cat


# ---------------------------------------------------------------------------------------------- decoding


DRAFT_GAP = 3  # a JPEG is decoded at 1/2, 1/4 or 1/8 scale while it stays >= 3x the resize target


def decode_image(data: bytes, name: str, size: int, channels: int) -> np.ndarray:
    """Encoded bytes -> uint8 [size, size, channels]: short side resized to `size` (bicubic), centre crop.
    A JPEG much larger than that is decoded at reduced scale by libjpeg (DCT scaling, `Image.draft`) while it
    stays at least DRAFT_GAP times the resize target: full-size photos (ISIC's are 1-24 megapixels) then decode
    2-3x faster, and the result stays within a grey level or two of a full decode and resize.
    Raises DataError naming the file if it is unreadable or truncated."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            if im.format == "JPEG" and min(w, h) >= 2 * DRAFT_GAP * size:
                im.draft(mode, (nw * DRAFT_GAP, nh * DRAFT_GAP))
            im.load()  # decodes now, so truncated files fail here and not later
            im = im.convert(mode)
    except Exception as e:
        raise DataError(f"{name}: cannot decode image ({e})") from e
    return _fit(im, size, (nw, nh))


def _fit(im: Image.Image, size: int, resized: tuple[int, int] | None = None) -> np.ndarray:
    """A PIL image -> uint8 [size, size, C]: short side resized to `size` (bicubic), centre crop. resized: the
    (width, height) before the crop, when the caller computed it from the image's full size (a JPEG drafted)."""
    if im.size != (size, size):
        if resized is None:
            s = size / min(im.size)
            resized = max(size, round(im.size[0] * s)), max(size, round(im.size[1] * s))
        nw, nh = resized
        im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    arr = np.array(im, dtype=np.uint8)  # a writable copy
    return arr[:, :, None] if arr.ndim == 2 else arr


def fit_images(images: torch.Tensor, size: int, channels: int, log=print) -> torch.Tensor:
    """Decoded uint8 [N, H, W, C] -> [N, size, size, channels], resized and cropped as decode_image does, and
    converted between greyscale and RGB as PIL converts; the same tensor when it already fits."""
    n, h, w, c = images.shape
    if (h, w, c) == (size, size, channels):
        return images
    mode = "L" if channels == 1 else "RGB"
    out = torch.empty(n, size, size, channels, dtype=torch.uint8)
    due = Every()
    for i in range(n):
        a = images[i].numpy()
        out[i] = torch.from_numpy(_fit(Image.fromarray(a[:, :, 0] if c == 1 else a).convert(mode), size))
        if due(i + 1 == n):
            log(f"resizing images {h}x{w}x{c} -> {size}x{size}x{channels}: {i + 1}/{n}")
    return out


def probe(cat: Catalog, n: int = 32) -> tuple[int, int]:
    """(native size of the first readable image, channels: 1 if every probed image is greyscale else 3)."""
    if cat.images is not None:
        return cat.images.shape[1], cat.images.shape[3]
    first, grey = 0, True
    for i in np.linspace(0, len(cat) - 1, min(n, len(cat))).astype(int):
        try:
            with Image.open(io.BytesIO(cat.read(int(i)))) as im:
                first = first or min(im.size)
                grey &= im.mode in ("1", "L", "LA", "I", "I;16", "F")
        except Exception:
            continue
    if not first:
        raise DataError(f"none of the {min(n, len(cat))} images probed in {cat.names[0]} ... could be opened")
    return first, 1 if grey else 3


class DecodeSet(torch.utils.data.Dataset):
    def __init__(self, cat: Catalog, size: int, channels: int):
        self.cat, self.size, self.channels = cat, size, channels

    def __len__(self):
        return len(self.cat)

    def __getitem__(self, i):
        try:
            return i, decode_image(self.cat.read(i), self.cat.names[i], self.size, self.channels), ""
        except DataError as e:
            return i, None, str(e)


def collate_decoded(items):
    """In the worker: (positions in the batch and indices of the good images, one uint8 tensor of them, the
    errors, the batch size). One tensor per batch: a tensor per image would cost a shared-memory segment each."""
    good = [(k, i, a) for k, (i, a, _) in enumerate(items) if a is not None]
    pos = torch.tensor([k for k, _, _ in good], dtype=torch.long)
    idx = torch.tensor([i for _, i, _ in good], dtype=torch.long)
    x = torch.from_numpy(np.stack([a for _, _, a in good])) if good else None
    return pos, idx, x, [e for _, a, e in items if a is None], len(items)


def default_workers(workers: int) -> int:
    return min(8, os.cpu_count() or 1) if workers < 0 else workers


def report_bad(errors: list[str], policy: str) -> None:
    if errors and policy == "error":
        raise DataError(errors[0] + "; pass --bad-images skip to skip such files")
    for msg in errors[:10]:
        warnings.warn(f"skipped {msg}", stacklevel=3)


def decode_all(
    cat: Catalog, size: int, channels: int, workers: int, policy: str = "skip", log=print
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every image once -> (uint8 [N', size, size, C], int64 [N']), skipping or raising on bad files."""
    if cat.images is not None:
        return fit_images(cat.images, size, channels, log), torch.as_tensor(cat.labels)
    out = torch.empty(len(cat), size, size, channels, dtype=torch.uint8)
    ok = torch.zeros(len(cat), dtype=torch.bool)
    errors: list[str] = []
    loader = torch.utils.data.DataLoader(
        DecodeSet(cat, size, channels), batch_size=256, num_workers=workers, collate_fn=collate_decoded
    )
    done, due = 0, Every(2.0)
    for _, idx, x, errs, n in loader:
        errors += errs
        if errs and policy == "error":
            report_bad(errors, policy)
        if x is not None:
            out[idx], ok[idx] = x, True
        done += n
        if due(done == len(cat)):
            log(f"decoding images: {done}/{len(cat)} ({due.rate(done):.0f}/s)")
    report_bad(errors, policy)
    cat.skipped = errors
    if errors:
        log(f"skipped {len(errors)} unreadable image(s) of {len(cat)} (first: {errors[0]})")
    if not bool(ok.any()):
        raise DataError(f"--data: none of the {len(cat)} images could be decoded")
    return out[ok], torch.as_tensor(cat.labels)[ok]


# ------------------------------------------------------------------------------------------ decoded cache

CACHE_FORMAT = 1


def decoded_cache(cache_dir: str, cat: Catalog, size: int, channels: int, decoder: str) -> tuple[Path, str]:
    """(the cache file of this decoded set in cache_dir, the key its contents must carry). One file per data set
    name, resolution, channels and list of images; the key adds every source file's size and modification time,
    the decoder and the decoding rules, so a changed file or rule means a new decode (which replaces the file)."""
    h = hashlib.sha256()
    for name, label in zip(cat.names, cat.labels.tolist()):
        h.update(f"{name}\t{label}\n".encode())
    listing = h.hexdigest()
    for src in cat.sources:
        try:
            st = os.stat(src)
            h.update(f"{src}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{src}\tmissing\n".encode())
    h.update(f"{CACHE_FORMAT} {size} {channels} {decoder} draft-gap {DRAFT_GAP}".encode())
    safe = file_safe(cat.name)[:60]
    return Path(cache_dir).expanduser() / f"{safe}-{size}px-{channels}c-{listing[:12]}.pt", h.hexdigest()


def load_decoded(path: Path, key: str, policy: str, log) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached (images, labels) if `path` holds this key's decoded set, else None (with a line saying why, when
    there is a file). The files skipped when it was made are reported again under `policy`."""
    if not path.exists():
        return None
    t0 = time.time()
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if blob.get("key") != key:
            log(f"decoded-set cache {path}: made from other files or with other decoding; decoding anew")
            return None
        images, labels, skipped = blob["images"], blob["labels"], list(blob["skipped"])
    except Exception as e:  # noqa: BLE001 - an unreadable cache is not an error: it is rebuilt
        log(f"decoded-set cache {path}: unreadable ({type(e).__name__}: {e}); decoding anew")
        return None
    report_bad(skipped, policy)
    note = f" ({len(skipped)} unreadable skipped when it was made)" if skipped else ""
    log(f"loaded the decoded set from {path}: {len(labels)} images, {images.nbytes / 2**20:,.0f} MiB, "
        f"{time.time() - t0:.1f} s{note}")  # fmt: skip
    return images, labels


def save_decoded(path: Path, key: str, images: torch.Tensor, labels: torch.Tensor, skipped: list[str], log) -> None:
    """Write the decoded set atomically (a temporary file, then a rename); a failure to write is reported, not
    raised: the run has its data either way."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "images": images.cpu(), "labels": labels.cpu(), "skipped": list(skipped)}, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        log(f"could not save the decoded set to {path} ({e}); the run goes on without the cache")
        return
    log(f"saved the decoded set to {path} ({images.nbytes / 2**20:,.0f} MiB): later runs with --decode-cache load it")
