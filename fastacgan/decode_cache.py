"""The decoded-set cache (--decode-cache): the resident loader's decoded uint8 set, saved by the first run on the
data and loaded by later runs and resumes instead of decoding again; one file per data set, resolution, channels
and image list, with a key that a changed file or decoding rule no longer matches.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from pathlib import Path

import torch

from .data import Catalog, file_safe
from .decode import DRAFT_GAP, report_bad

CACHE_FORMAT = 3  # 2: EXIF orientation applied, 16-bit greyscale scaled, DALI's crop position (2026-12-02);
# 3: float greyscale read as [0, 1] (2026-12-05)


def decoded_cache(cache_dir: str, cat: Catalog, size: int, channels: int, decoder: str) -> tuple[Path, str]:
    """(the cache file of this decoded set in cache_dir, the key its contents must carry). One file per data set
    name, resolution, channels and list of images; the key adds every source file's size and modification time,
    the decoder and the decoding rules, so a changed file or rule means a new decode (which replaces the file)."""
    h = hashlib.sha256()
    for name, label in zip(cat.names, cat.labels.tolist()):
        h.update(f"{name}\t{label}\n".encode("utf-8", "surrogateescape"))
    listing = h.hexdigest()
    for src in cat.sources:
        try:
            st = os.stat(src)
            h.update(f"{src}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{src}\tmissing\n".encode("utf-8", "surrogateescape"))
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


STALE_PARTIAL_S = 3600  # a cache file's temporary file unchanged this long: its writer was killed (a writer writes)


def remove_stale_partials(path: Path) -> None:
    """Remove the temporary files of `path` that writers killed mid-write (SIGKILL: the OOM killer) left, each as
    large as the decoded set; not those of a run writing it now (another process, maybe on another machine sharing
    the folder), whose file changes as it writes."""
    for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if time.time() - p.stat().st_mtime > STALE_PARTIAL_S:
                p.unlink()
        except OSError:  # gone already, or not ours to remove
            pass


def save_decoded(path: Path, key: str, images: torch.Tensor, labels: torch.Tensor, skipped: list[str], log) -> None:
    """Write the decoded set atomically (a temporary file, then a rename); a failure to write is reported, not
    raised: the run has its data either way."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
        # into a file object, whose writes fail with the OSError (a full disk); torch.save's zip writer then fails
        # too, with a RuntimeError ("unexpected pos 576 vs 534"), which stopped the run after the whole decode
        with open(tmp, "wb") as f:
            torch.save({"key": key, "images": images.cpu(), "labels": labels.cpu(), "skipped": list(skipped)}, f)
        os.replace(tmp, path)
    except BaseException as e:  # (a Ctrl-C while gigabytes are written, too: it left them behind)
        tmp.unlink(missing_ok=True)
        if not isinstance(e, (OSError, RuntimeError)):
            raise
        why = e.__context__ if isinstance(e, RuntimeError) and isinstance(e.__context__, OSError) else e
        log(f"could not save the decoded set to {path} ({why}); the run goes on without the cache")
        return
    log(f"saved the decoded set to {path} ({images.nbytes / 2**20:,.0f} MiB): later runs with --decode-cache load it")
