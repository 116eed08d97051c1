"""A run's folder (--out) and what a resume finds in it: the checks on its state before any data is read, the
run's paths as found from another folder, the fingerprint of its data, and its metric logs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import checkpoint as ckpt
from . import tb_events
from .data import TRAIN_SPLITS
from .plots import read_records
from .splits import split_word


def check_out_state(out: Path, resume: bool, auto: bool = False, data: str = "") -> list[Path]:
    """--out's checkpoints (oldest first), after checking them against --resume (with --auto-resume, any are fine)
    and that no live run holds the folder: refusals that come before the data is listed and decoded (minutes, for a
    large set). data: this run's --data, where `out` is the default one named after it."""
    check_not_foreign(out)
    existing = ckpt.list_checkpoints(out / "checkpoints")
    if existing and not resume and not auto:
        try:  # which run it is (config.json: a small file, written as the run started)
            theirs = json.loads((out / "config.json").read_text())["config"]["data"]
        except (OSError, ValueError, KeyError, TypeError):
            theirs = ""
        hint = ""
        if data and theirs and not theirs.startswith("builtin:") and _where(theirs) != _where(data):
            hint = (f"; the default --out is named after the data's folder, and {data} is not that run's data: give "
                    f"--out to keep the runs apart")  # fmt: skip
        of = f" of a run on --data {theirs}" if theirs else ""
        raise ValueError(f"--out {out} already holds checkpoints ({existing[-1].name}){of}; pass --resume to "
                         f"continue that run, or choose another --out{hint}")  # fmt: skip
    if resume and not existing:
        try:  # the runs beside it that have one (a --resume without --out looks in runs/<the default data's name>)
            runs = sorted(p for p in out.parent.iterdir() if p != out and ckpt.list_checkpoints(p / "checkpoints"))
        except OSError:
            runs = []
        names = ", ".join(map(str, runs[:5])) + (" ..." if len(runs) > 5 else "")
        beside = f"; runs beside it that have one: {names} (give --out)" if runs else ""
        raise ValueError(f"--resume: no checkpoint in {out / 'checkpoints'} to resume from{beside}")
    ckpt.check_run_dir_free(out)
    return existing


# the files a run writes at its folder's top (overwritten, truncated or appended to)
RUN_FILES = ("config.json", "metrics.jsonl", "image_metrics.jsonl", "train.log", "curves.png", "real.png",
             "samples.gif", tb_events.EVENTS)  # fmt: skip


def check_not_foreign(out: Path) -> None:
    """Refuse an --out that holds files of a run's names that are not a run's: `--out .` in a project whose
    config.json the run would have overwritten (the ImageNet/CIFAR ACGAN's --outf is '.' by default). A run's
    folder is told by its lock file or its config.json; other files beside a run's are left alone."""
    if not out.is_dir() or (out / ckpt.LOCK_NAME).exists():
        return
    try:
        ours = {"config", "spec", "classes"} <= set(json.loads((out / "config.json").read_text()))
    except (OSError, ValueError, TypeError):
        ours = False
    taken = [] if ours else [name for name in RUN_FILES if (out / name).exists()]
    if taken:
        raise ValueError(f"--out {out} holds {', '.join(taken)}, not a fastacgan run's: a run writes files of "
                         f"{'that name' if len(taken) == 1 else 'those names'} there; give a new or empty folder "
                         f"(--out {out / 'run'})")  # fmt: skip


def _where(path: str) -> Path:
    return Path(path).expanduser().resolve()


RUNS_DATA = "(the run's --data, from its checkpoint: give --data where its images are now)"


def run_path(value: str, state: dict) -> str:
    """A path from a checkpoint's config, as found from here: a relative one that is not here but is in the folder
    the run started in (its "cwd", absent before 2026-12-06) is given from there."""
    where = state.get("cwd")
    if not where or value.startswith("builtin:") or Path(value).expanduser().is_absolute() or Path(value).exists():
        return value
    return str(Path(where) / value) if (Path(where) / value).exists() else value


def data_fingerprint(cat, images: int) -> dict:
    """What a checkpoint records of its data, to tell a resume that the data changed: the number of images the
    loader serves and a digest of the images' file names and labels in order (file names only, so that a data
    folder moved elsewhere is the same data)."""
    h = hashlib.sha256()
    for name, label in zip(cat.names, cat.labels.tolist()):
        h.update(f"{name.replace(os.sep, '/').rsplit('/', 1)[-1]}\t{label}\n".encode("utf-8", "surrogateescape"))
    return {"images": int(images), "listing": h.hexdigest()[:16]}


def append_record(path: Path, rec: dict) -> None:
    """One record, a JSON line, at the end of a run's metrics.jsonl or image_metrics.jsonl."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
    except OSError as e:
        e.filename = e.filename or str(path)  # a failed write (a full disk) names no file
        raise


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric records written after the checkpoint a run resumes from (for a new run, step 0: all, those of an
    earlier run stopped before its first checkpoint), so the log has no repeats, nor a line cut short by a run killed
    mid-write or by a full disk."""
    if path.exists():
        keep = [json.dumps(r) for r in read_records(path) if r["step"] <= step]
        ckpt.atomic_write_bytes(path, "".join(k + "\n" for k in keep).encode())


def truncate_records(out: Path, step: int) -> None:
    """truncate_metrics of metrics.jsonl and image_metrics.jsonl, and the same of the TensorBoard events."""
    for name in ("metrics.jsonl", "image_metrics.jsonl"):
        truncate_metrics(out / name, step)
    tb_events.truncate(out / tb_events.EVENTS, step)


def trained_on(state: dict, data: str, csv: str) -> bool:
    """Whether --data and --csv name the files a run's checkpoint trained on (evaluate's --test-data given them): its
    --data itself, or the training part of it (cifar10/train of a run on cifar10/, split into train/ and test/)."""
    where = lambda path: Path(path).expanduser().resolve() if path else None  # noqa: E731
    mine, run = where(data), where(run_path(state["config"]["data"], state))
    part = mine is not None and mine.parent == run and split_word(mine.name) in TRAIN_SPLITS
    return (mine == run or part) and where(csv) == where(run_path(state["config"]["csv"], state))
