"""The reference implementations' data sets as torchvision and Keras keep them on disk, read without either.

- CIFAR-10 and CIFAR-100 "python version": the folder `cifar-10-batches-py` / `cifar-100-python`, the folder
  holding it (torchvision's `root`), or the downloaded `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`;
- MNIST, Fashion-MNIST, KMNIST as idx files (`train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, plain or
  .gz): the folder holding them, torchvision's `root/MNIST/raw` layout from `root` or `root/MNIST`, or Keras'
  `~/.keras/datasets/fashion-mnist`;
- an .npz with `x_train` and `y_train` arrays (Keras' `mnist.npz`);
- SVHN's .mat files, STL-10's binary files, Flowers-102, Oxford-IIIT Pet, EMNIST's idx files and idx files given
  one by one (binary_sets.py).

Training uses the training split (as the references do); `split="test"` gives the test split (CIFAR's
`test_batch` / `test`, the `t10k-*` idx files, `x_test` / `y_test`), on which `fastacgan.evaluate` scores D.
The pixels are already decoded, so the result is a `Catalog` with `images` (uint8 [N, H, W, C] at the native
size); `decode.decode_all` resizes them when the model's resolution differs. The CIFAR batches are Python
pickles: they are read with an unpickler that builds numpy arrays, lists, numbers and strings and refuses
anything else, so a crafted file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import binary_sets, downsampled_imagenet, hf_sets, lmdb_sets, npy_folder, tfrecords, usps
from .data import DAMAGED, Catalog, DataError, labels_from
from .pixel_csv import pixel_csv_catalog

CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"
IDX_IMAGES, IDX_LABELS = "{}-images-idx3-ubyte", "{}-labels-idx1-ubyte"  # .format("train" or "t10k")
IDX_PREFIX = {"train": "train", "test": "t10k"}
CIFAR_FILES = ("train", "test", "meta", "batches.meta", "test_batch")  # and data_batch_1..5

# torchvision's class names for the idx data sets, by the folder name (lower case, letters and digits only)
IDX_CLASSES = {
    **dict.fromkeys(("mnist", "qmnist"), [str(d) for d in range(10)]),
    "fashionmnist": "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot".split(","),
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}

# ------------------------------------------------------------------------------------------------ CIFAR


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR (and Downsampled ImageNet) batches hold: numpy arrays and scalars (a label list of
    numpy integers) and their dtypes, containers, numbers, strings."""

    _reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuild function, without naming its module
    _scalar = np.int64(0).__reduce__()[0]  # numpy's scalar from a dtype and its bytes
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the name numpy 1 writes
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2
        ("numpy.core.multiarray", "scalar"): _scalar, ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    }  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if (module, name) == ("_codecs", "encode"):  # how a protocol-2 pickle of Python 3 stores bytes
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a data batch")


