"""WebDataset shards: tars of samples, each sample the files of one key (`n01440764_10026.jpg`,
`n01440764_10026.cls`, `n01440764_10026.json`), as the webdataset library writes them (and timm's
imagenet-1k-wds, LAION-style sets, `tarp`). The label is the sample's `.cls` (a class number as text), else its
`.json`'s "label"; class numbers are the classes in numeric order, words in sorted order. `--data shard.tar`, or a
folder of shards (`imagenet1k-train-0000.tar` ...: those whose names name the split; the others held out). A plain
.tar is read from disk as needed; a compressed one is held in memory (archives.memory_budget)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from .data import DAMAGED, TEST_SPLITS, TRAIN_SPLITS, Catalog, DataError, folder_name, is_image, labels_from
from .splits import files_of, split_word

LABELS = (".cls", ".json")  # a sample's label: its class number; a JSON of it ("label")


def _key(name: str) -> tuple[str, str]:
    """(a member's sample key, its extension): webdataset's split at the first dot of the file's name
    (a/n01440764_10026.jpg -> a/n01440764_10026, .jpg; x.seg.png -> x, .seg.png)."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return f"{head}/{stem}" if head else stem, (dot + ext).lower()


def is_shard(path: Path, look: int = 12) -> bool:
    """Whether a tar holds samples of an image and a label under one key, among its first `look` members."""
    try:
        with tarfile.open(path, "r:*") as tf:
            seen: dict[str, set] = {}
            for _, m in zip(range(look), tf):
                key, ext = _key(m.name)
                seen.setdefault(key, set()).add(ext)
    except DAMAGED:
        return False
    # a .cls; a .json only where the images are in no folders (a class folder's JSON sidecars are annotations)
    return any((".cls" in exts or (".json" in exts and "/" not in key)) and any(is_image("x" + e) for e in exts)
               for key, exts in seen.items())  # fmt: skip


class _ShardReader:
    """The bytes of sample i: from memory (a compressed shard's), else read from its shard at its offset."""

    def __init__(self, where: list[tuple[str, int, int]], blobs: dict[int, bytes]):
        self.where, self.blobs = where, blobs

    def __call__(self, i: int) -> bytes:
        if i in self.blobs:
            return self.blobs[i]
        path, offset, size = self.where[i]
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)


def _label(ext: str, raw: bytes, where: str):
    text = raw.decode("utf-8", errors="replace").strip()
    if ext == ".cls":
        return int(text) if text.lstrip("-").isdigit() else text
    try:
        got = json.loads(text)
    except ValueError as e:
        raise DataError(f"{where}: not JSON ({e})") from e
    if not isinstance(got, dict) or "label" not in got:
        raise DataError(f'{where}: no "label" in it (its keys: {", ".join(got) if isinstance(got, dict) else "-"})')
    return got["label"]


def _shard(path: Path, names: list[str], where: list, blobs: dict[int, bytes], room: list[int]) -> dict:
    """Add one shard's images to names and where (blobs: a compressed shard's bytes, within room[0] bytes); its
    samples' labels by key."""
    from .archives import _compressed

    squeezed, images, found = _compressed(path), {}, {}
    with tarfile.open(path, "r:*") as tf:
        for m in (m for m in tf if m.isfile()):
            key, ext = _key(m.name)
            if is_image("x" + ext) and key not in images:
                images[key] = len(names)
                names.append(f"{path}:{m.name}")
                where.append((str(path), m.offset_data, m.size))
                if squeezed:  # (a compressed stream cannot seek: its images are kept)
                    room[0] -= m.size
                    if room[0] < 0:
                        raise DataError(f"--data {path}: compressed shards are held in memory, and these pass half "
                                        "the memory this process may take: give plain .tar shards")  # fmt: skip
                    blobs[len(names) - 1] = tf.extractfile(m).read()
            elif ext in LABELS and (key not in found or ext == ".cls"):
                found[key] = _label(ext, tf.extractfile(m).read(), f"{path}:{m.name}")
    return {key: found.get(key) for key in images}


def _read(shards: list[Path], log: Callable[[str], None]) -> tuple[list[str], list, _ShardReader]:
    from .archives import memory_budget

    names, labels, where, blobs, room = [], [], [], {}, [memory_budget()]
    for k, path in enumerate(shards):
        try:
            got = _shard(path, names, where, blobs, room)
        except DAMAGED as e:
            raise DataError(f"--data {path}: cannot read the shard ({e})") from e
        if missing := [key for key, v in got.items() if v is None]:
            raise DataError(f"--data {path}: {len(missing)} of its {len(got)} images have no label (.cls, .json) "
                            f"beside them, e.g. {missing[0]}")  # fmt: skip
        labels += list(got.values())
        if len(shards) > 1:
            log(f"reading {path.parent}: {k + 1} of {len(shards)} shards, {len(names):,} images")
    return names, labels, _ShardReader(where, blobs)


def shards_catalog(shards: list[Path], split: str, where: Path, log: Callable[[str], None]) -> Catalog:
    """The samples of the shards of `split` (train: those whose names name a training split, or name none; test:
    those that name a test split), labelled by their .cls or .json."""
    of = lambda s: w if (w := split_word(s.name)) in (*TRAIN_SPLITS, *TEST_SPLITS) else ""  # noqa: E731
    return shard_catalog(files_of(sorted(shards), split, where, of, "shards"), where, log)


def shard_catalog(shards: list[Path], where: Path, log: Callable[[str], None]) -> Catalog:
    """The samples of shards, as given, labelled by their .cls or .json."""
    names, raw, reader = _read(shards, log)
    labels, classes = labels_from(raw if all(isinstance(v, int) for v in raw) else [str(v) for v in raw])
    name = folder_name(where) if where.is_dir() else where.name.split("-")[0].split(".")[0]
    return Catalog(name, names, labels, [str(c) for c in classes], reader, sources=[str(s) for s in shards])


def folder_shards(entries: list[Path]) -> list[Path]:
    """The WebDataset shards among a folder's entries (its .tar files, where the first is one), else []."""
    tars = sorted(p for p in entries if p.name.lower().endswith((".tar", ".tar.gz", ".tgz")) and p.is_file())
    return tars if tars and is_shard(tars[0]) else []
