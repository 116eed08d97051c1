"""Every file form fastacgan reads, damaged on the way (cut short, bytes flipped, a block zeroed), gives a named error
(DataError, or NoTestSplit for a missing split) or reads what is still there: never another exception. A fixed-seed
sample of what fuzzing open_catalog found (BadZipFile, TokenError, zlib.error, LZMAError, csv.Error, IndexError,
TypeError escaped as tracebacks before 2026-12-07)."""

import io
import pickle
import random
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder
from PIL import Image
from test_binary_sets import write_stl, write_usps
from test_datasets import write_idx_set, write_pixel_csv

from fastacgan.data import DataError, NoTestSplit, open_catalog

DATA = Path(__file__).parent / "data"


def _forms(root: Path) -> list[Path]:
    """A small copy of each form, one folder (or file) a form: the --data to give."""
    rng = np.random.default_rng(0)
    write_idx_set(root / "mnist", n=20)
    write_stl(root / "stl10_binary")
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir()
    for name in ("data_batch_1", "test_batch"):
        with open(cifar / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8), b"labels": list(range(10))}, f)
    with open(cifar / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    (root / "npz").mkdir()
    np.savez(root / "npz" / "set.npz", x_train=rng.integers(0, 255, (10, 8, 8), dtype=np.uint8), y_train=np.arange(10))
    (root / "npy").mkdir()
    for k in ("cat", "dog"):
        np.save(root / "npy" / f"{k}.npy", rng.integers(0, 255, (5, 784), dtype=np.uint8))
    (root / "pix").mkdir()
    write_pixel_csv(root / "pix" / "train.csv", rng.integers(0, 255, (6, 64)), np.arange(6) % 3)
    (root / "usps").mkdir()
    write_usps(root / "usps" / "usps.bz2", rng.uniform(-1, 1, (6, 256)), np.arange(6) % 3)
    make_folder(root / "src" / "train", n_per_class=2, size=(8, 8))
    make_folder(root / "src" / "test", n_per_class=1, size=(8, 8))
    (root / "archives").mkdir()
    shutil.make_archive(str(root / "archives" / "set"), "zip", root / "src")
    for mode, ext in (("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")):
        with tarfile.open(root / "archives" / f"set{ext}", mode) as tf:
            tf.add(root / "src", "set")
    (root / "isic" / "Images").mkdir(parents=True)
    for n in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(root / "isic" / "Images" / f"{n}.png")
    (root / "isic" / "labels.csv").write_text("image,label\na,cat\nb,dog\nc,cat\n")
    shutil.copytree(DATA / "svhn", root / "svhn")
    shutil.copytree(DATA / "stanford_cars" / "torchvision", root / "stanford_cars")
    for part, n in (("cars_train", 4), ("cars_test", 3)):
        (root / "stanford_cars" / part).mkdir()
        for i in range(1, n + 1):
            Image.new("RGB", (8, 8)).save(root / "stanford_cars" / part / f"{i:05d}.jpg")
    shutil.copytree(DATA / "tfrecord" / "kaggle", root / "tfrecord")
    shutil.copytree(DATA / "lsun" / "bedroom_val_lmdb", root / "lsun" / "bedroom_val_lmdb")
    shutil.copytree(DATA / "hf" / "cifar10", root / "hf")
    shutil.rmtree(root / "src")
    return [p for p in sorted(root.iterdir()) if p.is_dir()]


def _damage(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    how = rng.choice(["cut", "flip", "zero"])
    if how == "cut":
        data = data[: rng.randint(0, len(data))]
    elif how == "flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    else:
        at = rng.randrange(len(data))
        data[at : at + 64] = bytes(len(data[at : at + 64]))
    path.write_bytes(bytes(data))
    return how


def test_damaged_files_of_every_form_give_named_errors(tmp_path):
    pristine = tmp_path / "pristine"
    forms = _forms(pristine)
    rng = random.Random(0)
    tried = 0
    for trial in range(120):
        form = forms[trial % len(forms)]
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(form, work / form.name)
        victim = rng.choice(sorted(p for p in (work / form.name).rglob("*") if p.is_file() and p.stat().st_size))
        how = _damage(victim, rng)
        for data in (work / form.name, *([victim] if victim.suffix in (".npz", ".csv", ".zip", ".xz", ".gz") else [])):
            for split in ("train", "test"):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        cat = open_catalog(str(data), split=split)
                        for i in range(min(len(cat), 3)):
                            if cat.read is not None:
                                cat.read_bytes(i)
                except (DataError, NoTestSplit):
                    pass
                except Exception as e:  # noqa: BLE001 - the assertion: no other exception
                    pytest.fail(f"{victim.relative_to(work)} ({how}), --data {data.name}, {split}: "
                                f"{type(e).__name__}: {e}")  # fmt: skip
                tried += 1
    assert tried >= 240 and len(forms) == 14


NAMES = [
    "train",
    "test",
    "val",
    "train.X1",
    "train.X2",
    "val.X",
    "images",
    "Images",
    "masks",
    "cat",
    "dog",
    "data",
    "HAM10000_images_part_1",
    "ham10000_images_part_1",
    "seg_pred",
    "n01440764",
    "a",
    "__MACOSX",
    "Meta",
    "1",
]
LISTS = [
    "train.csv",
    "test.csv",
    "labels.csv",
    "metadata.csv",
    "_classes.csv",
    "val_annotations.txt",
    "readme.txt",
    "Labels.json",
    "sample_submission.csv",
    "metadata.jsonl",
]


def _layout(root: Path, rng: random.Random, png: bytes, depth: int = 0) -> list[str]:
    """A random folder of images, folders named as classes, parts and set files, and lists naming its images."""
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for _ in range(rng.randint(0, 3)):
        (root / (name := f"img{rng.randint(0, 4)}.png")).write_bytes(png)
        images.append(name)
    for sub in rng.sample(NAMES, rng.randint(0, 4)) if depth < 3 else []:
        images += [f"{sub}/{i}" for i in _layout(root / sub, rng, png, depth + 1)]
    for name in rng.sample(LISTS, rng.randint(0, 2)):
        rows = [f"{i}{rng.choice([',', chr(9)])}{rng.choice(['cat', 'dog', '1', ''])}" for i in images]
        (root / name).write_text(rng.choice(["image,label\n", "", "file_name,label\n"]) + "\n".join(rows) + "\n")
    return images


def test_generated_layouts_give_catalogs_or_named_errors(tmp_path):
    """Folders, zips and tars of random layouts (parts, several training parts, parts of one set, lists beside and
    inside): a catalog or a named error for the training, test and held-out splits, never another exception (an
    ImageNet-100-like layout failed with an IndexError, an archive CSV name with a TypeError)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, "PNG")
    rng, png = random.Random(1), buf.getvalue()
    known = [  # layouts that failed: several training parts (IndexError), a CSV name that is a path and a name
        ["train.X1/cat/img0.png", "train.X2/dog/img0.png", "val.X/cat/img1.png"],
        ["img1.png", "a/img1.png", "train.csv:image,label\nimg1,cat\n"],
    ]
    tried = 0
    for trial in range(60):
        base = tmp_path / f"t{trial}"
        if trial < len(known):
            for entry in known[trial]:
                name, _, text = entry.partition(":")
                (base / "d" / name).parent.mkdir(parents=True, exist_ok=True)
                (base / "d" / name).write_bytes(text.encode() if text else png)
        else:
            _layout(base / "d", rng, png)
        targets = [base / "d"]
        if trial % 3 == 0 or trial < len(known):
            shutil.make_archive(str(base / "d"), "zip", base / "d")
            targets.append(base / "d.zip")
        if trial % 5 == 0:
            with tarfile.open(base / "d.tar.gz", "w:gz") as tf:
                tf.add(base / "d", "d")
            targets.append(base / "d.tar.gz")
        for data in targets:
            for split in ("train", "test", "held"):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        csv = "train.csv" if trial % 7 == 1 or (base / "d" / "train.csv").is_file() else ""
                        open_catalog(str(data), split=split, csv_opt=csv)
                except (DataError, NoTestSplit):
                    pass
                except Exception as e:  # noqa: BLE001 - the assertion: no other exception
                    pytest.fail(f"layout {trial}, --data {data.name}, {split}: {type(e).__name__}: {e}")
                tried += 1
        shutil.rmtree(base)
    assert tried >= 200
