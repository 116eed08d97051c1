"""Every file form fastacgan reads, damaged on the way (cut short, bytes flipped, a block zeroed), gives a named error
(DataError, or NoTestSplit for a missing split) or reads what is still there: never another exception. A fixed-seed
sample of what fuzzing open_catalog found (BadZipFile, TokenError, zlib.error, LZMAError, csv.Error, IndexError,
TypeError escaped as tracebacks before 2026-12-07)."""

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
