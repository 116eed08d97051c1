"""Checkpoints: written atomically (temp file in the same folder, fsync, rename), found by step number,
and checked against the run's model before loading."""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import socket
import tempfile
import time
from pathlib import Path

import torch

CKPT_RE = re.compile(r"^step_(\d{8})\.pt$")
FORMAT_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never half of one. durable: fsync
    before the rename, so that a crash of the machine cannot leave an empty file (off for bulk outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            e.filename = str(path)  # the file being written, not its temporary name (or none: a failed write)
        raise


def save_checkpoint(path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def checkpoint_path(folder, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def list_checkpoints(folder) -> list[Path]:
    """Checkpoints in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_RE.match(p.name))


LOCK_NAME = "train.lock"
# a filesystem that cannot lock (some network and FUSE mounts): the run goes on unlocked, and says so
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class RunInUse(ValueError):
    """Another training run holds the output folder."""


def _in_use(path: Path, holder: str) -> RunInUse:
    return RunInUse(
        f"--out {path.parent} is in use by another training run ({holder or 'its process is not named'}); "
        f"wait for it to end or stop it (Ctrl-C or SIGTERM saves a checkpoint), or choose another --out"
    )


def check_run_dir_free(folder) -> None:
    """Raise RunInUse now if another process holds `folder`'s run lock, before a run spends minutes decoding its
    data only to be refused by lock_run_dir. Writes nothing: the lock file, if there is one, is opened to read, and
    the shared lock tried on it is dropped at once. A run that takes the lock after this look is still caught by
    lock_run_dir; a filesystem that cannot lock is left to it to report."""
    import fcntl

    path = Path(folder) / LOCK_NAME
    try:
        f = open(path)
    except OSError:  # no lock file (no run yet), or none we may read: lock_run_dir decides
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise _in_use(path, f.read().strip()) from None


def lock_run_dir(folder, log=print):
    """Claim a run's output folder for one training run: an exclusive flock on `folder`/train.lock, held until the
    returned file is closed. The kernel drops the lock when its process ends, however it ends (a kill -9, a crash),
    so a lock file left behind never blocks a later run; the file names the holder, for the message. Raises
    RunInUse while another process holds it; returns None (after a note) where the filesystem cannot lock."""
    import fcntl

    path = Path(folder) / LOCK_NAME
    f = open(path, "a+")  # (not "w": that would blank the holder's details before we know we may)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        if e.errno in _NO_LOCKS:
            log(f"note: {path.parent} is on a filesystem that cannot lock files ({e.strerror}): a second training "
                "run into the same --out would not be stopped")  # fmt: skip
            return None
        if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise _in_use(path, holder) from None
    f.seek(0)
    f.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n")
    f.flush()
    return f


def prune_checkpoints(folder, keep: int) -> None:
    for p in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)


# atomic_write_bytes' temporary name for a checkpoint: what a process killed while saving (SIGKILL: the OOM killer,
# a scheduler's hard kill after its grace period) leaves behind, as large as a checkpoint
_PARTIAL_RE = re.compile(r"^\.step_\d{8}\.pt\..+\.tmp$")


def remove_partial_checkpoints(folder) -> tuple[int, int]:
    """Remove the partial checkpoints (temporary files) that saves cut short left in `folder`; call it holding the
    run's lock, so that no save is under way. -> (files removed, their bytes)."""
    folder, n, size = Path(folder), 0, 0
    for p in folder.iterdir() if folder.is_dir() else ():
        if _PARTIAL_RE.match(p.name) and p.is_file():
            size += p.stat().st_size
            p.unlink(missing_ok=True)
            n += 1
    return n, size


def load_checkpoint(path, map_location="cpu") -> dict:
    """A checkpoint's state, read as tensors and plain values only (torch.load's weights_only): a checkpoint from
    elsewhere (a shared run, a download) cannot run code when `sample`, `evaluate` or `--resume` reads it; what
    fastacgan saves is nothing else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip
            raise ValueError(f"{path} is not a fastacgan checkpoint (a run's are RUN/checkpoints/step_*.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # weights_only refused something in it; or truncated, damaged
        refused = re.search(r"GLOBAL ([\w.]+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if refused:
            raise ValueError(f"checkpoint {path} holds {refused[1]}, not tensors and plain values only: it is not "
                             "loaded, since loading it could run code") from e  # fmt: skip
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "spec" not in state:
        raise ValueError(f"{path} is not a fastacgan checkpoint (format {FORMAT_VERSION})")
    return state


def check_compatible(path, saved_spec: dict, spec: dict, saved_classes: list, classes: list) -> None:
    """Raise ValueError naming every model field where the checkpoint and this run differ."""
    diffs = [
        f"{k}: checkpoint {saved_spec.get(k)!r}, this run {v!r}" for k, v in spec.items() if saved_spec.get(k) != v
    ]
    if list(saved_classes) != list(classes):
        diffs.append(f"classes: checkpoint {list(saved_classes)[:10]}, this run {list(classes)[:10]}")
    if diffs:
        raise ValueError(
            f"checkpoint {path} was written by an incompatible config:\n  "
            + "\n  ".join(diffs)
            + "\nuse the same --preset/--image-size/--nz/--conditioning/--width/--classes/data, or another --out"
        )