def _unpickle(read: Callable[[], bytes], where: str) -> dict:
    try:
        blob = read()
    except OSError as e:
        raise DataError(f"{where}: cannot read ({e})") from e
    try:
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any failure is a bad file, named
        raise DataError(f"{where}: not a readable data batch, as CIFAR's ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(obj).__name__}, expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _field(batch: dict, key: str, where: str):
    if key not in batch:
        raise DataError(f"{where}: no {key!r} entry (it has {', '.join(map(str, batch))}); not a CIFAR batch")
    return batch[key]


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _is_cifar_file(name: str) -> bool:
    return name.startswith("data_batch_") or name in CIFAR_FILES


def _cifar(files: dict[str, Callable[[], bytes]], where: str, split: str) -> Catalog:
    """files: member name (no folder) -> reader of the bytes of a CIFAR-10 (data_batch_1..5, test_batch,
    batches.meta) or CIFAR-100 (train, test, meta) python-version folder; only the split's members and the meta
    file are read; where: the folder or archive, for messages."""
    hundred = "train" in files and "data_batch_1" not in files
    name = "cifar100" if hundred else "cifar10"
    if split == "test":
        train = ["test"] if hundred else ["test_batch"]
    else:
        train = ["train"] if hundred else sorted(f for f in files if f.startswith("data_batch_"))
    missing = [f for f in train if f not in files]
    if missing:
        raise binary_sets.split_missing(split, f"--data {where}: no {missing[0]} (the {split} split of {name})")
    meta_name, label_key, names_key = (
        ("meta", "fine_labels", "fine_label_names") if hundred else ("batches.meta", "labels", "label_names")
    )
    images, labels, names = [], [], []
    for f in train:
        at = f"{where}/{f}"
        batch = _unpickle(files[f], at)
        data = np.asarray(_field(batch, "data", at))
        lab = np.asarray(_field(batch, label_key, at), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
            raise DataError(f"{at}: expected uint8 data [N, 3072] and N labels, found {data.dtype} "
                            f"{list(data.shape)} and {len(lab)} labels")  # fmt: skip
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
        names += [f"{at}[{i}]" for i in range(len(data))]
    classes = None
    if meta_name in files:
        at = f"{where}/{meta_name}"
        classes = _names(_field(_unpickle(files[meta_name], at), names_key, at))
    labels_np = np.concatenate(labels)
    classes = classes or [str(k) for k in range(int(labels_np.max()) + 1)]
    if labels_np.min() < 0 or labels_np.max() >= len(classes):
        raise DataError(f"{where}: labels run from {labels_np.min()} to {labels_np.max()}, "
                        f"but there are {len(classes)} class names")  # fmt: skip
    sources = [f"{where}/{f}" for f in train]
    return Catalog(name, names, labels_np, classes, None, torch.from_numpy(np.concatenate(images)), sources=sources)


def _cifar_folder(d: Path, split: str) -> Catalog:
    files = {p.name: p.read_bytes for p in d.iterdir() if p.is_file() and _is_cifar_file(p.name)}
    return _cifar(files, str(d), split)


def _cifar_members(names: list[str]) -> bool:
    base = {n.rsplit("/", 1)[-1] for n in names}
    return "data_batch_1" in base or {"train", "meta"} <= base


def cifar_archive(path: Path, split: str = "train") -> Catalog | None:
    """The CIFAR set in a (downloaded) tar archive, or None if the archive holds no CIFAR batches."""
    files = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and _is_cifar_file(base):
                    blob = tf.extractfile(m).read()
                    files[base] = lambda blob=blob: blob
    except DAMAGED as e:
        raise DataError(f"--data {path}: cannot read the archive ({e})") from e
    if not _cifar_members(list(files)):
        return None
    return _cifar(files, str(path), split)


# ------------------------------------------------------------------------------------------------ idx files


def _idx_file(d: Path, stem: str, dots: bool = True) -> Path | None:
    """d/stem, plain or .gz, or (dots) named as Kaggle's copy names it (train-images.idx3-ubyte)."""
    names = (stem, f"{stem}.gz", stem.replace("-idx", ".idx"))
    return next((d / n for n in names[: 3 if dots else 2] if (d / n).is_file()), None)


IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}  # the idx format's


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format: a 4-byte magic 0x0000, the type (0x08: unsigned bytes, as MNIST's; 0x0C: int32,
    QMNIST's labels), ndim; ndim big-endian sizes; the data, big-endian)."""
    raw = path.read_bytes()
    try:
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except DAMAGED as e:
        raise DataError(f"{path}: cannot decompress ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an idx file (its first bytes are {raw[:4].hex()})")
    dtype, ndim = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    need = head + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise DataError(f"{path}: {len(raw)} bytes, but its header {list(dims)} needs {need}: truncated or damaged")
    return np.frombuffer(raw, dtype, offset=head).reshape(dims)


def _class_list(set_name: str, labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(labels as 0..K-1, class names): torchvision's names for a known set, else the label values in order."""
    known = IDX_CLASSES.get("".join(ch for ch in set_name.lower() if ch.isalnum()))
    if known and labels.min() >= 0 and labels.max() < len(known):
        return labels.astype(np.int64), known
    values = np.unique(labels)
    return np.searchsorted(values, labels).astype(np.int64), [str(v) for v in values.tolist()]


def _grey_or_rgb(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        fix = []  # how to save it so (the two most common: a float array in [0, 1], PyTorch's channels-first)
        if x.dtype.kind == "f":
            fix.append("(x * 255).round().astype('uint8') for values in [0, 1]")
        if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            fix.append("x.transpose(0, 2, 3, 1) for channels first")
        raise DataError(f"{where}: expected uint8 images [N, H, W] or [N, H, W, 1 or 3], found {x.dtype} "
                        f"{list(x.shape)}{' (save it as ' + ', and '.join(fix) + ')' if fix else ''}")  # fmt: skip
    return x[..., None] if x.ndim == 3 else x


def _label_vector(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """The labels of n images: class numbers [n] or [n, 1] (int64; whole floats such as 3.0 too), class names
    (strings), or one-hot rows [n, K] (Keras' to_categorical: the column of the 1). Else a DataError that says
    what was found: fractional labels would otherwise be truncated to class numbers."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        if not (np.isin(y, (0, 1)).all() and (y.sum(1) == 1).all()):
            raise DataError(f"{where}: labels {list(y.shape)} are not one-hot rows (a single 1 a row); give class "
                            f"numbers [{n}] or one-hot rows")  # fmt: skip
        return y.argmax(1).astype(np.int64)
    y = y.reshape(-1)
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images")
    if y.dtype.kind in "US":
        return y.astype(str)  # bytes (numpy's "S") as text
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DataError(f"{where}: labels must be class numbers; label {int(np.argmax(bad))} is {y[bad][0]}")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{where}: labels must be class numbers or names, found {y.dtype}")
    return y.astype(np.int64)


def arrays_catalog(images: np.ndarray, labels: np.ndarray, where: str, set_name: str, sources: list[str],
                   labels_where: str = "", class_names: list[str] | None = None) -> Catalog:  # fmt: skip
    """A Catalog of decoded images (uint8 [N, H, W] or [N, H, W, 1 or 3]) and their labels (_label_vector's
    forms); class_names: the names of the label values 0..K-1, where the set has them."""
    images = _grey_or_rgb(images, where)
    if not len(images):
        raise DataError(f"{where}: no images")
    y = _label_vector(labels, len(images), labels_where or where)
    if class_names is not None and y.dtype.kind in "iu" and 0 <= y.min() and y.max() < len(class_names):
        labels, classes = y.astype(np.int64), list(class_names)
    else:
        labels, classes = labels_from(y.tolist()) if y.dtype.kind in "US" else _class_list(set_name, y)
    names = [f"{where}[{i}]" for i in range(len(images))]
    images_t = torch.from_numpy(np.require(images, requirements=["C", "W"]))  # a copy if read-only
    return Catalog(set_name, names, labels, classes, None, images_t, sources=sources)


def _idx_folder(d: Path, split: str) -> Catalog:
    images, labels = IDX_IMAGES.format(IDX_PREFIX[split]), IDX_LABELS.format(IDX_PREFIX[split])
    img, lab = _idx_file(d, images), _idx_file(d, labels)
    if img is None:
        raise binary_sets.split_missing(split, f"--data {d}: no {images}[.gz] (the {split} split)")
    if lab is None:
        raise DataError(f"--data {d}: {img.name} has no {labels}[.gz] beside it")
    return binary_sets.idx_catalog(img, lab)


def npz_catalog(path: Path, split: str = "train") -> Catalog:
    """x_train / y_train (x_test / y_test) of an .npz (Keras' mnist.npz), or train_images / train_labels (test_...)
    as MedMNIST ships its sets (pathmnist.npz, bloodmnist_64.npz, ...)."""
    forms = ((f"x_{split}", f"y_{split}"), (f"{split}_images", f"{split}_labels"))
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            xk, yk = next((f for f in forms if set(f) <= set(keys)), (None, None))
            x, y = (z[xk], z[yk]) if xk else (None, None)
    except Exception as e:  # noqa: BLE001 - numpy raises what it meets in a damaged file (BadZipFile, TokenError ...)
        raise DataError(f"--data {path}: cannot read the .npz: damaged? ({type(e).__name__}: {e})") from e
    if x is None:
        raise binary_sets.split_missing(split, f"--data {path}: an .npz needs {' and '.join(forms[0])} arrays, or "
                                               f"{' and '.join(forms[1])} (it has {', '.join(keys)})")  # fmt: skip
    return arrays_catalog(x, y, f"{path}:{xk}", path.stem, [str(path)], f"{path}:{yk}")


def array_file_catalog(path: Path, split: str = "train", label_col: str = "") -> Catalog | None:
    """An .npz (npz_catalog; Kuzushiji's pairs: npy_folder), a CSV of pixel rows (pixel_csv_catalog), SVHN's .mat,
    STL-10's _X.bin or an idx images file (binary_sets), USPS' usps.bz2, SEMEION's semeion.data (usps.py), a Hugging
    Face Parquet or Arrow file (hf_sets.py), a TFRecord file (tfrecords.py), LSUN's data.mdb (lmdb_sets.py); None for
    other files."""
    for read in (binary_sets.binary_file_catalog, npy_folder.kuzushiji_file_catalog, usps.usps_file_catalog,
                 usps.semeion_file_catalog):  # fmt: skip
        if (cat := read(path, split)) is not None:
            return cat
    for read in (hf_sets.hf_file_catalog, tfrecords.tfrecord_file_catalog):  # (--csv-label-col: its column)
        if (cat := read(path, split, label_col)) is not None:
            return cat
    if path.name.lower().endswith(".npz"):
        return npz_catalog(path, split)
    if path.name == "data.mdb":  # (LSUN's bedroom_train_lmdb/data.mdb: the database of its folder)
        return lmdb_sets.lsun_in(path.parent, split)
    return pixel_csv_catalog(path, split) if path.name.lower().endswith(".csv") else None


# ------------------------------------------------------------------------------------------------ finding them


def _has_idx(d: Path, dots: bool = True) -> bool:
    return any(_idx_file(d, IDX_IMAGES.format(p), dots) for p in IDX_PREFIX.values())


def _found_in(d: Path, sub: bool = False) -> tuple[str, Path] | None:
    """('cifar' | 'idx' | a binary_sets kind, folder) if folder d itself is one of these data sets. sub: d is a
    sub-folder of --data (one of ImageNet's 1,000 class folders, say), probed with fewer stat calls: the other sets
    only where its name is theirs (stl10_binary, flowers-102, ...), no Kaggle names of idx files."""
    if (d / "data_batch_1").is_file() or ((d / "train").is_file() and (d / "meta").is_file()):
        return "cifar", d
    if _has_idx(d, dots=not sub):
        return "idx", d
    raw = d / "raw"  # torchvision's MNIST/raw, EMNIST/raw
    if raw.is_dir():
        if _has_idx(raw):
            return "idx", raw
        if binary_sets.emnist_splits(raw):
            return "emnist", raw
    kind = binary_sets.set_in(d, d.name if sub else None)
    return (kind, d) if kind else None


def array_set_catalog(d: Path, split: str = "train", log: Callable[[str], None] = lambda msg: None,
                      label_col: str = "") -> Catalog | None:  # fmt: skip
    """The torchvision/Keras data set in folder d (or in one of its sub-folders: torchvision's root), or None; log:
    progress lines where reading it takes a while (the Downsampled ImageNet); label_col: a Hugging Face set's."""
    hit = _found_in(d)
    if hit is None or hit[0] in usps.ROOT_FILES:  # (torchvision keeps them in its root, beside other sets' folders)
        subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = [h for h in [hit, *(_found_in(p, sub=True) for p in subs)] if h is not None]
        if len(found) > 1 and {k for k, _ in found} == {"imagenet_ds"}:  # its train and val folders, its parts
            cat = downsampled_imagenet.parts_catalog(d, [f for _, f in found], split, log)
            if cat is not None:
                return cat
        if len(found) > 1:
            sets = ", ".join(str(f / usps.ROOT_FILES[k] if k in usps.ROOT_FILES else f) for k, f in found)
            raise DataError(f"--data {d} holds several data sets ({sets}); give the one to train on")
        hit = found[0] if found else None
    if hit is None:
        return None
    kind, folder = hit
    if kind == "cifar":
        return _cifar_folder(folder, split)
    if kind in ("imagenet_ds", "lsun"):  # (their readers say how far they are: log)
        return binary_sets.FOLDER_SETS[kind][1](folder, split, log)
    if kind in ("hf", "tfrecord"):  # (--csv-label-col: their label column)
        return binary_sets.FOLDER_SETS[kind][1](folder, split, label_col, log)
    if kind != "idx":
        return binary_sets.FOLDER_SETS[kind][1](folder, split)
    return _idx_folder(folder, split)
