"""Segmentation masks kept with a classification set's images, which are no training images of their class: folders
named mask or masks inside the class folders (COVID-19 Radiography's <class>/masks/ beside <class>/images/), and
files named as an image beside them with _mask added (the breast ultrasound set BUSI's `benign (1)_mask.png`, and
`benign (4)_mask_1.png` for a second lesion). An image folder and an archive pass them over and say so. So are
the class folders of a segmentation set's masks beside its images (Kvasir-SEG's masks/ beside images/): no class.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable

from PIL import Image

MASK_DIRS = ("mask", "masks")
_MASK_FILE = re.compile(r"(.+)_mask(?:_\d+)?", re.IGNORECASE)


def mask_files(names: list[str]) -> set[str]:
    """Of file names (or archive members' paths), those of masks: <stem>_mask[_N].<ext> with <stem>.<ext'> among
    them (in the same folder)."""
    named = [n for n in names if "_mask" in n.lower()]  # (a listing of no masks costs one pass, no stems)
    if not named:
        return set()
    stems = {os.path.splitext(n)[0] for n in names}
    return {n for n in named if (m := _MASK_FILE.fullmatch(os.path.splitext(n)[0])) and m.group(1) in stems}


def archive_masks(names: list[str], dirs: list[tuple[str, ...]], keep, k: int) -> tuple[list[int], list[str]]:
    """An archive's members `keep` (indices into names, whose folders are dirs; the class folders at level k) less
    the masks', and the masks passed over: the folders of masks (as "a/b/masks/") and the mask files."""
    level = {d: next(j for j in range(k + 1, len(d)) if d[j].lower() in MASK_DIRS) for d in {dirs[i] for i in keep}
             if any(p.lower() in MASK_DIRS for p in d[k + 1 :])}  # fmt: skip  # folder -> the level of its masks'
    files = mask_files([names[i] for i in keep if dirs[i] not in level])
    kept = [i for i in keep if dirs[i] not in level and names[i] not in files]
    return kept, sorted({"/".join(d[: j + 1]) + "/" for d, j in level.items()}) + sorted(files)


def masks_note(data, found: list[str]) -> str:
    """The line that says which masks were passed over (found: folders, ending in "/", and files)."""
    folders = sum(f.endswith("/") for f in found)
    files = len(found) - folders
    what = [f"{folders} folder(s) of masks" * bool(folders), f"{files} mask(s) named after an image" * bool(files)]
    shown = ", ".join(f.replace("\\", "/") for f in found[:3]) + (" ..." if len(found) > 3 else "")
    return f"--data {data}: passed over {' and '.join(w for w in what if w)} ({shown}): masks are no training images"


def _mask_named(name: str) -> bool:
    """A folder named as a segmentation set's masks: mask(s) a word of it (masks/, train_masks/, CelebAMask-HQ's
    CelebAMask-HQ-mask-anno/), or ground truth (ISIC 2018 Task 1's ISIC2018_Task1_Training_GroundTruth/) or
    segmentation."""
    words = [w for w in re.split(r"[^a-z]+", name.lower()) if w]
    named = {*MASK_DIRS, "groundtruth", "segmentation"}
    return bool(named & set(words)) or ("ground", "truth") in zip(words, words[1:])


def two_toned(blob: bytes) -> bool:
    """Whether an image is a mask: black and white, or a few label values, with under a tenth of its pixels in the
    greys between (a JPEG's ringing, a resized mask's edges); a photo has far more."""
    try:
        with Image.open(io.BytesIO(blob)) as im:
            hist = im.convert("L").histogram()
    except Exception:  # noqa: BLE001 - an image that does not open is no mask (its class reports it)
        return False
    return sum(hist[24:232]) < 0.1 * max(1, sum(hist))


def mask_classes(names: list[str], samples: Callable[[str], list[bytes]]) -> list[str]:
    """Of the class folders, those that hold a segmentation set's masks beside its images (Kvasir-SEG's masks/
    beside images/): named as masks, beside a folder that is not, and the first images (`samples`: a class's
    name -> a few of its images' bytes) masks; photos in folders so named (a face-mask set's with_mask/ beside
    mask_weared_incorrect/) are classes."""
    named = [n for n in names if _mask_named(n)]
    if len(named) == len(names):
        return []
    return [n for n in named if (blobs := samples(n)) and all(map(two_toned, blobs))]


def mask_class_note(data, name: str) -> str:
    """The line that says a class folder of masks was passed over."""
    return (f"note: --data {data}: {name}/ holds a segmentation set's masks (named so, black and white): no class, "
            "passed over")  # fmt: skip
