"""Download caches, whose folders hold a data set's files a level or two down: the Hugging Face Hub's
(~/.cache/huggingface/hub/datasets--<owner>--<name>/snapshots/<commit>/, where huggingface-cli download and
load_dataset keep them) and kagglehub's (~/.cache/kagglehub/datasets/<owner>/<name>/versions/<n>/, beside
<n>.complete, where kagglehub.dataset_download keeps them). --data a set's folder there is read from the files of
its version (said); the run is named after the set (data.folder_name). A cache of several sets given itself (the Hub's,
TensorFlow Datasets' ~/tensorflow_datasets) names them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .data import VERSION


def hub_snapshot(d: Path, log: Callable[[str], None]) -> Path | None:
    """Where folder d is a data set's repository in the Hub's cache (~/.cache/huggingface/hub/datasets--uoft-cs--
    cifar10: blobs/, refs/main, snapshots/<commit>/, where huggingface-cli download and load_dataset keep them),
    its files: the snapshot refs/main names, else the newest; said. Whatever form they are in (Parquet files,
    WebDataset shards, image folders), they are read there."""
    snaps = d / "snapshots"
    if not (snaps.is_dir() and (d / "blobs").is_dir()):
        return None
    main = d / "refs" / "main"
    named = snaps / main.read_text().strip() if main.is_file() else None
    snap = named if named and named.is_dir() else max(snaps.iterdir(), key=lambda p: p.stat().st_mtime, default=None)
    if snap is not None:
        log(f"--data {d}: a repository in the Hugging Face Hub's cache: reading snapshots/{snap.name}/, "
            f"{'the one refs/main names' if snap == named else 'its newest'}")  # fmt: skip
    return snap


def cache_error(d: Path) -> str | None:
    """Where folder d is a cache of several data sets itself, the error that names them and what to give: the Hub's
    (~/.cache/huggingface/hub: datasets--<owner>--<name>/, models--..., each with snapshots/) and TensorFlow
    Datasets' data folder (~/tensorflow_datasets: cifar10/3.0.2/, mnist/3.0.1/, downloads/); else None."""
    repos = sorted(p.name for p in d.iterdir() if p.name.startswith(("datasets--", "models--", "spaces--"))
                   and (p / "snapshots").is_dir())  # fmt: skip
    sets = [r for r in repos if r.startswith("datasets--")]
    what = "the Hugging Face Hub's cache"
    if not repos and (d.name == "tensorflow_datasets" or (d / "downloads").is_dir()):
        what, sets = "TensorFlow Datasets' data folder", [p.name for p in sorted(d.iterdir()) if p.is_dir() and any(
            VERSION.fullmatch(v.name) for v in p.iterdir())]  # fmt: skip
        if not sets:
            return None
    elif not repos:
        return None
    if not sets:
        return f"--data {d} is {what}, and holds no data set ({', '.join(repos[:3])})"
    shown = ", ".join(sets[:5]) + (f" ... ({len(sets)} in all)" if len(sets) > 5 else "")
    return f"--data {d} is {what}: give one of its data sets, --data {d / sets[0]} ({shown})"


def kaggle_version(d: Path, log: Callable[[str], None]) -> Path | None:
    """Where folder d is a data set's folder in kagglehub's cache (versions/<n>/ beside <n>.complete, which kagglehub
    writes once a version is downloaded), or its versions/ folder: the newest complete version's files, said; else
    None. (It was one class, versions, or a class a version.)"""
    if (d / "versions").is_dir():
        versions = d / "versions"
        if any(p.is_dir() and p.name != "versions" and not p.name.startswith(".") for p in d.iterdir()):
            return None  # (a folder of class folders, one of them named versions)
    elif d.name == "versions":
        versions = d
    else:
        return None
    found = sorted((int(p.name), p) for p in versions.iterdir() if p.name.isdigit() and p.is_dir())
    done = [(n, p) for n, p in found if (versions.parent / f"{n}.complete").is_file()]
    if not done:  # (none downloaded whole: a folder of numbered class folders named versions, or a download cut)
        return None
    n, newest = done[-1]
    more = f" (of {len(found)} there)" if len(found) > 1 else ""
    log(f"--data {d}: a data set in kagglehub's cache: reading versions/{n}/, its newest downloaded{more}")
    return newest
