"""Labels from a CSV (the ISIC layouts): an image column and a label column, or one-hot columns (ISIC 2019's
ground truth), matched to the images of a folder or an archive by relative name, file name or stem.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import Catalog, DataError, Files, folder_name, is_image, labels_from
from .folders import walk

# a label column by its name, in any case (NIH ChestX-ray14's Data_Entry_2017.csv: "Finding Labels"; PAD-UFES-20's
# diagnostic; GTSRB's ClassId; Kaggle's ImageNet's boxes, PredictionString: n01751748 111 68 289 228, its class first)
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "diagnosis", "dx", "finding labels", "diagnostic",
                 "classid", "class_id", "predictionstring")  # fmt: skip


def find_csv(root: Path, csv_opt: str) -> Path | None:
    """--csv, relative to the working folder, to root (a folder, or the folder of an archive) or to root's parent (a
    labels file beside the folder of the images); without it, the one *.csv in a folder that holds Images/ (the ISIC
    layout)."""
    if csv_opt:
        p = Path(csv_opt).expanduser()
        looked = [p] if p.is_absolute() or p.exists() else [root / p, root.parent / p]
        p = next((q for q in looked if q.exists()), looked[0])
        if not p.is_file():
            raise DataError(f"--csv {csv_opt}: file not found (looked at {' and '.join(map(str, looked))})")
        return p
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) == 1 and (root / "Images").is_dir():
        return csvs[0]
    return None


class Ambiguous(list):
    """name_index's entry for a name or stem that several images share (train/1.png and test/1.png: Kaggle's
    CIFAR-10, whose trainLabels.csv names them "1"): their relative names."""


def name_index(items) -> dict:
    """(relative name, value) pairs -> a lookup by relative name, file name and stem, in Unicode's composed form (see
    csv_key); a file name or stem that several images share is Ambiguous (a CSV that names one so is refused)."""
    index: dict = {}
    for rel, value in items:
        rel = unicodedata.normalize("NFC", rel)
        for key in (rel, Path(rel).name, Path(rel).stem):
            was = index.setdefault(key, (value, rel))
            if isinstance(was[0], Ambiguous):
                if was[0][-1] != rel:  # (a file's name and stem may be one key)
                    was[0].append(rel)
            elif was[0] != value:
                index[key] = (Ambiguous([was[1], rel]), rel)
    return {key: value for key, (value, _) in index.items()}


def copies(found: list) -> bool:
    """Whether the files (paths) are copies of one file: the same size, the same first and last 8 KiB (file_ends)."""
    if not all(isinstance(f, str) for f in found):  # (an int would be taken for a file descriptor)
        return False
    try:
        if len({os.path.getsize(f) for f in found}) != 1:
            return False
        ends = set()
        for f in found:
            with open(f, "rb") as fh:
                ends.add(file_ends(fh, 0, os.fstat(fh.fileno()).st_size))
    except OSError:
        return False
    return len(ends) == 1


def file_ends(f, start: int, size: int) -> bytes:
    """The first and last 8 KiB of the `size` bytes at `start` of the open file f (a file, a plain tar's member)."""
    f.seek(start)
    head = f.read(min(size, 8192))
    f.seek(start + max(0, size - 8192))
    return head + f.read(min(size, 8192))


def csv_key(name: str) -> str:
    """A CSV's image name as name_index looks it up: Windows' `Images\\a.jpg` as `Images/a.jpg`, and `café` in
    Unicode's composed form (NFC), as a keyboard types it, where macOS has written the file name decomposed (NFD: e +
    a combining accent) or the other way round."""
    return unicodedata.normalize("NFC", name.strip().replace("\\", "/"))


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


def _look_up(index: dict, key: str):
    """A CSV's image name (csv_key) in name_index's lookup: as written; without its first folders, one at a time
    (CheXpert's train.csv names CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg, from the folder
    that holds the set: every image is a view1_frontal.jpg); by file name; by stem. None if no image."""
    parts = key.split("/")
    for k in range(len(parts) - 1):
        if (hit := index.get("/".join(parts[k:]))) is not None:
            return hit
    return index.get(Path(key).name, index.get(Path(key).stem))


def _image_column(cols: list[str], rows: list[dict], index: dict) -> str:
    """The image column where --csv-image-col is not given: the first, unless its names match no image and another
    column's do (HAM10000's metadata: lesion_id, then image_id); of those, the one that matches most of 100 rows."""
    sample = rows[:100]
    hits = [sum(_look_up(index, csv_key(r[c] or "")) is not None for r in sample) for c in cols]
    return cols[0] if hits[0] or not any(hits) else cols[hits.index(max(hits))]


def _whole(label: str) -> int | None:
    """A label that is a whole number ("3", "-1", "3.0": pandas writes an integer column with a missing value as
    floats) as an int, else None."""
    try:
        v = float(label)
    except ValueError:
        return None
    return int(v) if v.is_integer() else None


def csv_text(path: Path) -> str:
    """The CSV's text: UTF-8 (with or without Excel's BOM), UTF-16 with its BOM (Excel's "Unicode Text"), or else,
    with a warning, Windows-1252, in which Excel saves "CSV (Comma delimited)" on a Western Windows (a label
    `mélanome`, a file name `café.jpg`); any other bytes as Latin-1. Before, such a file stopped the run with
    "'utf-8' codec can't decode byte 0xe9", naming no file."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        try:
            text, read_as = raw.decode("cp1252"), "Windows-1252 (Excel's CSV on a Western Windows)"
        except UnicodeDecodeError:
            text, read_as = raw.decode("latin-1"), "Latin-1"
        why = f"byte {raw[e.start]:#04x} in line {line}"
        warnings.warn(f"--csv {path} is not UTF-8 ({why}): read as {read_as}; if its names or labels look wrong, "
                      "save it as UTF-8 (Excel: 'CSV UTF-8')", stacklevel=3)  # fmt: skip
        return text


def jsonl_as_csv(path: Path) -> str:
    """A JSON Lines labels file (Hugging Face's imagefolder: `metadata.jsonl`, {"file_name": "0001.png", "label":
    3} a line) as CSV text: the keys in their first order are the header."""
    rows = []
    for n, line in enumerate(csv_text(path).splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"--csv {path}: line {n} is not JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise DataError(f'--csv {path}: line {n} is not a JSON object ({{"file_name": ..., "label": ...}})')
            rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    cell = lambda v: "" if v is None else v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    csv.writer(out, lineterminator="\n").writerows([cols, *([cell(r.get(c)) for c in cols] for r in rows)])
    return out.getvalue()


def csv_labels(csv_path: Path, image_col: str, label_col: str, index: dict, where: str, guess: bool = True,
               same: Callable[[list], bool] = copies):  # fmt: skip
    """(the index values of the CSV's images in row order, labels int64, class names) for a labels CSV: an image
    column (--csv-image-col, default the first, or the one whose names match images: _image_column) and a label
    column (--csv-label-col, default one named as in LABEL_COLUMNS), or else one-hot columns (a 1 in the column of
    the image's class), or else the last named column; a file without a header has its columns by number
    (images 1, labels 2). Numeric labels give classes in numeric order, names in sorted order, one-hot columns in
    theirs. An image name that several images share is theirs where they are copies (same: their index values ->
    whether; copies of files, an archive's Listing.copies): HAM10000 as Kaggle ships it holds each part twice."""
    text = jsonl_as_csv(csv_path) if csv_path.suffix.lower() == ".jsonl" else csv_text(csv_path)
    while text.startswith("#"):  # comment lines before the rows (Oxford-IIIT Pet's annotations/list.txt)
        text = text.partition("\n")[2]
    first, _, rest = text.partition("\n")
    counted = first.strip().isdigit() and rest.strip()  # CelebA's lists: a line with the count of rows first
    text = rest if counted else text
    header = text.split("\n", 1)[0]
    # ',' or, without one in the header, ';' (Excel's CSV where the decimal mark is a comma: German, French...) or a
    # tab (Excel's "Unicode Text", a .tsv)
    sep = ","
    if "," not in header and (";" in header or "\t" in header):
        sep = max(";\t", key=header.count)
    elif sep not in header and " " in header.strip():  # a list of `name label` lines (space-separated)
        rows = [line.split() for line in text.splitlines()]
        widths = {len(r) for r in rows[1:] if r}  # (the rows after a header: CelebA's is a word short)
        if len(widths) > 1 and min(widths) >= 2:  # a label of several words: FGVC-Aircraft's `1340192 Cessna 172`
            rows = [r[:1] + [" ".join(r[1:])] if r else r for r in rows]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        text, sep = out.getvalue(), ","
        header = text.split("\n", 1)[0]
    try:  # (csv.Error: a field past csv's limit of 131,072 characters, in no labels CSV)
        row1 = next(csv.reader(io.StringIO(header), delimiter=sep, skipinitialspace=True), None) or [""]
        second = text.partition("\n")[2].partition("\n")[0]
        if counted and len(next(csv.reader(io.StringIO(second), delimiter=sep), [])) == len(row1) + 1:
            text, row1 = f"image{sep}{text}", ["image", *row1]  # list_attr_celeba.txt's header has no image column
        # no header: the first row names an image, with its extension (Tiny ImageNet's val_annotations.txt) or
        # without (Oxford-IIIT Pet's trainval.txt: `Abyssinian_100 1 1 1`): columns by number, 1 and 2
        bare = _look_up(index, csv_key(row1[0])) is not None
        fields = [str(k + 1) for k in range(len(row1))] if bare else None
        # (spaces after the separators are no part of a cell: Roboflow's `filename, Cat, Dog`)
        reader = csv.DictReader(io.StringIO(text, newline=""), fieldnames=fields, delimiter=sep, skipinitialspace=True)
        cols = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as e:
        raise DataError(f"--csv {csv_path}: cannot be read as a CSV ({e})") from e
    if not rows or len(cols) < 2:
        raise DataError(f"--csv {csv_path}: needs a header and at least one row with two columns")
    lower = {c.lower(): c for c in cols}
    image_col, label_col = image_col or _image_column(cols, rows, index), label_col or ("2" if bare else "")
    one_hot = None
    if not label_col and not any(c in lower for c in LABEL_COLUMNS):
        one_hot = _one_hot_columns([c for c in cols if c != image_col], rows, csv_path)
        attributes = [c for c in cols if c != image_col and all(r[c] in ("-1", "1") for r in rows[:100])]
        if one_hot is None and len(attributes) >= 2:  # CelebA's 40: the last would be taken for the label in silence
            raise DataError(f"--csv {csv_path}: its columns {', '.join(attributes[:4])}{' ...' * (len(attributes) > 4)}"
                            f" are {len(attributes)} attributes, each -1 or 1: name the one to train on (its classes "
                            f"-1 and 1) with --csv-label-col, e.g. --csv-label-col {attributes[-1]}, or several (their "
                            f"combinations the classes): --csv-label-col {','.join(attributes[:2])}")  # fmt: skip
    last = next((c for c in reversed(cols) if c.strip() and c != image_col), cols[-1])  # (not a trailing comma's)
    by_default = not label_col and not one_hot and not any(c in lower for c in LABEL_COLUMNS)  # the last one
    if by_default and not guess:  # (a held-out part's CSV of the test images' metadata: no labels)
        raise DataError(f"--csv {csv_path}: no column named as labels ({', '.join(LABEL_COLUMNS[:6])} ...) nor one-hot")
    named = [lower[c] for c in LABEL_COLUMNS if c in lower and lower[c] != image_col]
    also = named[1:] if named else [c for c in cols if c.strip() and c not in (image_col, last)]
    if not label_col and not one_hot and also:  # several columns it might be: said, which it took
        taken = named[0] if named else last
        why = "the first named as labels" if named else f"the last: none is named {', '.join(LABEL_COLUMNS[:6])} ..."
        warnings.warn(f"--csv {csv_path}: the labels are column {taken!r} ({why}); --csv-label-col names another: "
                      f"{', '.join(also[:8])}{' ...' * (len(also) > 8)}", stacklevel=2)  # fmt: skip
    label_col = label_col or (named[0] if named else last)
    # several label columns (CelebA's Male,Smiling): each combination of their values is a class
    label_cols = [c.strip() for c in label_col.split(",")] if label_col not in cols else [label_col]
    for opt, col in (("--csv-image-col", image_col), *(("--csv-label-col", c) for c in label_cols)):
        if col not in cols:
            raise DataError(f"{opt} {col!r}: no such column in {csv_path} (columns: {', '.join(cols)}"
                            f"{'; it has no header: columns by number' if bare else ''})")  # fmt: skip
    hits, missing, raw_labels, row_of = [], [], [], {}
    for n, r in enumerate(rows, start=1 if bare else 2):  # n: the row's line in the file (a header is line 1)
        key = csv_key(r[image_col] or "")
        hit = _look_up(index, key)
        found = [index[rel] for rel in hit] if isinstance(hit, Ambiguous) else []  # (a rel name may be another's name)
        if found and not any(isinstance(f, Ambiguous) for f in found) and same(found):
            hit = found[0]  # the same file twice (HAM10000 on Kaggle: each image part also in lower case)
        if isinstance(hit, Ambiguous):
            folders = " or ".join(dict.fromkeys(f"{where}/{Path(h).parent}".removesuffix("/.") for h in hit))
            which = f"{hit[0]} and {hit[1]}" if len(hit) == 2 else f"{hit[0]}, {hit[1]} and {len(hit) - 2} more"
            raise DataError(f"--csv {csv_path}: row {n} names {key!r}, which is {which} "
                            f"in {where}: give as --data the folder of the CSV's images ({folders}; the CSV is looked "
                            "for beside it too), or name them by their path in the CSV")  # fmt: skip
        if hit is None:
            missing.append(key)
            continue
        if one_hot:
            label = next(c for c in one_hot if float(r[c]) == 1.0)
        elif len(label_cols) > 1:
            values = [(r[c] or "").strip() for c in label_cols]  # (a missing one: no label, said below)
            label = " ".join(f"{c}={v}" for c, v in zip(label_cols, values)) if all(values) else ""
        else:
            label = (r[label_col] or "").strip()
        if label_col.lower() == "predictionstring":  # Kaggle's boxes, `n01751748 111 68 289 228 ...`: the class first
            label = label.split(" ", 1)[0]
        if not label:
            others = ", ".join(c for c in cols if c not in (image_col, label_col))
            how = (f" (the last, taken as no column is named label, class ...: --csv-label-col names another of "
                   f"{others})") if by_default else ""  # fmt: skip
            blank = sum(not all((r.get(c) or "").strip() for c in label_cols) for r in rows)
            many = "" if blank < 10 else (f" (nor have {blank - 1:,} more of its {len(rows):,} rows: a column of "
                                         "findings left blank where not mentioned, as CheXpert's, is filled in first: "
                                         "pandas' fillna(0))")  # fmt: skip
            raise DataError(f"--csv {csv_path}: row {n} ({key!r}) has no label in column {label_col!r}{how}{many}; "
                            "fill it in or remove the row")  # fmt: skip
        if hit in row_of:  # the same image listed twice (CSVs merged from several sources)
            first, was = row_of[hit]
            if was != label:
                raise DataError(f"--csv {csv_path}: rows {first} and {n} give {key!r} two labels, {was!r} and "
                                f"{label!r}; keep one")  # fmt: skip
            continue  # listed again with the same label: counted once
        row_of[hit] = n, label
        hits.append(hit)
        raw_labels.append(label)
    if missing:
        raise DataError(
            f"--csv {csv_path}: {len(missing)} of {len(rows)} names in column {image_col!r} match no image in "
            f"{where}, e.g. {', '.join(repr(m) for m in missing[:5])}"
        )
    if one_hot:
        class_names = [c for c in one_hot if c in set(raw_labels)]  # the classes that occur, in column order
        order = {c: k for k, c in enumerate(class_names)}
        labels = np.array([order[c] for c in raw_labels], dtype=np.int64)
    elif None not in (numbers := [_whole(v) for v in raw_labels]):  # numeric labels: in numeric order
        values = sorted(set(numbers))  # "1" and "1.0" (a CSV written from floats) are one class
        class_names = [str(v) for v in values]
        order = {v: k for k, v in enumerate(values)}
        labels = np.array([order[v] for v in numbers], dtype=np.int64)
    else:
        labels, class_names = labels_from(raw_labels)
    if not one_hot and len(class_names) == len(hits) >= 50:  # a caption, an id: no classes to learn
        raise DataError(f"--csv {csv_path}: column {label_col!r} gives each of the {len(hits)} images a label of its "
                        f"own ({', '.join(class_names[:3])} ...), which are no classes; name the column of the classes "
                        f"with --csv-label-col (columns: {', '.join(cols)})")  # fmt: skip
    return hits, labels, class_names


def csv_catalog(root: Path, csv_path: Path, image_col: str, label_col: str, guess: bool = True) -> Catalog:
    """Images in root/Images (or root) named by a CSV column, labels from another column or one-hot columns (ISIC
    layouts; guess: else from its last column, csv_labels)."""
    image_dir = root / "Images" if (root / "Images").is_dir() else root
    files = sorted(Path(d, f) for d, _, names in walk(image_dir, keep_hidden=True) for f in names if is_image(f))
    index = name_index((str(p.relative_to(image_dir)), str(p)) for p in files)
    paths, labels, class_names = csv_labels(csv_path, image_col, label_col, index, str(image_dir), guess)
    return Catalog(folder_name(root), paths, labels, class_names, Files(paths), sources=paths)
