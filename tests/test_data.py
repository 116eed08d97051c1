import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLASSES, float_grey, grey16, make_folder, turned
from PIL import Image

import fastacgan.archives as archives
import fastacgan.data as data_mod
import fastacgan.folders as folders_mod
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_all, decode_image, probe
from fastacgan.loaders import MemoryLoader, StreamLoader, epoch_order, to_model_input
from fastacgan.train import main

LSUN = Path(__file__).parent / "data" / "lsun"  # LMDB databases as LSUN ships them (make_fixtures.py)


def load(data, **kw):
    cat = open_catalog(str(data), **kw)
    return cat, decode_all(cat, 16, probe(cat)[1], workers=0, log=lambda m: None)


def test_image_folder(image_folder):
    cat, (x, y) = load(image_folder)
    assert cat.class_names == sorted(CLASSES) and len(cat) == 24
    assert x.shape == (24, 16, 16, 3) and x.dtype == torch.uint8
    assert torch.equal(y, torch.arange(3).repeat_interleave(8))
    # the class is visible in the pixels: discs are bright in the centre, stripes alternate
    assert x[y == 0][:, 8, 8].float().mean() > 150


def test_greyscale_is_detected(tmp_path):
    folder = make_folder(tmp_path / "g", grey=True, ext=".jpg")
    cat = open_catalog(str(folder))
    assert probe(cat) == (20, 1)


# .tar.bz2 and .tar.xz were refused by their names ("a file must be a .zip, .tar, .tar.gz or .tgz"); the last three
# are named for another compression than they hold: the file's first bytes decide
@pytest.mark.parametrize(
    "suffix,mode",
    [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar.bz2", "w:bz2"), (".tbz2", "w:bz2"),
     (".tar.xz", "w:xz"), (".txz", "w:xz"), (".tar.gz", "w:bz2"), (".tar", "w:xz"), (".tgz", "w")],
)  # fmt: skip
def test_tar_archives_match_the_folder(image_folder, tmp_path, suffix, mode):
    archive = tmp_path / f"shapes{suffix}"
    with tarfile.open(archive, mode) as tf:
        tf.add(image_folder, arcname="train")
    cat_t, (xt, yt) = load(archive)
    _, (xf, yf) = load(image_folder)
    assert cat_t.class_names == sorted(CLASSES) and cat_t.name == "shapes"
    assert torch.equal(xt, xf) and torch.equal(yt, yf)


def test_compressed_archive_beyond_memory_is_refused_with_progress(image_folder, tmp_path, monkeypatch):
    """A compressed archive is read into memory in one pass, with progress lines; one whose images would pass
    the memory budget stops early with an error that names it and says what to do. Folders: progress too."""
    archive = tmp_path / "shapes.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(image_folder, arcname="train")
    sizes = sorted(p.stat().st_size for p in image_folder.rglob("*.png"))
    monkeypatch.setattr(data_mod, "PROGRESS_EVERY_S", -1.0)  # a line per image
    lines = []
    cat = open_catalog(str(archive), log=lines.append)
    assert len(lines) == len(cat) == len(sizes) and lines[-1].startswith(f"reading shapes.tar.gz: {len(cat)} images")
    monkeypatch.setattr(archives, "memory_budget", lambda: sum(sizes) - 1)
    with pytest.raises(
        DataError, match=r"shapes\.tar\.gz: a compressed archive is held in memory .* uncompressed \.tar"
    ):
        open_catalog(str(archive))
    plain = tmp_path / "shapes.tar"  # read from disk by offset: no budget
    with tarfile.open(plain, "w") as tf:
        tf.add(image_folder, arcname="train")
    lines.clear()  # its headers listed (a seek a member: 1.28 M take half a minute), a line as it goes
    assert len(open_catalog(str(plain), log=lines.append)) == len(sizes)
    counts = [int(re.fullmatch(r"listing shapes\.tar: (\d+) files so far", line)[1]) for line in lines]
    assert counts == sorted(counts) and counts[-1] == len(sizes) and len(counts) > len(sizes)  # (its folders too)
    with tarfile.open(tmp_path / "dot.tar", "w") as tf:  # `tar cf dot.tar .` in the folder: ./<class>/ members
        tf.add(image_folder, arcname=".")
    assert open_catalog(str(tmp_path / "dot.tar")).class_names == sorted(CLASSES)
    lines.clear()  # a folder: a line per class folder listed
    open_catalog(str(image_folder), log=lines.append)
    assert lines == [f"listing {image_folder}: {8 * k} images in {k} of 3 class folders" for k in (1, 2, 3)]


def write_isic(root, rows, label_col="target"):
    (root / "Images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, _ in rows:
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(root / "Images" / f"{name}.jpg")
    with open(root / "train_data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_name", "patient_id", label_col])
        w.writerows([(n, "p", lab) for n, lab in rows])


def test_csv_isic_layout_is_detected(tmp_path, monkeypatch):
    rows = [(f"ISIC_{i:07d}", i % 2) for i in range(6)]
    write_isic(tmp_path / "isic", rows)
    cat, (x, y) = load(tmp_path / "isic")
    assert cat.class_names == ["0", "1"] and y.tolist() == [0, 1, 0, 1, 0, 1]
    assert x.shape == (6, 16, 16, 3) and cat.name == "isic"
    monkeypatch.chdir(tmp_path / "isic")
    assert open_catalog(".").name == "isic"  # (it was "": the run's output went to runs/)


def test_csv_numeric_labels_written_as_floats(tmp_path):
    """Labels a CSV holds as floats (pandas writes an int column with a gap as 1.0, 0.0): numbers, in numeric
    order, and 1.0 beside 1 one class (they were names: classes "1.0" and "1", and "10.0" sorted before "2.0")."""
    write_isic(tmp_path / "d", [("a", "1.0"), ("b", "10.0"), ("c", "2"), ("e", "1"), ("f", "0.0")])
    cat = open_catalog(str(tmp_path / "d"))
    assert cat.class_names == ["0", "1", "2", "10"] and cat.labels.tolist() == [1, 3, 2, 1, 0]


def test_csv_with_string_labels_and_explicit_columns(tmp_path):
    rows = [("a", "nevus"), ("b", "melanoma"), ("c", "nevus")]
    write_isic(tmp_path / "d", rows, label_col="diagnosis_name")
    cat = open_catalog(str(tmp_path / "d"), csv_opt="train_data.csv", label_col="diagnosis_name")
    assert cat.class_names == ["melanoma", "nevus"] and cat.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("encoding, sep", [("utf-8", ","), ("utf-8-sig", ","), ("utf-16", "\t"), ("cp1252", ";")])
def test_csv_saved_by_excel_in_any_of_its_encodings(tmp_path, encoding, sep):
    """Excel saves "CSV (Comma delimited)" in the machine's code page (Windows-1252 on a Western Windows) and, where
    the decimal mark is a comma (German, French), separated by ';'; "CSV UTF-8" with a BOM; "Unicode Text" as UTF-16
    separated by tabs. Labels and file names with accents read the same from each; the code page is said (before:
    "'utf-8' codec can't decode byte 0xe9", naming no file; ';' and tabs: "needs a header and ... two columns")."""
    write_isic(tmp_path / "d", [("a", 0), ("b", 1), ("c", 0)])
    (tmp_path / "d" / "Images" / "a.jpg").rename(tmp_path / "d" / "Images" / "café.jpg")
    text = "image,diagnosis\r\ncafé,mélanome\r\nb,nævus\r\nc,mélanome\r\n".replace(",", sep)
    (tmp_path / "d" / "train_data.csv").write_bytes(text.encode(encoding))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        cat = open_catalog(str(tmp_path / "d"))
    assert cat.class_names == ["mélanome", "nævus"] and cat.labels.tolist() == [0, 1, 0]
    assert sorted(Path(n).name for n in cat.names) == ["b.jpg", "c.jpg", "café.jpg"]
    notes = [str(w.message) for w in said if "--csv" in str(w.message)]
    if encoding == "cp1252":
        assert notes == [f"--csv {tmp_path / 'd' / 'train_data.csv'} is not UTF-8 (byte 0xe9 in line 2): read as "
                         "Windows-1252 (Excel's CSV on a Western Windows); if its names or labels look wrong, save it "
                         "as UTF-8 (Excel: 'CSV UTF-8')"]  # fmt: skip
    else:
        assert notes == []


def test_csv_names_written_on_windows_or_typed_against_macos_file_names(tmp_path):
    """A CSV written on Windows names `Images\\b.jpg`; a file copied from macOS is named decomposed (`cafe` + a
    combining accent, NFD) while the CSV has it as typed (NFC), or the other way round. Both match (before: "2 of 3
    names ... match no image")."""
    import unicodedata

    write_isic(tmp_path / "d", [("a", 0), ("b", 1), ("c", 0)])
    images = tmp_path / "d" / "Images"
    (images / "a.jpg").rename(images / (unicodedata.normalize("NFD", "café") + ".jpg"))
    (images / "c.jpg").rename(images / "thé.jpg")
    text = f"image,label\n{unicodedata.normalize('NFC', 'café')}.jpg,x\nImages\\b.jpg,y\n"
    text += f"{unicodedata.normalize('NFD', 'thé')},x\n"
    (tmp_path / "d" / "train_data.csv").write_text(text, encoding="utf-8")
    cat = open_catalog(str(tmp_path / "d"))
    assert cat.class_names == ["x", "y"] and len(cat) == 3
    named = {unicodedata.normalize("NFC", Path(n).name): int(y) for n, y in zip(cat.names, cat.labels)}
    assert named == {"café.jpg": 0, "b.jpg": 1, "thé.jpg": 0}


def test_class_names_typed_in_another_unicode_form(tmp_path):
    """A class folder that macOS named decomposed (NFD) is found by `--classes café` and `sample --label café` as
    typed (NFC); before: "not in the data"."""
    import unicodedata

    from fastacgan.sample import parse_label

    nfd = unicodedata.normalize("NFD", "café")
    make_folder(tmp_path / "d", n_per_class=2, classes=("circle", nfd, "square"))
    cat = open_catalog(str(tmp_path / "d"), classes=f"{unicodedata.normalize('NFC', 'café')},square")
    assert cat.class_names == [nfd, "square"] and len(cat) == 4
    assert parse_label(unicodedata.normalize("NFC", "café"), ["circle", nfd]) == 1


def test_csv_names_that_match_no_file(tmp_path):
    write_isic(tmp_path / "d", [("a", 0), ("b", 1)])
    with open(tmp_path / "d" / "train_data.csv", "a") as f:
        f.write("missing_1,p,0\nmissing_2,p,1\n")
    with pytest.raises(DataError, match=r"train_data.csv: 2 of 4 names .* 'missing_1'"):
        open_catalog(str(tmp_path / "d"))


def test_csv_rows_without_a_label_or_listed_twice(tmp_path):
    """A row with an empty label is refused, naming it (it became a class named ""); an image listed twice with
    the same label counts once (it counted twice), with two labels it is refused, naming both rows."""
    write_isic(tmp_path / "d", [("a", 0), ("b", 1), ("c", 1)])
    csv_file = tmp_path / "d" / "train_data.csv"
    good = csv_file.read_text()
    csv_file.write_text(good + "a,p,0\n")
    cat = open_catalog(str(tmp_path / "d"))
    assert len(cat) == 3 and cat.labels.tolist() == [0, 1, 1]
    csv_file.write_text(good + "b,p,0\n")
    with pytest.raises(DataError, match="train_data.csv: rows 3 and 5 give 'b' two labels, '1' and '0'; keep one"):
        open_catalog(str(tmp_path / "d"))
    csv_file.write_text(good.replace("b,p,1", "b,p,"))
    with pytest.raises(DataError, match="train_data.csv: row 3 \\('b'\\) has no label in column 'target'"):
        open_catalog(str(tmp_path / "d"))


def test_chexpert_its_patients_folders_and_its_csvs_paths(tmp_path):
    """CheXpert-v1.0-small/: train/patient00001/study1/view1_frontal.jpg ... beside train.csv, whose Path column
    names each image from the folder that holds the set (CheXpert-v1.0-small/train/...), its 14 findings 1.0, 0.0,
    -1.0 or blank. As --data it trained on 64,540 classes, a patient each, in silence: now warned. With --csv
    train.csv every row was refused ("names ..., which is train/patient00000/study1/view1_frontal.jpg and 1,000
    more"): a name is also looked up without its first folders. A finding left blank is named with how many rows
    have none."""
    root = tmp_path / "CheXpert-v1.0-small"
    jpeg = io.BytesIO()
    Image.new("L", (8, 8), 90).save(jpeg, "JPEG")
    rows = ["Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Cardiomegaly"]
    for p in range(1000):
        study = root / "train" / f"patient{p:05d}" / "study1"
        study.mkdir(parents=True)
        (study / "view1_frontal.jpg").write_bytes(jpeg.getvalue())
        finding = "1.0" if p % 3 == 0 else "" if p % 3 == 1 else "-1.0"
        rows.append(f"CheXpert-v1.0-small/train/patient{p:05d}/study1/view1_frontal.jpg,{'FM'[p % 2]},60,Frontal,AP,"
                    f"{'1.0' if p % 4 == 0 else '0.0'},{finding}")  # fmt: skip
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    make_folder(root / "valid", n_per_class=1, size=(8, 8))
    with pytest.warns(UserWarning, match=r"1,000 classes \(patient00000, patient00001 \.\.\.\), half of them of 1 "
                      r"image or fewer: .* if these are no classes \(CheXpert's train/patient00001/: a folder a "
                      r"patient\), give the labels with --csv"):  # fmt: skip
        assert len(open_catalog(str(root)).class_names) == 1000
    cat = open_catalog(str(root), csv_opt="train.csv", label_col="No Finding")
    assert cat.class_names == ["0", "1"] and len(cat) == 1000 and cat.labels.tolist()[:5] == [1, 0, 0, 0, 1]
    assert Path(cat.names[5]).relative_to(root).as_posix() == "train/patient00005/study1/view1_frontal.jpg"
    with pytest.raises(DataError, match=r"train\.csv: row 3 \('CheXpert-v1\.0-small/train/patient00001/study1/"
                       r"view1_frontal\.jpg'\) has no label in column 'Cardiomegaly' \(nor have 332 more of its 1,000 "
                       r"rows: a column of findings left blank where not mentioned, as CheXpert's, is filled in "
                       r"first: pandas' fillna\(0\)\); fill it in or remove the row"):  # fmt: skip
        open_catalog(str(root), csv_opt="train.csv", label_col="Cardiomegaly")


def test_csv_whose_images_are_not_in_its_first_column(tmp_path):
    """HAM10000's metadata (lesion_id, image_id, dx, ...): the first column names lesions, not images, and the run
    stopped with "12 of 12 names in column 'lesion_id' match no image" until --csv-image-col was given. The column
    whose names match the images is taken; given, the option still decides."""
    write_isic(tmp_path / "ham", [(f"ISIC_{i:07d}", "nv mel bkl".split()[i % 3]) for i in range(6)])
    rows = [f"HAM_{i // 2:07d},ISIC_{i:07d},{'nv mel bkl'.split()[i % 3]},histo" for i in range(6)]
    (tmp_path / "ham" / "train_data.csv").write_text("lesion_id,image_id,dx,dx_type\n" + "\n".join(rows) + "\n")
    cat = open_catalog(str(tmp_path / "ham"))
    assert cat.class_names == ["bkl", "mel", "nv"] and cat.labels.tolist() == [2, 1, 0, 2, 1, 0]
    with pytest.raises(DataError, match="6 of 6 names in column 'lesion_id' match no image"):
        open_catalog(str(tmp_path / "ham"), image_col="lesion_id")


def test_csv_names_that_two_images_share_are_refused(tmp_path):
    """Kaggle's CIFAR-10: train/1.png ... and test/1.png ... beside trainLabels.csv, whose ids ("1") are stems that
    both folders hold. The first image in sorted order took the name, so the labels went to the test images, in
    silence. Refused now, naming both, and --data train/ finds the CSV beside it."""
    root = tmp_path / "cifar-10"
    for seed, part in enumerate(("train", "test")):
        make_folder(root / part, n_per_class=2, size=(8, 8), classes=["x"], seed=seed)  # other images: not copies
        for k, f in enumerate(sorted((root / part / "x").iterdir())):
            f.rename(root / part / f"{k + 1}.png")
    (root / "trainLabels.csv").write_text("id,label\n1,cat\n2,dog\n")
    with tarfile.open(tmp_path / "cifar-10.tar", "w") as tf:
        tf.add(root, arcname="cifar-10")
    for data in (root, tmp_path / "cifar-10.tar"):
        with pytest.raises(DataError) as e:
            open_catalog(str(data), csv_opt=str(root / "trainLabels.csv"))
        assert f"row 2 names '1', which is {'' if data == root else 'cifar-10/'}test/1.png and " in str(e.value)
        assert f"give as --data the folder of the CSV's images ({data}/" in str(e.value)
    cat = open_catalog(str(root / "train"), csv_opt="trainLabels.csv")  # (the CSV beside the folder)
    assert [Path(n).relative_to(root).as_posix() for n in cat.names] == ["train/1.png", "train/2.png"]
    assert cat.class_names == ["cat", "dog"]
    with pytest.raises(DataError, match=rf"--csv nope.csv: file not found \(looked at {root / 'train' / 'nope.csv'} "):
        open_catalog(str(root / "train"), csv_opt="nope.csv")


def test_csv_names_of_copies_in_two_folders_are_the_one_image(tmp_path):
    """HAM10000 as Kaggle ships it holds each image part twice (HAM10000_images_part_1/ and ham10000_images_part_1/):
    a name two files share is not ambiguous where the files are copies (the same size, the same first and last
    8 KiB). It was refused as ambiguous: no folder to give held all of the CSV's images."""
    root = tmp_path / "ham10000"
    for part, seed in (("part_1", 0), ("part_2", 1)):
        make_folder(root / f"HAM10000_images_{part}", n_per_class=2, size=(8, 8), classes=["x"], seed=seed)
        shutil.copytree(root / f"HAM10000_images_{part}", root / f"ham10000_images_{part}")
    names = sorted(p.stem for p in root.glob("HAM10000_images_*/x/*.png"))
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n" + "".join(
        f"HAM_{k},{n},{'nv' if k % 2 else 'mel'}\n" for k, n in enumerate(names)))  # fmt: skip
    with pytest.raises(DataError, match="which is .* and .*: give as --data the folder"):  # two images, one name
        open_catalog(str(root), csv_opt="HAM10000_metadata.csv")
    for part in ("part_1", "part_2"):  # (make_folder names each part's images alike: named apart here)
        for f in (root / f"HAM10000_images_{part}" / "x").iterdir():
            for copy in (f, root / f"ham10000_images_{part}" / "x" / f.name):
                copy.rename(copy.with_name(f"{part}_{f.name}"))
    names = sorted(p.stem for p in root.glob("HAM10000_images_*/x/*.png"))
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n" + "".join(
        f"HAM_{k},{n},{'nv' if k % 2 else 'mel'}\n" for k, n in enumerate(names)))  # fmt: skip
    cat = open_catalog(str(root), csv_opt="HAM10000_metadata.csv")
    assert len(cat) == 4 and [Path(n).stem for n in cat.names] == names and cat.class_names == ["mel", "nv"]
    (root / "ham10000_images_part_2" / "x" / "part_2_x_001.png").write_bytes(b"other bytes")
    with pytest.raises(DataError, match=r"names 'part_2_x_001', which is .*part_2_x_001\.png and "):
        open_catalog(str(root), csv_opt="HAM10000_metadata.csv")


def test_label_lists_without_a_header(tmp_path):
    """A list with no header, its first row naming an image (Tiny ImageNet's val_annotations.txt: name, label, box,
    tab-separated; `name label` lines separated by spaces): columns by number, the images in 1, the labels in 2.
    The first row was taken for a header (an image lost) and the labels from the last column (a box coordinate)."""
    write_isic(tmp_path / "d", [("a", 0), ("b", 1), ("c", 1)])
    (tmp_path / "d" / "train_data.csv").unlink()
    (tmp_path / "d" / "ann.txt").write_text("a.jpg\tcat\t0\t0\t9\t9\nb.jpg\tdog\t0\t0\t9\t8\nc.jpg\tdog\t1\t0\t9\t9\n")
    (tmp_path / "d" / "list.txt").write_text("b.jpg  dog\nc.jpg dog\na.jpg cat\n")
    for name, order in (("ann.txt", ["a", "b", "c"]), ("list.txt", ["b", "c", "a"])):
        cat = open_catalog(str(tmp_path / "d"), csv_opt=name)
        assert cat.class_names == ["cat", "dog"] and [Path(n).stem for n in cat.names] == order, name
        assert cat.labels.tolist() == [["cat", "dog"].index("cat" if n == "a" else "dog") for n in order]
    assert open_catalog(str(tmp_path / "d"), csv_opt="ann.txt", label_col="6").class_names == ["8", "9"]
    with pytest.raises(DataError, match=r"--csv-label-col 'label': no such column .*\(columns: 1, 2, 3, 4, 5, 6; it "
                                        r"has no header: columns by number\)"):  # fmt: skip
        open_catalog(str(tmp_path / "d"), csv_opt="ann.txt", label_col="label")


def test_a_label_list_whose_labels_are_several_words(tmp_path):
    """FGVC-Aircraft's images_variant_trainval.txt: `1340192 Cessna 172`, `1025794 707-320` (image stem, then the
    variant, which may have spaces; no header). The label was the second word: Cessna 172 and Cessna 208 were one
    class, "Cessna"."""
    root = tmp_path / "fgvc-aircraft-2013b" / "data"
    (root / "images").mkdir(parents=True)
    rows = [("1340192", "Cessna 172"), ("0056978", "Cessna 208"), ("1025794", "707-320"), ("0062781", "Cessna 172")]
    for k, (stem, _) in enumerate(rows):
        Image.new("RGB", (8, 8), (k * 50, 0, 0)).save(root / "images" / f"{stem}.jpg")
    (root / "images_variant_trainval.txt").write_text("".join(f"{stem} {label}\n" for stem, label in rows))
    cat = open_catalog(str(root), csv_opt="images_variant_trainval.txt")
    assert cat.class_names == ["707-320", "Cessna 172", "Cessna 208"] and cat.labels.tolist() == [1, 2, 0, 1]
    assert [Path(n).stem for n in cat.names] == [stem for stem, _ in rows]


def test_hugging_face_imagefolder_metadata_and_labels_of_one_image_each(tmp_path):
    """Hugging Face's imagefolder layout: images and a metadata.jsonl (`{"file_name": "0.png", "label": 1}` a line)
    or metadata.csv beside them. The JSONL was not read ("a file must be ..." as --data; the folder's hint named
    CSVs only). A label column that gives every image a label of its own (a caption, an id: here the last column,
    taken where none is named `label`) trained an AC-GAN of as many classes as images: refused, naming the columns."""
    import json

    d = tmp_path / "train"
    d.mkdir()
    rows = [{"file_name": f"{i}.png", "label": i % 3, "text": f"a photo, number {i}"} for i in range(60)]
    for r in rows:
        Image.new("RGB", (8, 8), (r["label"] * 80, 0, 0)).save(d / r["file_name"])
    (d / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"If a CSV labels them, give it: --data .*train --csv metadata\.jsonl"):
        open_catalog(str(d))
    cat = open_catalog(str(d), csv_opt="metadata.jsonl")
    assert cat.class_names == ["0", "1", "2"] and cat.labels.tolist() == [i % 3 for i in range(60)]
    assert [Path(n).name for n in cat.names] == [r["file_name"] for r in rows]
    said = (r"column 'text' gives each of the 60 images a label of its own \(a photo, number 0, a photo, number 1, a "
            r"photo, number 10 \.\.\.\), which are no classes; name the column of the classes with --csv-label-col "
            r"\(columns: file_name, text\)")  # fmt: skip
    (d / "metadata.jsonl").write_text("".join(json.dumps({"file_name": r["file_name"], "text": r["text"]}) + "\n"
                                             for r in rows))  # fmt: skip
    with pytest.raises(DataError, match=said):
        open_catalog(str(d), csv_opt="metadata.jsonl")
    (d / "metadata.jsonl").write_text('{"file_name": "0.png", "label": 0}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"metadata\.jsonl: line 2 is not a JSON object"):
        open_catalog(str(d), csv_opt="metadata.jsonl")
    (d / "metadata.jsonl").unlink()
    with open(d / "metadata.csv", "w", newline="") as f:  # the CSV form; a caption with a comma, quoted
        csv.writer(f).writerows([["file_name", "text", "label"], *([r[k] for k in ("file_name", "text", "label")]
                                                                    for r in rows)])  # fmt: skip
    assert open_catalog(str(d), csv_opt="metadata.csv").labels.tolist() == [i % 3 for i in range(60)]


def test_oxford_pet_lists_name_images_without_extension_after_comments(tmp_path):
    """Oxford-IIIT Pet's annotations: trainval.txt rows `Abyssinian_100 1 1 1` (image stem, class id, species, breed
    id within the species), list.txt the same after `#` comment lines. The first row was taken for a header (an
    image lost) and the labels from the last column, where a cat breed and a dog breed share each number; list.txt
    stopped at its comments."""
    root = tmp_path / "oxford-iiit-pet"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rows = []
    for cls, species, breed, name in ((1, 1, 1, "Abyssinian"), (2, 2, 1, "american_bulldog"), (3, 1, 2, "Bengal")):
        for i in (1, 2):
            Image.new("RGB", (20, 16), (cls * 60, 0, 0)).save(root / "images" / f"{name}_{i}.jpg")
            rows.append(f"{name}_{i} {cls} {species} {breed}")
    (root / "annotations" / "trainval.txt").write_text("\n".join(rows) + "\n")
    (root / "annotations" / "list.txt").write_text("#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
                                                   + "\n".join(rows) + "\n")  # fmt: skip
    for name in ("trainval.txt", "list.txt"):
        cat = open_catalog(str(root), csv_opt=f"annotations/{name}")
        assert cat.class_names == ["1", "2", "3"] and cat.labels.tolist() == [0, 0, 1, 1, 2, 2], name
        assert [Path(n).stem for n in cat.names] == [r.split()[0] for r in rows]


def test_imagenet_val_labelled_by_kaggle_s_box_list(tmp_path):
    """Kaggle's ImageNet: val/ holds the images flat, LOC_val_solution.csv labels them with boxes (ImageId,
    PredictionString `wnid x1 y1 x2 y2 wnid ...`): the class is the first word. Each box list was a class of its own
    (as many classes as images), so the held-out set never matched the training classes."""
    val = tmp_path / "val"
    val.mkdir()
    rows = []
    for i, wnid in enumerate(["n01440764", "n01443537", "n01440764"], start=1):
        Image.new("RGB", (24, 20), (i * 50, 0, 0)).save(val / f"ILSVRC2012_val_{i:08d}.JPEG")
        rows.append(f"ILSVRC2012_val_{i:08d},{wnid} 10 12 200 180 {wnid} 0 0 50 60 ")
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    cat = open_catalog(str(val), csv_opt="LOC_val_solution.csv")
    assert cat.class_names == ["n01440764", "n01443537"] and cat.labels.tolist() == [0, 1, 0]


def test_celeba_attribute_lists(tmp_path):
    """CelebA's list_attr_celeba.txt (torchvision's download): a line with the count, a header of the attribute names
    without the image column, then `000001.jpg -1  1 ...` rows padded with spaces; Kaggle's list_attr_celeba.csv has
    an image_id column. One attribute is the class (-1 and 1). It was "needs a header and at least one row", and the
    CSV form took the last attribute for the label in silence; a folder of img_align_celeba/ alone was one class."""
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    attrs, values = ["Male", "Smiling", "Young"], [(1, -1, 1), (-1, 1, 1), (1, 1, -1), (-1, -1, -1)]
    for i in range(1, 5):
        Image.new("RGB", (17, 21), (i * 40, 0, 0)).save(root / "img_align_celeba" / f"{i:06d}.jpg")
    rows = [f"{i:06d}.jpg " + " ".join(f"{v:2d}" for v in vs) for i, vs in enumerate(values, start=1)]
    (root / "list_attr_celeba.txt").write_text("\n".join(["4", " ".join(attrs) + " ", *rows]) + "\n")
    (root / "list_attr_celeba.csv").write_text("\n".join(["image_id," + ",".join(attrs)]
                                                         + [",".join(r.split()) for r in rows]) + "\n")  # fmt: skip
    for name in ("list_attr_celeba.txt", "list_attr_celeba.csv"):
        cat = open_catalog(str(root), csv_opt=name, label_col="Smiling")
        assert cat.class_names == ["-1", "1"] and cat.labels.tolist() == [0, 1, 1, 0], name
        assert [Path(n).name for n in cat.names] == [f"{i:06d}.jpg" for i in range(1, 5)]
        said = r"its columns Male, Smiling, Young are 3 attributes, each -1 or 1: name the one to train on \(its"
        with pytest.raises(
            DataError,
            match=said + r" classes -1 and 1\) with --csv-label-col, e.g\. --csv-label-col "
            r"Young, or several \(their combinations the classes\): --csv-label-col Male,Smiling$",
        ):
            open_catalog(str(root), csv_opt=name)
        both = open_catalog(str(root), csv_opt=name, label_col="Male,Smiling")  # male x smiling: four classes
        assert both.class_names == ["Male=-1 Smiling=-1", "Male=-1 Smiling=1", "Male=1 Smiling=-1", "Male=1 Smiling=1"]
        assert both.labels.tolist() == [2, 1, 3, 0], name
        with pytest.raises(DataError, match=r"--csv-label-col 'Smile': no such column"):
            open_catalog(str(root), csv_opt=name, label_col="Male,Smile")
    lines = []
    assert open_catalog(str(root), log=lines.append).class_names == ["img_align_celeba"]
    assert lines == [f"note: {root} holds list_attr_celeba.csv, list_attr_celeba.txt beside its class folder "
                     "(img_align_celeba): where that holds the labels, give it with --csv (and the column with "
                     "--csv-label-col)"]  # fmt: skip
    # HAM10000 as Kaggle ships it: its images in two parts (and a copy of each) beside the metadata, which holds the
    # labels, and its pixel-row CSVs: it was four classes, the folders (with this note); now read with the metadata
    ham = tmp_path / "ham10000"
    for k, part in enumerate(("HAM10000_images_part_1", "HAM10000_images_part_2")):
        for folder in (part, part.lower()):
            (ham / folder).mkdir(parents=True)
            Image.new("RGB", (8, 8), (100 * k, 0, 0)).save(ham / folder / f"ISIC_002430{6 + k}.jpg")
    (ham / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nHAM_1,ISIC_0024306,nv\nHAM_2,ISIC_0024307,df\n")
    (ham / "hmnist_8_8_L.csv").write_text(",".join(f"pixel{j:04d}" for j in range(64)) + ",label\n" + "0," * 64 + "2\n")
    (ham / "readme.txt").write_text("x")
    lines.clear()
    cat = open_catalog(str(ham), log=lines.append)
    assert cat.class_names == ["df", "nv"] and cat.labels.tolist() == [1, 0]
    assert [Path(n).name for n in cat.names] == ["ISIC_0024306.jpg", "ISIC_0024307.jpg"]
    assert lines == [f"--data {ham}: HAM10000_images_part_1/, HAM10000_images_part_2/, ham10000_images_part_1/ ... are "
                     "parts of one set: its images labelled by HAM10000_metadata.csv"]  # fmt: skip
    (ham / "other.csv").write_text("a,b\n")  # two CSVs: the note, as before
    lines.clear()
    with pytest.warns(UserWarning, match="differ only in case"):
        assert len(open_catalog(str(ham), log=lines.append).class_names) == 4
    assert lines[0].startswith(f"note: {ham} holds HAM10000_metadata.csv, hmnist_8_8_L.csv, other.csv beside its class")


def test_classes_that_differ_only_in_case_or_spaces_are_warned_of(tmp_path):
    """Folders merged from two sources (Cat/ beside cat/, `dog ` beside dog/) or labels typed two ways were read as
    different classes in silence: a warning names them. A letter's cases are two classes (EMNIST's a and A), and
    --classes (the user's pick) says nothing."""
    for name in ("Cat", "cat", "dog", "dog ", "a", "A"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "d" / name / "x.png")
    with pytest.warns(UserWarning) as seen:
        cat = open_catalog(str(tmp_path / "d"))
    assert len(cat.class_names) == 6
    assert [str(w.message) for w in seen] == [f"--data {tmp_path / 'd'}: classes 'Cat' and 'cat'; 'dog' and 'dog ' "
        "differ only in case or spaces and are read as different classes; if each is one class, merge their folders "
        "(or labels)"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_catalog(str(tmp_path / "d"), classes="Cat,cat,a,A").class_names == ["Cat", "cat", "a", "A"]
        shutil.rmtree(tmp_path / "d" / "Cat")
        shutil.rmtree(tmp_path / "d" / "dog ")
        assert open_catalog(str(tmp_path / "d")).class_names == ["A", "a", "cat", "dog"]
    (tmp_path / "d" / "labels.csv").write_text("image,label\ncat/x.png,Melanoma\ndog/x.png,melanoma\na/x.png,nevus\n")
    with pytest.warns(UserWarning, match="classes 'Melanoma' and 'melanoma' differ only in case"):
        open_catalog(str(tmp_path / "d"), csv_opt="labels.csv")


def test_csv_label_columns_by_other_names_and_a_trailing_comma(tmp_path):
    """NIH ChestX-ray14's Data_Entry_2017.csv: labels in "Finding Labels", every line ending in a comma (an unnamed
    last column). It was "row 2 has no label in column ''"; a `labels` or `category` column was passed over for the
    last one."""
    write_isic(tmp_path / "d", [("a", 0), ("b", 1), ("c", 1)])
    (tmp_path / "d" / "train_data.csv").unlink()
    (tmp_path / "d" / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels,Patient Age,View Position,\n"
        "a.jpg,Effusion,58,PA,\nb.jpg,No Finding,81,AP,\nc.jpg,Cardiomegaly|Effusion,40,PA,\n")  # fmt: skip
    with pytest.warns(UserWarning) as seen:  # several findings an image: each combination a class, said
        cat = open_catalog(str(tmp_path / "d"), csv_opt="Data_Entry_2017.csv")
    assert cat.class_names == ["Cardiomegaly|Effusion", "Effusion", "No Finding"] and cat.labels.tolist() == [1, 2, 0]
    assert [str(w.message) for w in seen] == [f"--data {tmp_path / 'd'}: its labels are lists (Cardiomegaly|Effusion)"
        ": each combination is a class of its own (1 of the 3 classes); --classes picks the ones to train on, e.g. "
        "--classes 'Effusion,No Finding'"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with --classes: not said again
        picked = open_catalog(str(tmp_path / "d"), csv_opt="Data_Entry_2017.csv", classes="No Finding,Effusion")
    assert picked.class_names == ["No Finding", "Effusion"] and picked.labels.tolist() == [1, 0]
    (tmp_path / "d" / "list.csv").write_text("image,category,source,\na.jpg,cat,web,\nb.jpg,dog,web,\nc.jpg,dog,x,\n")
    assert open_catalog(str(tmp_path / "d"), csv_opt="list.csv").class_names == ["cat", "dog"]
    (tmp_path / "d" / "list.csv").write_text("image,source,\na.jpg,web,\nb.jpg,web,\nc.jpg,x,\n")  # the last named
    assert open_catalog(str(tmp_path / "d"), csv_opt="list.csv").class_names == ["web", "x"]
    # Kaggle's Pokemon list (Name,Type1,Type2): the last column, taken by default, is empty where a Pokemon has one
    # type; the error said to fill it in, not that another column may be named
    (tmp_path / "d" / "list.csv").write_text("Name,Type1,Type2\na,Grass,Poison\nb,Fire,\nc,Water,\n")
    with pytest.raises(
        DataError,
        match=r"row 3 \('b'\) has no label in column 'Type2' \(the last, taken as no "
        r"column is named label, class ...: --csv-label-col names another of Type1\); fill",
    ), pytest.warns(UserWarning, match=r"the labels are column 'Type2' \(the last: "):  # fmt: skip
        open_catalog(str(tmp_path / "d"), csv_opt="list.csv")
    with pytest.raises(DataError, match=r"row 3 \('b'\) has no label in column 'Type2'; fill it in"):  # as named
        open_catalog(str(tmp_path / "d"), csv_opt="list.csv", label_col="Type2")
    types = open_catalog(str(tmp_path / "d"), csv_opt="list.csv", label_col="Type1")
    assert types.class_names == ["Fire", "Grass", "Water"]
    # PAD-UFES-20's metadata.csv (26 columns, the labels in `diagnostic`, the last `biopsed`): the last was taken, in
    # silence, as the label; where it is taken by default, or several columns are named as labels (ISIC 2020's
    # `diagnosis` and `target`), it is said which, with the others
    (tmp_path / "d" / "list.csv").write_text("patient_id,age,diagnostic,img_id,biopsed\np1,40,BCC,a.jpg,True\n"
                                             "p2,50,NEV,b.jpg,False\np3,60,NEV,c.jpg,True\n")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_catalog(str(tmp_path / "d"), csv_opt="list.csv").class_names == ["BCC", "NEV"]
    (tmp_path / "d" / "list.csv").write_text("patient_id,age,diag,img_id,biopsed\np1,40,BCC,a.jpg,True\n"
                                             "p2,50,NEV,b.jpg,False\np3,60,NEV,c.jpg,True\n")  # fmt: skip
    with pytest.warns(UserWarning) as seen:
        assert open_catalog(str(tmp_path / "d"), csv_opt="list.csv").class_names == ["False", "True"]
    assert [str(w.message) for w in seen] == [f"--csv {tmp_path / 'd' / 'list.csv'}: the labels are column 'biopsed' "
        "(the last: none is named label, labels, target, class, category, diagnosis ...); --csv-label-col names "
        "another: patient_id, age, diag"]  # fmt: skip
    (tmp_path / "d" / "list.csv").write_text("image_name,diagnosis,target\na,nevus,0\nb,melanoma,1\nc,nevus,0\n")
    with pytest.warns(UserWarning, match=r"list.csv: the labels are column 'target' \(the first named as labels\); "
                                         r"--csv-label-col names another: diagnosis$"):  # fmt: skip
        assert open_catalog(str(tmp_path / "d"), csv_opt="list.csv").class_names == ["0", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named: nothing to say
        open_catalog(str(tmp_path / "d"), csv_opt="list.csv", label_col="diagnosis")


def test_csv_unknown_column(tmp_path):
    write_isic(tmp_path / "d", [("a", 0)])
    with pytest.raises(DataError, match="--csv-label-col 'nope'"):
        open_catalog(str(tmp_path / "d"), label_col="nope")


def test_folders_made_of_symbolic_links(tmp_path):
    """A data set put together from links (a class folder, or a folder inside one, linking to images kept
    elsewhere) is read as torchvision's ImageFolder reads it, links followed: a linked sub-folder was passed over
    (a class of only such links "held no images"), and so was an ISIC Images/ folder's. A link back up the tree
    and a second link to a folder already read are passed over, and a walk of them ends."""
    store = make_folder(tmp_path / "store", n_per_class=3, size=(8, 8), classes=["cats", "dogs", "more"])
    root = tmp_path / "pets"
    (root / "dog").mkdir(parents=True)
    (root / "cat").symlink_to(store / "cats")  # a linked class folder (read before too)
    (root / "dog" / "mine").symlink_to(store / "dogs")
    (root / "dog" / "again").symlink_to(store / "dogs")  # the same folder twice: read once
    (root / "dog" / "up").symlink_to(root)  # a cycle, which would take in the cats
    (root / "dog" / ".hidden").symlink_to(store / "more")
    (root / "cat" / "sub").mkdir()
    (root / "cat" / "sub" / "more").symlink_to(store / "more")
    cat = open_catalog(str(root))
    assert cat.class_names == ["cat", "dog"] and cat.labels.tolist() == [0] * 6 + [1] * 3
    assert [Path(n).parent.name for n in cat.names] == ["cat"] * 3 + ["more"] * 3 + ["again"] * 3
    # the CSV form: the names are looked for in linked folders too
    write_isic(tmp_path / "isic", [("a", 0), ("b", 1)])
    (tmp_path / "isic" / "Images" / "part2").symlink_to(store / "dogs")
    with open(tmp_path / "isic" / "train_data.csv", "a") as f:
        f.write("dogs_000,p,1\ndogs_002,p,0\n")
    cat = open_catalog(str(tmp_path / "isic"))
    assert len(cat) == 4 and Path(cat.names[3]).name == "dogs_002.png" and cat.labels.tolist() == [0, 1, 1, 0]


def test_class_subset(image_folder):
    cat = open_catalog(str(image_folder), classes="stripes,circle")
    assert cat.class_names == ["stripes", "circle"] and len(cat) == 16
    assert sorted(set(cat.labels.tolist())) == [0, 1]
    assert all(("stripes" in n) == (lab == 0) for n, lab in zip(cat.names, cat.labels))
    with pytest.raises(DataError, match="--classes: dog not in the data"):
        open_catalog(str(image_folder), classes="dog")


def test_class_ranges(tmp_path):
    """START:END picks positions in the sorted class list (the ImageNet ACGAN's classes_idx=(10, 20)), END excluded;
    ranges and names mix; a class literally named like a range is taken by name."""
    names = [f"n{k:08d}" for k in range(25)]
    root = make_folder(tmp_path / "imagenet", n_per_class=1, size=(8, 8), classes=names)
    cat = open_catalog(str(root), classes="10:20")
    assert cat.class_names == names[10:20] and len(cat) == 10 and cat.labels.tolist() == list(range(10))
    assert open_catalog(str(root), classes="n00000003,0:2").class_names == [names[3], names[0], names[1]]
    for bad, msg in (("5:5", "START < END <= 25"), ("20:26", "START < END <= 25"), ("0:2,n00000001", "named twice"),
                     (" , ", "--classes ' , ' names no class")):  # (was "no images found") # fmt: skip
        with pytest.raises(DataError, match=msg):
            open_catalog(str(root), classes=bad)
    odd = make_folder(tmp_path / "odd", n_per_class=1, size=(8, 8), classes=("1:2", "a", "b"))
    assert open_catalog(str(odd), classes="1:2").class_names == ["1:2"]


def test_class_subset_lists_only_its_folders(tmp_path, monkeypatch):
    """--classes on an image folder walks only the class folders it names (a few of ImageNet's 1,000 are listed
    at once); the catalog is the one made by listing everything and keeping those classes, in --classes' order.
    Files anywhere under a class folder count; hidden files and folders do not."""
    names = [f"n{k:08d}" for k in range(12)]
    root = make_folder(tmp_path / "imagenet", n_per_class=2, size=(8, 8), classes=names)
    (root / names[4] / "sub" / "deeper").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / names[4] / "sub" / "deeper" / "x.JPEG")
    (root / names[4] / ".cache").mkdir()
    Image.new("RGB", (8, 8)).save(root / names[4] / ".cache" / "hidden.png")
    Image.new("RGB", (8, 8)).save(root / names[4] / ".hidden.png")
    (root / "n99999999").mkdir()  # an empty class folder: an error when listed
    with pytest.raises(DataError, match="n99999999 holds no images"):
        open_catalog(str(root))
    walked = []
    real = folders_mod._images_under
    monkeypatch.setattr(folders_mod, "_images_under", lambda d, *more: walked.append(d.name) or real(d, *more))
    cat = open_catalog(str(root), classes="n00000007,3:5")
    assert sorted(walked) == [names[3], names[4], names[7]]
    assert cat.class_names == [names[7], names[3], names[4]] and len(cat) == 7
    assert [Path(n).parent.name for n in cat.names] == [names[3]] * 2 + [names[4]] * 2 + ["deeper"] + [names[7]] * 2
    assert cat.labels.tolist() == [1, 1, 2, 2, 2, 0, 0]
    with pytest.raises(DataError, match=r"--classes: n00000099 not in the data \(classes: n00000000, n00000001"):
        open_catalog(str(root), classes="n00000099")
    # ImageNet's 1,000 classes were all listed in the line; and a near miss is named
    (root / "n01440764").mkdir()
    Image.new("RGB", (8, 8)).save(root / "n01440764" / "x.JPEG")
    for n in range(12, 40):
        shutil.copytree(root / names[0], root / f"n{n:08d}")
    with pytest.raises(DataError) as e:
        open_catalog(str(root), classes="n0144076,n00000003")
    assert str(e.value) == ("--classes: n0144076 not in the data (classes: " + ", ".join(f"n{n:08d}" for n in range(20))
                            + " ... (42 in all)); did you mean n01440764?")  # fmt: skip


def test_avif_images_are_read_where_pillow_reads_them(tmp_path, monkeypatch):
    """AVIF (web images): listed and decoded where Pillow reads it (11.3 and newer); a folder of them was "holds no
    images". Where this Pillow does not, they are passed over, and the line says which Pillow reads them."""
    rng, pixels = np.random.default_rng(1), {}
    for c in ("a", "b"):
        (tmp_path / "web" / c).mkdir(parents=True)
        for i in range(3):
            ramp = np.linspace(0, 1, 30)[None, :, None] * np.linspace(0, 1, 24)[:, None, None]  # smooth: lossy-safe
            pixels[c, i] = (ramp * rng.integers(60, 256, 3) + rng.integers(0, 60, 3)).astype(np.uint8)
            im = Image.fromarray(pixels[c, i])
            if data_mod.pil_reads("avif"):
                im.save(tmp_path / "web" / c / f"{i}.avif", quality=100)
            else:
                (tmp_path / "web" / c / f"{i}.avif").write_bytes(b"\x00\x00\x00\x18ftypavif")
        im.save(tmp_path / "web" / c / "x.png")
    if data_mod.pil_reads("avif"):
        cat = open_catalog(str(tmp_path / "web"))
        x, y = decode_all(cat, 24, 3, workers=0, log=lambda m: None)
        assert len(cat) == 8 and y.tolist() == [0] * 4 + [1] * 4
        with Image.open(tmp_path / "web" / "a" / "1.avif") as im:  # short side 24: only the centre crop
            assert torch.equal(x[1], torch.as_tensor(np.array(im.convert("RGB"))[:, 3:27]))
        assert (x[1].int() - torch.as_tensor(pixels["a", 1][:, 3:27]).int()).abs().float().mean() < 4  # (lossy)
    monkeypatch.setattr(data_mod, "IMAGE_EXTS", tuple(e for e in data_mod.IMAGE_EXTS if e != ".avif"))
    said = []
    assert len(open_catalog(str(tmp_path / "web"), log=said.append)) == 2
    assert said == [f"--data {tmp_path / 'web'}: passed over 6 file(s) of kinds it does not read as images: .avif (6) "
                    "(.avif: Pillow 11.3 or newer reads it, `pip install -U pillow`)"]  # fmt: skip
    dicom = " (.dcm: DICOM, which fastacgan does not read: save them as PNG first (pydicom's dcmread(f).pixel_array))"
    (tmp_path / "web" / "a" / "scan.dcm").write_bytes(b"DICM")  # RSNA's chest X-rays, a medical folder's scans
    said.clear()
    assert len(open_catalog(str(tmp_path / "web"), log=said.append)) == 2
    avif = " (.avif: Pillow 11.3 or newer reads it, `pip install -U pillow`)"
    assert said[0].endswith(f".avif (6), .dcm (1){avif}{dicom}")
    (tmp_path / "scans" / "PNEUMONIA").mkdir(parents=True)
    (tmp_path / "scans" / "PNEUMONIA" / "0.dcm").write_bytes(b"DICM")
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "scans"))
    assert str(e.value).endswith(f"; it holds .dcm (1){dicom}")
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "scans" / "PNEUMONIA"))
    assert str(e.value).endswith(f"no class folders found; expected {tmp_path / 'scans' / 'PNEUMONIA'}/<class>/<image>"
                                 f"{dicom}")  # fmt: skip
    # NIfTI volumes (BraTS-like MRI: .nii.gz, counted as such; it said ".gz (2)", no hint), beside .nii; SVG drawings
    nifti = (
        " (.nii.gz, .nii: NIfTI volumes (MRI, CT), which fastacgan does not read: save their slices as PNG "
        "first (SimpleITK's sitk.GetArrayFromImage(sitk.ReadImage(f)) gives a volume's array, slices first))"
    )
    (tmp_path / "mri" / "glioma").mkdir(parents=True)
    for name in ("BraTS_001_t1.nii.gz", "BraTS_002_t1.nii.gz", "BraTS_003_t1.nii"):
        (tmp_path / "mri" / "glioma" / name).write_bytes(b"\x1f\x8b" if name.endswith(".gz") else b"\x5c\x01")
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "mri"))
    assert str(e.value).endswith(f"; it holds .nii.gz (2), .nii (1){nifti}")
    shutil.make_archive(str(tmp_path / "mri_zip"), "zip", tmp_path / "mri")
    Image.new("L", (8, 8)).save(tmp_path / "mri" / "glioma" / "scan.png")
    (tmp_path / "mri" / "icons").mkdir()
    (tmp_path / "mri" / "icons" / "logo.svg").write_text("<svg/>")
    Image.new("L", (8, 8)).save(tmp_path / "mri" / "icons" / "logo.png")
    said.clear()
    assert len(open_catalog(str(tmp_path / "mri"), log=said.append)) == 2
    assert said[0].endswith(f".nii.gz (2), .nii (1), .svg (1){nifti} (.svg: vector drawings, which fastacgan does not "
                            "read: render them as PNG first, e.g. `magick mogrify -format png *.svg`, or "
                            "`rsvg-convert` from librsvg)")  # fmt: skip
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "mri_zip.zip"))
    assert str(e.value).endswith(nifti), str(e.value)
    # TensorFlow Datasets' shards (cifar10-train.tfrecord-00000-of-00001: counted as ".tfrecord-00000-of-00001"),
    # zipped: read unpacked (tests/test_tfrecords.py)
    with zipfile.ZipFile(tmp_path / "cifar10.zip", "w") as zf:
        for part in ("train", "test"):
            zf.writestr(f"cifar10/3.0.2/cifar10-{part}.tfrecord-00000-of-00001", b"\x00" * 16)
        zf.writestr("cifar10/3.0.2/dataset_info.json", "{}")
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "cifar10.zip"))
    assert str(e.value).endswith(
        "it holds .tfrecord (2), .json (1) (.tfrecord: TFRecord files (TensorFlow Datasets', Kaggle's TPU sets), read "
        "unpacked: give the folder that holds them, a TensorFlow Datasets set's (~/tensorflow_datasets/cifar10), or "
        "one of them)"
    ), str(e.value)


def test_every_image_extension_pil_reads_is_listed_and_decoded(tmp_path):
    """.jfif and .jpe (JPEGs saved from browsers), and Netpbm's .pbm and .pnm: were passed over in silence (a class
    of .jfif files: "holds no images"; mixed with .jpg files: fewer images than the folder holds). Files of other
    kinds are counted by extension in a line (Windows' Thumbs.db and hidden files apart)."""
    rng = np.random.default_rng(0)
    saves = {".jfif": "JPEG", ".jpe": "JPEG", ".pbm": "PPM", ".pnm": "PPM", ".jpg": "JPEG"}
    for k, (ext, fmt) in enumerate(saves.items()):
        (tmp_path / "web" / f"c{k}").mkdir(parents=True)
        pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        im = Image.fromarray(pixels).convert("1" if ext == ".pbm" else "RGB")
        im.save(tmp_path / "web" / f"c{k}" / f"x{ext.upper() if k % 2 else ext}", format=fmt)
    cat, (x, y) = load(tmp_path / "web")
    assert len(cat) == 5 and y.tolist() == [0, 1, 2, 3, 4] and x.float().std() > 20
    # the files it does not read are counted by kind in a line at the start (iPhone photos: .heic)
    for name in ("IMG_1.HEIC", "IMG_2.heic", "notes.txt", "Thumbs.db", ".DS_Store"):
        (tmp_path / "web" / "c0" / name).write_bytes(b"x")
    said = []
    assert len(open_catalog(str(tmp_path / "web"), log=said.append)) == 5
    heif = (
        " (.heic: HEIF, as iPhones save photos, which Pillow does not read: convert them to JPEG first, e.g. "
        "`magick mogrify -format jpg *.heic`, or `heif-convert` from libheif)"
    )  # (what to do with them)
    assert said == [f"--data {tmp_path / 'web'}: passed over 3 file(s) of kinds it does not read as images: .heic (2), "
                    f".txt (1){heif}"]  # fmt: skip
    # and in archives of it (a zip, a tar, a compressed tar)
    import zipfile

    with zipfile.ZipFile(tmp_path / "web.zip", "w") as zf:
        for p in sorted((tmp_path / "web").rglob("*")):
            if p.is_file():
                zf.write(p, f"web/{p.relative_to(tmp_path / 'web')}")
    for mode, name in (("w", "web.tar"), ("w:gz", "web.tgz")):
        with tarfile.open(tmp_path / name, mode) as tf:
            tf.add(tmp_path / "web", arcname="web")
    for name in ("web.zip", "web.tar", "web.tgz"):
        said = []
        assert len(open_catalog(str(tmp_path / name), log=said.append)) == 5
        assert said == [f"--data {tmp_path / name}: passed over 3 file(s) of kinds it does not read as images: "
                        f".heic (2), .txt (1){heif}"], name  # fmt: skip


def test_a_folder_that_cannot_be_listed_is_named(image_folder, monkeypatch):
    """A sub-folder of a class folder that cannot be listed (no permission, a lost network mount) stops the listing
    with its name and the reason; os.walk's default passed it over, and its images were left out in silence."""
    import os

    (image_folder / "circle" / "2020").mkdir()
    shutil.copy(image_folder / "circle" / "circle_000.png", image_folder / "circle" / "2020" / "x.png")
    assert len(open_catalog(str(image_folder))) == 25
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("2020"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match="cannot list .*circle/2020: Permission denied"):
        open_catalog(str(image_folder))


def test_max_images(image_folder):
    """A seeded random subset; one that leaves a class without images says which (the model still has the class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twelve = open_catalog(str(image_folder), max_images=12, seed=3)
        assert len(twelve) == 12 and twelve.names == open_catalog(str(image_folder), max_images=12, seed=3).names
    for p in sorted((image_folder / "square").iterdir())[1:]:
        p.unlink()  # square keeps 1 image of 17
    with pytest.warns(UserWarning) as caught:
        cats = [open_catalog(str(image_folder), max_images=4, seed=s) for s in range(8)]
    lost = [c for c in cats if len(set(c.labels.tolist())) < 3]
    assert any(1 not in c.labels for c in lost) and len(caught) == len(lost)
    assert all(c.class_names == list(CLASSES) for c in cats)
    first = next(i for i, c in enumerate(lost) if 1 not in c.labels)
    assert str(caught[first].message).startswith("--max-images 4: the random subset holds no image of square (1 in the "
                                             "data); the model still has such a class")  # fmt: skip


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda p: None, "no such file or folder"),
        (lambda p: p.mkdir(), "no class folders"),
        (lambda p: (p / "cat").mkdir(parents=True), r"class folder .*cat holds no images"),
        (lambda p: p.write_text("x"), r"must be a \.zip or a tar \(\.tar, \.tar\.gz, \.tgz, \.tar\.bz2, \.tar\.xz\)"),
    ],
)
def test_bad_paths(tmp_path, setup, match):
    p = tmp_path / "data"
    setup(p)
    with pytest.raises(DataError, match=match):
        open_catalog(str(p))


def test_a_folder_of_no_images_beside_a_folder_of_classes_says_where_they_are(tmp_path):
    """CUB-200-2011 (CUB_200_2011/images/<class>/ beside attributes/*.txt; Food-101's images/ beside meta/ was one
    too: now read as torchvision reads it) and LSUN's databases in folders named otherwise (bedroom/data.mdb; LSUN's
    own, bedroom_train_lmdb/, are read) as --data: "class folder attributes holds no images", and nothing on what it
    holds or where the classes are."""
    birds = tmp_path / "CUB_200_2011"
    for cls in ("001.Black_footed_Albatross", "002.Laysan_Albatross"):
        (birds / "images" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(birds / "images" / cls / "1.jpg")
    (birds / "attributes").mkdir()
    for name in ("certainties.txt", "image_attribute_labels.txt", "class_attribute_labels_continuous.txt"):
        (birds / "attributes" / name).write_text("1 1\n")
    (birds / "images.txt").write_text("1 001.Black_footed_Albatross/1.jpg\n")
    with pytest.raises(DataError, match=rf"class folder {birds / 'attributes'} holds no images \(.*\); it holds "
                       rf"\.txt \(3\); {birds / 'images'} holds folders of images \(001\.Black_footed_Albatross, "
                       rf"...\): if those are the classes, give --data {birds / 'images'}$"):  # fmt: skip
        open_catalog(str(birds))
    dogs = tmp_path / "stanford-dogs"  # images/Images/<class>/ beside annotations/Annotation/<class>/ (no extension)
    for cls in ("n02085620-Chihuahua", "n02085782-Japanese_spaniel"):
        (dogs / "images" / "Images" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(dogs / "images" / "Images" / cls / f"{cls}_1.jpg")
        (dogs / "annotations" / "Annotation" / cls).mkdir(parents=True)
        (dogs / "annotations" / "Annotation" / cls / f"{cls}_1").write_text("<annotation/>")
    with pytest.raises(DataError, match=rf"; {dogs / 'images'} holds folders of images \(n02085620-Chihuahua, ...\): "
                       rf"if those are the classes, give --data {dogs / 'images'}$"):  # fmt: skip
        open_catalog(str(dogs))
    assert open_catalog(str(dogs / "images")).class_names == ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    lsun = tmp_path / "lsun" / "bedroom"  # LSUN's databases in folders not named as LSUN names them (now read: LSUN's)
    shutil.copytree(LSUN / "bedroom_val_lmdb", lsun)
    shutil.copytree(LSUN / "church_outdoor_val_lmdb", lsun.parent / "church")
    lmdb = (r"\(\.mdb: data\.mdb is an LMDB database, as LSUN ships its images: read unzipped, its folder as --data, "
            r"or the folder of several named as LSUN's are, bedroom_train_lmdb")  # fmt: skip
    with pytest.raises(DataError, match=rf"holds no images .*; it holds \.mdb \(2\) {lmdb}"), warnings.catch_warnings():
        warnings.simplefilter("error")
        open_catalog(str(lsun.parent))
    assert open_catalog(str(lsun)).class_names == ["bedroom"]


def test_class_folders_in_initial_letter_folders_as_sun397_ships_them(tmp_path):
    """SUN397 and Places365 keep their classes in folders of their initial letters (a/abbey/, a/apartment_building/
    outdoor/, b/bakery/shop/): as an image folder the classes were the letters, trained on in silence. Now the
    classes are the paths inside them, as torchvision's SUN397 names them; a set of letters (images in A/, B/ ...)
    keeps its letters."""
    sun = tmp_path / "SUN397"
    where = {"abbey": "a/abbey", "apartment_building/outdoor": "a/apartment_building/outdoor", "bakery/shop":
             "b/bakery/shop", "castle": "c/castle"}  # fmt: skip
    for k, rel in enumerate(where.values()):
        (sun / rel).mkdir(parents=True)
        for i in range(k + 1):
            Image.new("RGB", (8, 8), (k * 60, i, 0)).save(sun / rel / f"sun_{k}{i}.jpg")
    (sun / "ClassName.txt").write_text("".join(f"/{rel}\n" for rel in where.values()))
    (sun / "c" / "castle" / "notes.md").write_text("")
    lines = []
    cat = open_catalog(str(sun), log=lines.append)
    assert cat.class_names == sorted(where) and cat.labels.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert [Path(n).name for n in cat.names][:3] == ["sun_00.jpg", "sun_10.jpg", "sun_11.jpg"]
    assert any(
        f"{sun}'s folders are initial letters (a/, b/, c/ ...), as SUN397 and Places365 ship them: the classes"
        " are the folders in them (abbey, apartment_building/outdoor, bakery/shop ...: 4)" in m
        for m in lines
    )
    assert any("passed over 1 file(s) of kinds it does not read as images: .md (1)" in m for m in lines)
    sub = open_catalog(str(sun), classes="castle,abbey")
    assert sub.class_names == ["castle", "abbey"] and sub.labels.tolist() == [1, 0, 0, 0, 0]
    with tarfile.open(tmp_path / "SUN397.tar", "w") as tf:  # an archive of it (Places365's data_256.tar): the same
        tf.add(sun, arcname="SUN397")
    lines = []
    packed = open_catalog(str(tmp_path / "SUN397.tar"), log=lines.append)
    assert packed.class_names == cat.class_names and packed.labels.tolist() == cat.labels.tolist()
    assert any(f"{tmp_path / 'SUN397.tar'}'s folders are initial letters (a/, b/, c/ ...)" in m for m in lines)
    letters = tmp_path / "letters"  # handwritten letters, one folder each: the letters are the classes
    for c in "ABC":
        (letters / c / "more").mkdir(parents=True)
        Image.new("L", (8, 8)).save(letters / c / "1.png")
        Image.new("L", (8, 8)).save(letters / c / "more" / "2.png")
    assert open_catalog(str(letters)).class_names == ["A", "B", "C"]
    for c in "ABC":  # by writer inside each letter: still the letters (the writers' folders are no classes)
        (letters / c / "more").rename(letters / c / "writer_1")
        (letters / c / "1.png").rename(letters / c / "writer_1" / "1.png")
    assert open_catalog(str(letters)).class_names == ["A", "B", "C"]
    shutil.make_archive(str(letters), "zip", letters)
    assert open_catalog(str(tmp_path / "letters.zip")).class_names == ["A", "B", "C"]


def test_class_folders_that_number_shards_are_said_to_be_no_classes(tmp_path):
    """FFHQ's images1024x1024/ holds 00000/, 01000/ ... 69000/, shards of 1,000 images of one unlabelled set: an
    AC-GAN trained on them as 70 classes, in silence. Numbered classes of another kind (MNIST's 0-9, years) are
    not shards."""
    for names, said in ((["00000", "01000", "02000"], True), (["0", "1", "2"], False), (["1990", "1991", "1992"],
                        False), (["0000", "0100", "0300"], False)):  # fmt: skip
        root = tmp_path / "-".join(names)
        for n in names:
            (root / n).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / n / f"{n}.png")
        lines = []
        assert open_catalog(str(root), log=lines.append).class_names == names
        shutil.make_archive(str(root), "zip", root)  # the archive of it (Kaggle's FFHQ is a zip)
        assert open_catalog(f"{root}.zip", log=lines.append).class_names == names
        note = ("note: the class folders 00000, 01000, 02000 ... are numbered in steps of 1000, as the shards of one "
                "set are (FFHQ's images1024x1024/00000/, 01000/ ...): the AC-GAN learns them as classes, which such "
                "shards are not; give folders of classes, or --csv with the labels")  # fmt: skip
        assert lines == ([note] * 2 if said else []), names


def test_a_folder_of_images_without_class_folders_says_what_to_do(tmp_path):
    """Kaggle's Dogs vs. Cats (train/cat.0.jpg, train/dog.0.jpg: the class in the name) and ISIC 2020 (train/*.jpg
    beside train.csv): "no class folders found (it holds 6 loose images)", and nothing on what to do."""
    root = tmp_path / "train"
    root.mkdir()
    for name in ("cat.0.jpg", "cat.1.jpg", "cat.2.jpg", "dog.0.jpg", "dog.1.jpg", "dog (2).jpg"):
        Image.new("RGB", (8, 8)).save(root / name)
    start = f"--data {root}: no class folders found (it holds 6 loose images); expected {root}/<class>/<image>. "
    with pytest.raises(DataError) as e:
        open_catalog(str(root))
    assert str(e.value).startswith(start + f"Their names begin with what look like classes, cat (3), dog (3): put each "
                                   f"class's images in a folder of its own ({root}/cat/...), e.g.: cd ")  # fmt: skip
    sort = str(e.value).split(", e.g.: ", 1)[1]  # the command it gives sorts them (a copy of the folder, here)
    shutil.copytree(root, tmp_path / "sorted")
    sort = sort.replace(f"cd {root}", f"cd {tmp_path / 'sorted'}")
    subprocess.run(["bash", "-c", sort], check=True, timeout=60)
    sorted_cat = open_catalog(str(tmp_path / "sorted"))
    assert sorted_cat.class_names == ["cat", "dog"] and sorted_cat.labels.tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "train.csv").write_text("image_name,target\ncat.0,0\n")
    with pytest.raises(DataError) as e:
        open_catalog(str(root))
    assert str(e.value) == start + f"If a CSV labels them, give it: --data {root} --csv train.csv"
    for k, p in enumerate(sorted(root.iterdir())):  # a camera's names: how to read them as one class
        p.rename(root / f"IMG_{k:04d}.jpg")
    (tmp_path / "train.csv").unlink()
    shutil.rmtree(tmp_path / "sorted")
    with pytest.raises(DataError) as e:
        open_catalog(str(root))
    assert str(e.value) == start[:-2] + (". To train on them as one class (an unconditional GAN), give the folder that "
                                         f"holds it: --data {root.parent}")  # fmt: skip
    (tmp_path / "other").mkdir()  # beside another folder: a folder that holds it alone, made with a link
    with pytest.raises(DataError) as e:
        open_catalog(str(root))
    one = f"{root.name}_one_class"
    assert str(e.value).endswith(f"give a folder that holds it alone, e.g. {one}: mkdir {one} && ln -s {root} {one}/")
    cmd = str(e.value).rsplit(": ", 1)[1]
    made = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr
    single = open_catalog(str(tmp_path / one))  # what it says to do reads them, as one class
    assert single.class_names == [root.name] and len(single) == 6


def test_an_archive_of_images_named_by_class_says_so(tmp_path):
    """Kaggle's Dogs vs. Cats: train.zip of train/cat.0.jpg ... train/dog.0.jpg was one class, "train" (a zip of the
    images alone: "not inside a class folder"), and so was the folder of it beside test1.zip; now the error says
    their names begin with classes and what to do. A part of other names stays one class, as before."""
    import zipfile

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    (tmp_path / "dl").mkdir()
    with zipfile.ZipFile(tmp_path / "dl" / "train.zip", "w") as zf:
        for name in ("cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg", "dog.2.jpg"):
            zf.writestr(f"train/{name}", jpeg)
    with zipfile.ZipFile(tmp_path / "dl" / "test1.zip", "w") as zf:
        zf.writestr("test1/1.jpg", jpeg)
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as zf:
        for name in ("cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg"):
            zf.writestr(name, jpeg)
    said = ("Their names begin with what look like classes, {}: unpack it, put each class's images in a folder of "
            "its own ({}/...) and give the folder that holds them")  # fmt: skip
    for data in (tmp_path / "dl", tmp_path / "dl" / "train.zip"):
        with pytest.raises(DataError) as e:
            open_catalog(str(data))
        assert str(e.value) == (f"--data {tmp_path / 'dl' / 'train.zip'}: train/ in it holds images alone, no class "
                                "folders. " + said.format("dog (3), cat (2)", "train/dog"))  # fmt: skip
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "flat.zip"))
    assert str(e.value) == f"--data {tmp_path / 'flat.zip'}: it holds images alone, no class folders. " + said.format(
        "cat (2), dog (2)", "./cat")  # fmt: skip
    unpacked = tmp_path / "unpacked"  # both parts, unpacked or zipped together: classes train and test1, warned
    for name in ("train.zip", "test1.zip"):  # of with the hint that sorts them
        with zipfile.ZipFile(tmp_path / "dl" / name) as zf:
            zf.extractall(unpacked)
    shutil.make_archive(str(tmp_path / "both"), "zip", unpacked)
    for data in (unpacked, tmp_path / "both.zip"):
        with pytest.warns(UserWarning) as seen:
            assert open_catalog(str(data)).class_names == ["test1", "train"]
        msg = str(seen[0].message)
        assert msg.startswith(f"--data {data}: test1, train are named as a split set's parts but hold images alone")
        assert "begin with what look like classes, dog (3), cat (2)" in msg, msg
    assert msg.endswith("unpack it and put each class's images in a folder of its own")
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as zf:  # a part of images named otherwise: one class
        for i in range(3):
            zf.writestr(f"train/{i:06d}.jpg", jpeg)
    assert open_catalog(str(tmp_path / "faces.zip")).class_names == ["train"]


def test_imagenets_tar_of_tars_says_how_to_unpack_it(tmp_path):
    """ImageNet's ILSVRC2012_img_train.tar holds a tar a class (n01440764.tar ...): "the archive holds no images"
    said nothing of them; now it names them and the command that unpacks them into class folders (run here: what
    it makes reads as the classes)."""
    import tarfile

    (tmp_path / "dl").mkdir()
    for wnid in ("n01440764", "n01443537", "n01484850"):
        (tmp_path / "src" / wnid).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "src" / wnid / f"{wnid}_{i}.JPEG")
        with tarfile.open(tmp_path / "src" / f"{wnid}.tar", "w") as tf:
            for f in sorted((tmp_path / "src" / wnid).iterdir()):
                tf.add(f, arcname=f.name)
    with tarfile.open(tmp_path / "dl" / "ILSVRC2012_img_train.tar", "w") as tf:
        for f in sorted((tmp_path / "src").glob("*.tar")):
            tf.add(f, arcname=f.name)
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / "dl" / "ILSVRC2012_img_train.tar"))
    assert "it holds .tar (3): a tar a class, as ImageNet's training tar holds them; unpack each into a folder of " \
           "its name, then give --data train: mkdir train && tar xf " in str(e.value)  # fmt: skip
    cmd = str(e.value).split("then give --data train: ", 1)[1]
    made = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr
    cat = open_catalog(str(tmp_path / "train"))
    assert cat.class_names == ["n01440764", "n01443537", "n01484850"] and len(cat) == 6


def test_isic_2018_names_its_labels_in_the_folder_beside(tmp_path):
    """ISIC 2018 (Task 3) unpacks to ISIC2018_Task3_Training_Input/ (the images alone) beside
    ISIC2018_Task3_Training_GroundTruth/ (the one-hot CSV), and the same for Validation: given either the images or
    the folder of both, the error named no CSV; now the one of the same split, as --csv finds it."""
    root = tmp_path / "isic2018"
    for part, n in (("Training", 4), ("Validation", 2)):
        images, truth = root / f"ISIC2018_Task3_{part}_Input", root / f"ISIC2018_Task3_{part}_GroundTruth"
        images.mkdir(parents=True)
        truth.mkdir()
        for i in range(n):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(images / f"ISIC_{part[0]}{i:06d}.jpg")
        (truth / f"{truth.name}.csv").write_text("image,MEL,NV\n" + "".join(
            f"ISIC_{part[0]}{i:06d},{i % 2}.0,{1 - i % 2}.0\n" for i in range(n)))  # fmt: skip
        (images / "LICENSE.txt").write_text("CC-BY-NC")
    for part in ("Training", "Validation"):
        images, csv = root / f"ISIC2018_Task3_{part}_Input", f"ISIC2018_Task3_{part}_GroundTruth"
        hint = f"If a CSV labels them, give it: --data {images} --csv {csv}/{csv}.csv"
        with pytest.raises(DataError) as e:
            open_catalog(str(images))
        assert str(e.value).endswith(hint)
        cat = open_catalog(str(images), f"{csv}/{csv}.csv")  # what it names reads them
        assert cat.class_names == ["MEL", "NV"] and len(cat) == (4 if part == "Training" else 2)
    with pytest.raises(DataError) as e:
        open_catalog(str(root))
    truth = root / "ISIC2018_Task3_Training_GroundTruth"
    assert str(e.value).startswith(f"class folder {truth} holds no images")
    assert str(e.value).endswith(f"it holds .csv (1); {root / 'ISIC2018_Task3_Training_Input'} holds images alone. "
                                 + hint.replace("Validation", "Training"))  # fmt: skip
    downloads = tmp_path / "Downloads"  # a CSV in a folder beside of another name is another thing's
    (downloads / "holiday_photos").mkdir(parents=True)
    (downloads / "budget").mkdir()
    (downloads / "budget" / "costs.csv").write_text("item,cost\nfood,3\n")
    Image.new("RGB", (8, 8)).save(downloads / "holiday_photos" / "IMG_0001.jpg")
    with pytest.raises(DataError) as e:
        open_catalog(str(downloads / "holiday_photos"))
    assert "--csv" not in str(e.value)


def test_kaggle_competition_folders_name_the_labels_not_the_submission_template(tmp_path):
    """Kaggle's CIFAR-10 competition: train/ of loose 1.png ... beside trainLabels.csv (id,label) and
    sampleSubmission.csv (the test images' ids, each labelled cat). The error named sampleSubmission.csv (sorted
    first; trainLabels was not seen as the training split's); for test/ it named a CSV too, the training labels now
    (ids 1, 2, 3 are in both). A submission's template is no labels list, nor one named as the other split."""
    root = tmp_path / "cifar-10"
    for part, n in (("train", 6), ("test", 3)):
        (root / part).mkdir(parents=True)
        for i in range(1, n + 1):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / part / f"{i}.png")
    (root / "trainLabels.csv").write_text("id,label\n" + "".join(f"{i},{'frog' if i % 2 else 'truck'}\n"
                                                                  for i in range(1, 7)))  # fmt: skip
    (root / "sampleSubmission.csv").write_text("id,label\n" + "".join(f"{i},cat\n" for i in range(1, 4)))
    with pytest.raises(DataError) as e:
        open_catalog(str(root / "train"))
    assert str(e.value).endswith(f"If a CSV labels them, give it: --data {root / 'train'} --csv trainLabels.csv")
    cat = open_catalog(str(root / "train"), "trainLabels.csv")  # what it names reads them
    assert cat.class_names == ["frog", "truck"] and cat.labels.tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(DataError) as e:
        open_catalog(str(root / "test"))
    assert str(e.value).startswith(f"--data {root / 'test'}: no class folders found (it holds 3 loose images); "
                                   f"expected {root / 'test'}/<class>/<image>. To train on them as one")  # fmt: skip


def test_mnist_m_names_the_list_named_after_its_folder(tmp_path):
    """MNIST-M: mnist_m_train/ of images alone beside mnist_m_train_labels.txt (`00000000.png 5` lines); the error
    named no list (only CSVs were looked for); a README beside is not one."""
    root = tmp_path / "mnist_m"
    for part in ("train", "test"):
        (root / f"mnist_m_{part}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(root / f"mnist_m_{part}" / f"{i:08d}.png")
        (root / f"mnist_m_{part}_labels.txt").write_text("".join(f"{i:08d}.png {i % 2}\n" for i in range(4)))
    (root / "README.txt").write_text("MNIST-M: MNIST digits blended over BSDS500 patches\n")
    images = root / "mnist_m_train"
    with pytest.raises(DataError) as e:
        open_catalog(str(images))
    assert str(e.value).endswith(f"If a list labels them, give it: --data {images} --csv mnist_m_train_labels.txt")
    cat = open_catalog(str(images), "mnist_m_train_labels.txt")  # what it names reads them
    assert cat.class_names == ["0", "1"] and cat.labels.tolist() == [0, 1, 0, 1]
    (root / "mnist_m_train_labels.txt").unlink()
    with pytest.raises(DataError) as e:
        open_catalog(str(images))
    assert "--csv" not in str(e.value)  # (not the README, nor the test part's list)


@pytest.mark.parametrize(
    "name,hint",
    [
        ("set.tar.zst", " (a zstd-compressed tar: `zstd -d set.tar.zst` gives the .tar)"),
        ("Dataset.rar", " (a RAR archive, which is not read here: `unrar x Dataset.rar` unpacks it; give the folder)"),
        ("set.7z", " (a 7-Zip archive, which is not read here: `7z x set.7z` unpacks it; give the folder)"),
        ("train_data.csv", " (a CSV of labels goes to --csv: --data {tmp} --csv train_data.csv)"),
        ("metadata.jsonl", " (a CSV of labels goes to --csv: --data {tmp} --csv metadata.jsonl)"),
        ("cat/0001.jpg", " (one image: --data takes the folder of the class folders: {tmp}, if cat/ is one)"),
        ("Galaxy10_DECals.h5", " (an HDF5 file, which fastacgan does not read: save its images and labels with h5py "
         "as an .npz, np.savez('set.npz', x_train=f['images'][:], y_train=f['labels'][:]), and give that)"),
        ("quickdraw/cat.npy", " (an .npy file is read in its folder: --data {tmp}/quickdraw, where each .npy holds a "
         "class's images, or x_train.npy and y_train.npy the images and their labels)"),
        ("cifar10-train.array_record-00000-of-00001", " (.array_record: ArrayRecord files (TensorFlow Datasets' "
         "file_format='array_record'), which fastacgan does not read: prepare the set as TFRecord files (tfds.builder("
         "name, file_format='tfrecord').download_and_prepare()) and give its folder)"),
        ("mini-imagenet-cache-train.pkl", " (a Python pickle, which fastacgan does not load (unpickling a file can "
         "run code it holds): save its images and labels as an .npz, np.savez('set.npz', x_train=images, "
         "y_train=labels), and give that)"),
        ("notes.txt", ""),
    ],
)  # fmt: skip
def test_a_data_file_of_no_form_says_what_it_most_likely_meant(tmp_path, name, hint):
    """The labels' CSV or one image given as --data (for --csv, or the folder): only "a file must be a .zip or a
    tar ..."."""
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(DataError) as e:
        open_catalog(str(tmp_path / name))
    assert str(e.value) == (f"--data {tmp_path / name}: a file must be a .zip or a tar (.tar, .tar.gz, .tgz, .tar.bz2, "
                            ".tar.xz) of an image folder, a CIFAR python-version archive, an .npz with x_train and "
                            "y_train, a CSV of pixel rows and labels, SVHN's .mat, STL-10's _X.bin, USPS' .bz2, an "
                            "idx images file, a Parquet, Arrow or TFRecord file"
                            f"{hint.format(tmp=tmp_path)}")  # fmt: skip


@pytest.mark.parametrize(
    "data,said",
    [
        ("", "--data is empty: give an image folder, an archive, a data set's files or builtin:digits"),
        (
            "https://x.org/cifar10.tar.gz",
            "--data https://x.org/cifar10.tar.gz: no such file or folder; fastacgan "
            "reads local files and downloads nothing: download it, then give the file or folder",
        ),
        (
            "{tmp}/cat/*.jpg",
            "--data {tmp}/cat/*.jpg: no such file or folder; a pattern is not expanded here: give "
            "the folder that holds the images (or an archive)",
        ),
        (
            "CIFAR-10",
            "--data CIFAR-10: no such file or folder; fastacgan downloads nothing: CIFAR-10 is read from a "
            "downloaded copy, torchvision's download folder (its root), the cifar-*-python.tar.gz or an image "
            'folder of it (the README\'s "Training on your data"); builtin:digits is the built-in set',
        ),
        (
            "fashion_mnist",
            "downloads nothing: fashion_mnist is read from a downloaded copy, torchvision's download "
            "folder (its root), Keras' .npz, idx files or Kaggle's CSV",
        ),
        ("imagenet", "downloads nothing: imagenet is read from a downloaded copy, an image folder or an archive of"),
        ("oxford-iiit-pet", "from a downloaded copy, torchvision's download folder (its root) or its oxford-iiit-pet "),
        ("{tmp}/nowhere", "--data {tmp}/nowhere: no such file or folder"),
    ],
)
def test_a_data_that_is_not_there_says_what_it_most_likely_meant(tmp_path, monkeypatch, data, said):
    """`--data "$DIR"` with DIR unset listed the working folder as an image folder ("class folder bash_jobs.0 holds
    no images"); a URL, a quoted pattern or a data set's name were only "no such file or folder"."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        open_catalog(data.format(tmp=tmp_path))
    assert said.format(tmp=tmp_path) in str(e.value) and str(e.value).startswith("--data ")
    if data.endswith("nowhere"):  # no guess where there is nothing to go by
        assert str(e.value) == said.format(tmp=tmp_path)


def test_a_folder_of_a_split_sets_archives_is_read_as_split(image_folder, tmp_path):
    """The data set as downloaded (train.tar.gz and test.tar.gz side by side, as ../shared/data/cifar10-jpeg holds
    CIFAR-10): --data at their folder stopped with which archive to give; now it is a set split into parts, the
    training archive read (the run named after the folder), the other the held-out split. Archives that name no
    split (images.zip beside masks.zip) still name one to give."""
    import tarfile

    root = tmp_path / "downloads"
    root.mkdir()
    with tarfile.open(root / "train.tar.gz", "w:gz") as tar:
        tar.add(image_folder, arcname="data")
    with tarfile.open(root / "test.tar.gz", "w:gz") as tar:  # (a held-out part of one class, told apart)
        tar.add(image_folder / "circle", arcname="data/circle")
    (root / "README.md").write_text("CIFAR-10 as JPEG files\n")
    said = []
    cat = open_catalog(str(root), log=said.append)
    assert len(cat) == len(open_catalog(str(image_folder))) and cat.name == "downloads"
    assert cat.class_names == sorted(CLASSES) and all(n.startswith(f"{root / 'train.tar.gz'}:") for n in cat.names)
    assert said[0] == f"--data {root}: split into test.tar.gz, train.tar.gz; training on train.tar.gz"
    said.clear()
    held = open_catalog(str(root), log=said.append, split="test")
    assert held.class_names == ["circle"] and len(held) == len(list((image_folder / "circle").iterdir()))
    assert said[0] == f"--data {root}: split into test.tar.gz, train.tar.gz; held out: test.tar.gz"
    other = tmp_path / "seg"
    other.mkdir()
    for name in ("images.zip", "masks.zip"):
        shutil.make_archive(str(other / name[:-4]), "zip", image_folder)
    want = (r"no class folders found; expected .*seg/<class>/<image>\. It holds archives \(images\.zip, "
            r"masks\.zip\): give one as --data, e\.g\. --data .*seg/images\.zip$")  # fmt: skip
    with pytest.raises(DataError, match=want):
        open_catalog(str(other))


def test_very_large_images_are_read_or_skipped_in_the_run_s_words(tmp_path, monkeypatch, capsys):
    """PIL warns of an image of 89 to 179 megapixels ("could be decompression bomb DOS attack", in Python's form
    with its source path) and reads it; one beyond that is skipped, and the line now says what to do. PIL's limit
    is lowered here so that small images stand for them."""
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # warns over 100 pixels, refuses over 200
    for c in "ab":
        (tmp_path / "d" / c).mkdir(parents=True)
        for k in range(4):  # 0.png: 15 x 15 (refused), the others 12 x 12 (warned of)
            Image.new("RGB", (12, 12) if k else (15, 15), (60 * k, 0, 0)).save(tmp_path / "d" / c / f"{k}.png")
    args = ["--data", str(tmp_path / "d"), "--image-size", "8", "--width", "0.25", "--batch-size", "4", "--workers",
            "0", "--device", "cpu", "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(args) == 0
    out = capsys.readouterr()
    assert not [w for w in seen if w.category is Image.DecompressionBombWarning]  # 12 x 12: read, in silence
    assert "skipped 2 unreadable image(s) of 8" in out.out and "0.png: cannot decode image (Image size (225 pixels) " \
        "exceeds limit of 200 pixels, could be decompression bomb DOS attack; PIL reads no larger image: scale it " \
        "down first)" in out.out  # fmt: skip


def test_truncated_and_garbage_images(image_folder):
    victim = image_folder / "square" / "square_003.png"
    victim.write_bytes(victim.read_bytes()[:60])  # truncated
    (image_folder / "circle" / "junk.jpg").write_bytes(b"not an image at all")
    cat = open_catalog(str(image_folder))
    with pytest.warns(UserWarning, match="square_003.png"):
        x, y = decode_all(cat, 16, 3, workers=0, policy="skip", log=lambda m: None)
    assert len(x) == len(cat) - 2 and len(cat.skipped) == 2
    with pytest.raises(DataError, match=r"(junk.jpg|square_003.png): cannot decode.*--bad-images skip"):
        decode_all(cat, 16, 3, workers=0, policy="error", log=lambda m: None)


def test_decode_resizes_short_side_and_centre_crops():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 10:30] = 255  # the middle half is white
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    out = decode_image(buf.getvalue(), "x.png", 10, 3)
    assert out.shape == (10, 10, 3) and out.min() > 200  # the crop kept only the white middle


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows of `pixels` stored with that EXIF orientation (PIL's own mapping)."""
    from PIL import ImageOps

    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(turned(pixels, orientation)))))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("size", [40, 24])  # the native short side (no resize), and a resize with an odd crop margin
def test_exif_orientation_is_applied(orientation, size):
    """An image stored turned or mirrored, with the EXIF orientation that says so (phone and camera photos), is
    decoded upright, as DALI's decoder and image viewers show it: the same as decoding the upright image."""
    rng = np.random.default_rng(orientation)
    pixels = np.zeros((40, 62, 3), np.uint8)  # 62 x 40 -> 37 x 24 at size 24: a margin of 13, not split evenly
    pixels[:20, :15] = 255
    pixels[25:, 40:] = (0, 0, 200)
    pixels += rng.integers(0, 30, pixels.shape, dtype=np.uint8)
    upright = _upright(pixels, orientation)
    assert upright.shape[:2] == ((62, 40) if orientation >= 5 else (40, 62))
    plain = io.BytesIO()
    Image.fromarray(upright).save(plain, format="PNG")  # no EXIF: stored as shown
    want = decode_image(plain.getvalue(), "upright.png", size, 3).astype(int)
    got = decode_image(turned(pixels, orientation), "turned.png", size, 3).astype(int)
    assert got.shape == want.shape == (size, size, 3) and np.array_equal(got, want)
    if orientation > 1:  # the test can tell: the image as stored (orientation ignored) is far from upright
        stored = decode_image(turned(pixels, 1), "stored.png", size, 3).astype(int)
        assert np.abs(stored - want).max() > 100
    # a JPEG too (its EXIF block sits in an APP1 marker): against its own decoded pixels, turned upright
    jpeg = turned(pixels, orientation, "JPEG", quality=95)
    plain = io.BytesIO()
    Image.fromarray(_upright(np.asarray(Image.open(io.BytesIO(jpeg))), orientation)).save(plain, format="PNG")
    want = decode_image(plain.getvalue(), "upright.png", size, 3).astype(int)
    assert np.array_equal(decode_image(jpeg, "turned.jpg", size, 3).astype(int), want)


def test_unreadable_exif_keeps_the_image(monkeypatch):
    """An EXIF block that cannot be parsed costs the turn, not the image: its pixels decode as stored."""
    pixels = np.zeros((40, 62, 3), np.uint8)
    pixels[:, :20] = 255
    blob = turned(pixels, 6, "JPEG", quality=95)
    as_stored = decode_image(turned(pixels, 1, "JPEG", quality=95), "stored.jpg", 24, 3)
    monkeypatch.setattr(Image.Image, "getexif", lambda self: (_ for _ in ()).throw(SyntaxError("corrupt EXIF")))
    assert np.array_equal(decode_image(blob, "corrupt.jpg", 24, 3), as_stored)


def test_large_turned_jpeg_is_drafted_and_upright():
    """The reduced-scale decode of a full-size photo (draft) and the EXIF turn together."""
    big = np.asarray(Image.open(io.BytesIO(_photo_jpeg(800, 600))))
    got = decode_image(turned(big, 6, "JPEG", quality=90), "photo.jpg", 32, 3).astype(int)
    want_im = Image.fromarray(np.ascontiguousarray(np.rot90(big, -1))).resize((32, 43), Image.BICUBIC)
    want = np.asarray(want_im.crop((0, 6, 32, 38))).astype(int)  # turned 90 degrees clockwise: 600 x 800
    assert got.shape == (32, 32, 3) and np.abs(got - want).mean() < 1.5


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    """16-bit greyscale PNGs (scans, X-rays): v -> round(v * 255 / 65535), as DALI converts them. PIL's own
    conversion to 8 bits clips every value above 255, which would make nearly every pixel white."""
    v = grey16(32, 32)
    buf = io.BytesIO()
    Image.fromarray(v).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    want = (v.astype(np.int64) + 128) // 257
    assert np.array_equal(want, np.round(v.astype(np.float64) * 255 / 65535))
    grey = decode_image(buf.getvalue(), "deep.png", 32, 1)
    assert grey.dtype == np.uint8 and np.array_equal(grey[:, :, 0], want)
    rgb = decode_image(buf.getvalue(), "deep.png", 32, 3)
    assert all(np.array_equal(rgb[:, :, c], want) for c in range(3))
    half = decode_image(buf.getvalue(), "deep.png", 16, 1).astype(float)
    assert abs(half.mean() - want.mean()) < 2 and (half == 255).mean() < 0.05
    # a folder of them is greyscale
    for k in ("a", "b"):
        (tmp_path / "scans" / k).mkdir(parents=True)
        Image.fromarray(grey16(20, 24, seed=len(k))).save(tmp_path / "scans" / k / "x.png")
    assert probe(open_catalog(str(tmp_path / "scans"))) == (20, 1)


def test_float_greyscale_is_read_as_0_to_1(tmp_path):
    """32-bit float TIFFs (microscopy, scans) hold [0, 1]: round(v * 255) computed in float32 with halves up, as
    DALI reads them (the loaders' test checks the two bit for bit). PIL's own conversion clips such an image to
    black. NaN reads as 0. A float image with values outside [0, 1] is clipped, and the probe warns about it."""
    v = float_grey(24, 30)
    v[1, 0] = np.nan
    buf = io.BytesIO()
    Image.fromarray(v, "F").save(buf, format="TIFF")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "F"
    assert np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L")).max() <= 1  # PIL's conversion: black
    want = np.floor(np.nan_to_num(v) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    assert want[0, :4].tolist() == [1, 2, 128, 255] and want[1, 0] == 0
    got = decode_image(buf.getvalue(), "scan.tif", 24, 1)
    assert np.array_equal(got[:, :, 0], want[:, 3:27])  # 24 x 30: the centre crop drops 3 columns each side
    assert np.array_equal(decode_image(buf.getvalue(), "scan.tif", 24, 3), np.repeat(got, 3, axis=2))
    # a folder of them: greyscale; silent when in range, a warning naming the file when not
    for k in ("a", "b"):
        (tmp_path / "f" / k).mkdir(parents=True)
        Image.fromarray(float_grey(20, 20, seed=len(k)), "F").save(tmp_path / "f" / k / "x.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe(open_catalog(str(tmp_path / "f"))) == (20, 1)
    Image.fromarray(float_grey(20, 20) * 255, "F").save(tmp_path / "f" / "b" / "x.tif")
    with pytest.warns(UserWarning, match=r"b/x\.tif is a float image with values from 0 to 255: .* clipped"):
        assert probe(open_catalog(str(tmp_path / "f"))) == (20, 1)
    assert (decode_image((tmp_path / "f" / "b" / "x.tif").read_bytes(), "x.tif", 20, 1) == 255).mean() > 0.9


def test_transparent_images_are_said(tmp_path):
    """Sprites on a transparent background (Kaggle's Pokemon PNGs) are read as the colour stored under the
    transparency, often black, as torchvision and DALI read them: the probe says so, with how to put them on
    white; in silence before. Images whose alpha is opaque everywhere, and images without alpha, are not said."""
    rng = np.random.default_rng(3)
    for c in ("fire", "water"):
        (tmp_path / "mon" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "mon" / c / "a.jpg")
        Image.new("RGBA", (20, 20), (9, 99, 9, 255)).save(tmp_path / "mon" / c / "b.png")  # opaque alpha
    said = []
    assert probe(open_catalog(str(tmp_path / "mon")), log=said.append) == (20, 3) and said == []
    sprite = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    sprite.paste((200, 40, 40, 255), (5, 5, 15, 15))
    sprite.save(tmp_path / "mon" / "fire" / "c.png")
    gif = Image.new("P", (20, 20), 0)  # a GIF's transparent colour: index 0
    gif.putpalette([0, 0, 0, 200, 200, 0] + [0] * 762)
    gif.paste(1, (4, 4, 16, 16))
    gif.save(tmp_path / "mon" / "water" / "d.gif", transparency=0)
    said = []
    assert probe(open_catalog(str(tmp_path / "mon")), log=said.append) == (20, 3)
    assert said == [f"note: 2 of the 6 images probed have transparent pixels ({tmp_path / 'mon' / 'fire' / 'c.png'} "
                    "...): transparency is dropped, as torchvision's and DALI's decoders drop it, leaving the colour "
                    "stored under it, often black; to put such images on white, run on a copy of them: magick "
                    "mogrify -background white -alpha remove -alpha off *.png"]  # fmt: skip
    assert decode_image((tmp_path / "mon" / "fire" / "c.png").read_bytes(), "c.png", 20, 3)[0, 0].tolist() == [0, 0, 0]


def _photo_jpeg(w: int, h: int, seed: int = 0) -> bytes:
    """A large JPEG with smooth structure and some grain, like a photo."""
    import io

    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    pixels = np.asarray(base).astype(np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_large_jpeg_is_decoded_at_reduced_scale_and_matches_a_full_decode(monkeypatch):
    import io

    from PIL import JpegImagePlugin

    data = _photo_jpeg(800, 600)
    drafted = []
    full_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        out = full_draft(self, mode, size)
        drafted.append((mode, self.size))
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    for channels, mode in ((3, "RGB"), (1, "L")):
        out = decode_image(data, "big.jpg", 32, channels)
        # the reference: a full-size decode, then the same resize and centre crop
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert(mode).resize((43, 32), Image.BICUBIC)
        ref = np.asarray(im.crop((6, 0, 38, 32))).reshape(32, 32, channels)  # a margin of 11: 6 left, 5 right
        diff = np.abs(out.astype(int) - ref)
        assert out.shape == (32, 32, channels) and diff.mean() < 1.0 and diff.max() <= 4, (diff.mean(), diff.max())
    # 600 / 4 = 150 >= 3 x 32 > 600 / 8: decoded at a quarter of the size
    assert drafted == [("RGB", (200, 150)), ("L", (200, 150))]
    assert decode_image(data, "big.jpg", 32, 3).shape == (32, 32, 3)
    drafted.clear()
    decode_image(data, "big.jpg", 128, 3)  # 600 < 2 x 3 x 128: a full decode, no draft asked
    assert drafted == []
    with pytest.raises(DataError, match="cut.jpg: cannot decode"):
        decode_image(data[: len(data) // 2], "cut.jpg", 32, 3)


def test_builtin_digits():
    cat = open_catalog("builtin:digits:300", image_size=20)
    assert cat.images.shape == (300, 20, 20, 1) and cat.class_names == [str(i) for i in range(10)]
    assert np.bincount(cat.labels).tolist() == [30] * 10
    again = open_catalog("builtin:digits:300", image_size=20)
    assert torch.equal(cat.images, again.images)  # deterministic
    with pytest.raises(DataError, match="unknown built-in"):
        open_catalog("builtin:faces")
    for bad in ("abc", "0", "-5"):  # a traceback for -5, a bare "invalid literal for int()" for abc
        with pytest.raises(DataError, match=f"builtin:digits:{bad}: COUNT in builtin:digits:COUNT must be a whole"):
            open_catalog(f"builtin:digits:{bad}")


def test_builtin_digits_have_a_test_split_that_training_never_saw():
    """A fifth as many digits (at least 10), balanced, drawn from another seed: no image of it is a training image."""
    train = open_catalog("builtin:digits:300", image_size=20)
    test = open_catalog("builtin:digits:300", image_size=20, split="test")
    assert test.images.shape == (60, 20, 20, 1) and test.class_names == train.class_names
    assert np.bincount(test.labels).tolist() == [6] * 10
    assert torch.equal(test.images, open_catalog("builtin:digits:300", image_size=20, split="test").images)
    seen = {bytes(im.numpy()) for im in train.images}
    assert not any(bytes(im.numpy()) in seen for im in test.images)
    assert not set(test.names) & set(train.names)
    assert len(open_catalog("builtin:digits:20", image_size=20, split="test")) == 10


def test_builtin_digits_at_a_large_size_keep_memory_bounded():
    """The built-in digits are drawn in chunks whose temporaries stay small at any --image-size (before: 1,000
    images a chunk, 3 GB for 300 digits at 128x128, an out-of-memory kill at 1000x1000); the chunking changes no
    pixel."""
    from fastacgan.builtin import render_digits

    assert torch.equal(render_digits(40, 24, chunk=1)[0], render_digits(40, 24, chunk=1000)[0])
    code = ("import resource, torch; from fastacgan.builtin import render_digits; "
            "x, _ = render_digits(100, 256); assert x.shape == (100, 256, 256, 1) and x.float().mean() > 1; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 1500  # MB at peak, torch included (before: about 4 GB)


def test_builtin_digits_larger_than_128_are_drawn_at_128_and_resized(monkeypatch):
    """Drawing takes time with the pixels (10,000 digits: 2 s at 28x28, 50 s at 128x128, over 10 minutes at
    512x512, with no line after "(a few seconds)"): larger sizes are drawn at 128 and resized as decoded images
    are; a drawing that takes a while says how far it is."""
    import fastacgan.builtin as builtin
    from fastacgan.decode import fit_images

    said = []
    cat = open_catalog("builtin:digits:20", image_size=136, log=said.append)
    drawn, labels = builtin.render_digits(20, 128)
    assert torch.equal(cat.images, fit_images(drawn, 136, 1)) and cat.labels.tolist() == labels.tolist()
    assert said == ["drawing the built-in data set builtin:digits:20 at 136x136",
                    "resizing images 128x128x1 -> 136x136x1: 20/20"]  # fmt: skip
    assert open_catalog("builtin:digits:20", image_size=128).images.shape == (20, 128, 128, 1)
    monkeypatch.setattr(builtin, "Every", lambda: lambda: True)  # a line at every chunk, as after 5 s each
    said = []
    builtin.render_digits(30, 24, chunk=10, log=said.append)
    assert said == [f"drawing digits at 24x24: {n}/30" for n in (10, 20, 30)]


def test_epoch_order_visits_every_image_once_and_is_seeded():
    perm, flips = epoch_order(100, seed=3, epoch=2)
    assert sorted(perm.tolist()) == list(range(100))
    assert torch.equal(perm, epoch_order(100, 3, 2)[0])
    assert not torch.equal(perm, epoch_order(100, 3, 3)[0])
    assert 20 < int(flips.sum()) < 80


def test_memory_and_stream_loaders_serve_the_same_batches(image_folder):
    cat = open_catalog(str(image_folder))
    x, y = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    dev = torch.device("cpu")
    mem = MemoryLoader(x, y, 5, seed=1, device=dev, hflip=True)
    stream = StreamLoader(cat, 16, 3, 5, seed=1, device=dev, hflip=True, workers=2, policy="skip")
    assert mem.steps_per_epoch == stream.steps_per_epoch == 4  # 24 images, drop-last
    a, b = list(mem.epoch(0)), list(stream.epoch(0))
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    seen = torch.cat([xb.flatten(1) for xb, _ in b])
    assert len(seen) == 20  # 4 batches of 5, no image twice (each image differs)
    assert len({tuple(r.tolist()) for r in seen}) == 20
    # the next epoch (another order) from the same worker processes: none is started per epoch
    workers = [w.pid for w in stream.loader._iterator._workers]
    for (xa, ya), (xb, yb) in zip(list(mem.epoch(1)), list(stream.epoch(1)), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert [w.pid for w in stream.loader._iterator._workers] == workers and len(workers) == 2
    assert all(w.is_alive() for w in stream.loader._iterator._workers)
    # an epoch left half-read (a run stopped at its last step) does not leak into the next
    it = stream.epoch(2)
    next(it), next(it)
    for (xa, ya), (xb, yb) in zip(list(mem.epoch(3)), list(stream.epoch(3)), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # starting mid-epoch yields the tail of the same epoch
    tail = list(mem.epoch(0, start_step=2))
    assert len(tail) == 2 and torch.equal(tail[0][0], a[2][0])
    with pytest.raises(DataError, match="--batch-size 64 is larger"):
        MemoryLoader(x, y, 64, 0, dev, False)


def test_hflip_flips_some_images(image_folder):
    cat = open_catalog(str(image_folder))
    x, y = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    plain = torch.cat([b for b, _ in MemoryLoader(x, y, 4, 0, torch.device("cpu"), False).epoch(0)])
    flipped = torch.cat([b for b, _ in MemoryLoader(x, y, 4, 0, torch.device("cpu"), True).epoch(0)])
    same = [torch.equal(p, f) for p, f in zip(plain, flipped)]
    mirrored = [torch.equal(p.flip(1), f) for p, f in zip(plain, flipped)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and not all(mirrored)


def test_to_model_input_range_and_layout():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(2, 4, 2, 3).contiguous()
    out = to_model_input(x, channels_last=True)
    assert out.shape == (2, 3, 4, 2) and out.is_contiguous(memory_format=torch.channels_last)
    assert out.min() == -1 and out.max() == 1
    assert to_model_input(x, channels_last=False).is_contiguous()
    # 1 channel: plain NCHW strides whatever is asked (the same bytes; what a step compiled with dynamic shapes
    # agrees on, see to_model_input)
    grey = torch.zeros(2, 4, 5, 1, dtype=torch.uint8)
    for cl in (False, True):
        assert to_model_input(grey, channels_last=cl).stride() == (20, 20, 5, 1)
    with pytest.raises(TypeError, match="expected a uint8"):  # every loader serves uint8; a float is a mistake
        to_model_input(x.float(), channels_last=False)


def test_zip_archives_read_like_folders(image_folder, tmp_path):
    """A .zip of an image folder (a Kaggle-style download) gives the folder's data set; macOS resource-fork junk and
    folder entries are ignored; forked workers each open the archive for themselves."""
    import zipfile

    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("shapes/", b"")
        for p in sorted(image_folder.rglob("*.png")):
            zf.write(p, f"shapes/{p.relative_to(image_folder)}")
            zf.writestr(f"__MACOSX/shapes/{p.parent.name}/._{p.name}", b"\x00\x05\x16\x07 junk")
    folder, zipped = open_catalog(str(image_folder)), open_catalog(str(archive))
    assert zipped.name == "shapes" and zipped.class_names == folder.class_names and len(zipped) == len(folder) == 24
    assert zipped.names[0] == f"{archive}:shapes/circle/circle_000.png"
    x_folder, y_folder = decode_all(folder, 16, 3, workers=0, log=lambda m: None)
    x_zip, y_zip = decode_all(zipped, 16, 3, workers=2, log=lambda m: None)
    assert torch.equal(x_zip, x_folder) and torch.equal(y_zip, y_folder)

    # a member whose bytes no longer match its CRC is a bad image like any other: named, skipped or fatal
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"IDAT", raw.index(b"shapes/square/square_002.png"))  # inside that member's stored PNG
    raw[at + 8] ^= 0xFF
    (tmp_path / "damaged.zip").write_bytes(bytes(raw))
    damaged = open_catalog(str(tmp_path / "damaged.zip"))
    with pytest.warns(UserWarning, match="square_002.png: cannot read \\(BadZipFile: Bad CRC-32"):
        x, _ = decode_all(damaged, 16, 3, workers=0, log=lambda m: None)
    assert len(x) == 23
    with pytest.raises(DataError, match="square_002.png: cannot read .*--bad-images skip"):
        decode_all(damaged, 16, 3, workers=0, policy="error", log=lambda m: None)

    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="bad.zip: cannot read the archive"):
        open_catalog(str(tmp_path / "bad.zip"))
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as zf:
        zf.write(image_folder / "circle" / "circle_000.png", "circle_000.png")
    with pytest.raises(DataError, match="circle_000.png is not inside a class folder.*or give the labels with --csv"):
        open_catalog(str(tmp_path / "flat.zip"))


def test_archives_label_images_as_their_folder_does(image_folder, tmp_path):
    """An archive of an image folder gives the folder's data set, whatever the archive's root: images in a
    sub-folder of a class folder belong to that class (before, an archive took the sub-folder as a class of its
    own), and hidden folders (.ipynb_checkpoints/) are passed over in both."""
    import zipfile

    (image_folder / "circle" / "2019").mkdir()
    shutil.copy(image_folder / "circle" / "circle_000.png", image_folder / "circle" / "2019" / "late.png")
    (image_folder / "square" / ".ipynb_checkpoints").mkdir()
    shutil.copy(image_folder / "square" / "square_000.png", image_folder / "square" / ".ipynb_checkpoints" / "x.png")
    folder = open_catalog(str(image_folder))
    assert folder.class_names == list(CLASSES) and len(folder) == 25
    assert folder.labels[folder.names.index(str(image_folder / "circle" / "2019" / "late.png"))] == 0
    files = sorted(p for p in image_folder.rglob("*.png"))
    with zipfile.ZipFile(tmp_path / "rooted.zip", "w") as a, zipfile.ZipFile(tmp_path / "bare.zip", "w") as b:
        for p in files:
            a.write(p, f"shapes/{p.relative_to(image_folder)}")
            b.write(p, str(p.relative_to(image_folder)))
    with tarfile.open(tmp_path / "dot.tar", "w") as tf:
        tf.add(image_folder, arcname=".")  # tar -C shapes -cf dot.tar .: members ./circle/...
    for archive in ("rooted.zip", "bare.zip", "dot.tar"):
        cat = open_catalog(str(tmp_path / archive))
        assert cat.class_names == folder.class_names and len(cat) == 25, archive
        by_name = dict(zip((n.split(":", 1)[1].removeprefix("shapes/").removeprefix("./") for n in cat.names),
                           cat.labels.tolist()))  # fmt: skip
        assert by_name == {str(Path(n).relative_to(image_folder)): v for n, v in zip(folder.names, folder.labels)}


def test_folders_that_systems_add_are_passed_over(image_folder, tmp_path):
    """Folders an OS or a NAS puts beside a set's own: __MACOSX/ (a Mac zip, unzipped: its resource forks were a
    class that "holds no images", a stop), a Synology NAS's @eaDir/ (JPEG thumbnails of every image, trained on as
    more images of the class), ext4's lost+found/ (a disk's root) and a drive's $RECYCLE.BIN/. Passed over as hidden
    folders are, in a folder and in an archive of it."""
    for junk in ("__MACOSX/circle", "lost+found", "$RECYCLE.BIN", "square/@eaDir/square_000.png"):
        (image_folder / junk).mkdir(parents=True)
    (image_folder / "__MACOSX" / "circle" / "._circle_000.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    shutil.copy(image_folder / "square" / "square_000.png", image_folder / "square/@eaDir/square_000.png/THUMB_M.jpg")
    with tarfile.open(tmp_path / "shapes.tar", "w") as tf:
        tf.add(image_folder, arcname="shapes")
    for data in (image_folder, tmp_path / "shapes.tar"):
        cat = open_catalog(str(data))
        assert cat.class_names == sorted(CLASSES) and len(cat) == 24, data
        assert not any("@eaDir" in n for n in cat.names)


def test_parts_of_a_split_set_beside_another_folder_are_classes_with_a_warning(image_folder, tmp_path):
    """The chest X-ray download (Kaggle): chest_xray/ holds train/, test/, val/ (each with NORMAL/, PNEUMONIA/) and a
    copy of them all in chest_xray/chest_xray/. The copy made the parts classes, a 4-class GAN on "chest_xray",
    "test", "train" and "val" (later with a warning): the copy is passed over, said, and the set read as split, in
    the folder and in an archive of it. Another folder beside the parts still makes them classes, with a warning
    that says what to do."""
    root = tmp_path / "chest_xray"
    for part in ("train", "test", "val"):
        shutil.copytree(image_folder, root / part)
        shutil.copytree(image_folder, root / "chest_xray" / part)
    with tarfile.open(tmp_path / "chest_xray.tar", "w") as tf:
        tf.add(root, arcname="chest_xray")
    for data in (root, tmp_path / "chest_xray.tar"):
        for split, part in (("train", "training on train/"), ("test", "held out: test/")):
            said = []
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                cat = open_catalog(str(data), log=said.append, split=split)
            assert cat.class_names == sorted(CLASSES) and len(cat) == 24
            assert all(f"/{split}/" in n for n in cat.names)
            assert said == [f"--data {data}: split into test, train, val (chest_xray/: a copy of them, passed over); "
                            f"{part}"]  # fmt: skip
    shutil.rmtree(root / "chest_xray")
    shutil.copytree(image_folder, root / "extra")  # beside the parts, folders of other names: no copy
    with tarfile.open(tmp_path / "chest_xray.tar", "w") as tf:
        tf.add(root, arcname="chest_xray")
    for data in (root, tmp_path / "chest_xray.tar"):
        with pytest.warns(UserWarning) as said:
            cat = open_catalog(str(data))
        assert cat.class_names == ["extra", "test", "train", "val"]
        assert [str(w.message) for w in said] == [
            f"--data {data}: test, train, val are read as classes beside extra, which is no part of a set split "
            f"into train/ and test/ or val/; if it is such a set, move extra out of {data}, or give the folder "
            "that holds only the parts"
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the set itself, and classes merely named so (images in them): no warning
        assert open_catalog(str(root / "train")).class_names == sorted(CLASSES)
        flat = tmp_path / "flat"
        for c in ("train", "test", "bus"):
            shutil.copytree(image_folder / "circle", flat / c)
        assert open_catalog(str(flat)).class_names == ["bus", "test", "train"]


def test_a_copy_of_the_set_nested_as_a_class_is_passed_over(image_folder, tmp_path):
    """Kaggle's Flowers Recognition: flowers/ holds daisy/, rose/ ... and a copy of them all in flowers/flowers/,
    which was one more class, "flowers", holding every other class's images. Passed over, said, in a folder and an
    archive; a class folder holding one folder named as another class, or other folders, is a class."""
    root = tmp_path / "flowers"
    shutil.copytree(image_folder, root)
    shutil.copytree(image_folder, root / "flowers")
    shutil.make_archive(str(tmp_path / "flowers"), "zip", tmp_path, "flowers")
    for data in (root, tmp_path / "flowers.zip"):
        said = []
        cat = open_catalog(str(data), log=said.append)
        assert cat.class_names == sorted(CLASSES) and len(cat) == 24
        assert not any("flowers/flowers" in n for n in cat.names)
        assert said == [f"note: --data {data}: flowers/ holds folders named as the other classes: a copy of the set, "
                        "as some downloads nest one; passed over, no class"]  # fmt: skip
    shutil.rmtree(root / "flowers")
    shutil.copytree(image_folder / "circle", root / "more" / "circle")  # one folder of a class's name: a class
    shutil.copytree(image_folder / "square", root / "more" / "squares")
    assert open_catalog(str(root)).class_names == sorted([*CLASSES, "more"])


def test_images_beside_the_class_folders_are_passed_over_in_an_archive_as_in_the_folder(image_folder, tmp_path):
    """One image beside the class folders (a preview.jpg next to circle/, square/, ...) or a split set's unlabelled
    test/ (as Kaggle ships them: train/<class>/, test/*.jpg) changed what an archive of the folder was: one class
    named after the folder, or the classes "test" and "train" with the unlabelled images trained on. The folder
    gave its class folders' set. Both now give it, the images in no class folder passed over, said in a line."""
    import zipfile

    shutil.copy(image_folder / "circle" / "circle_000.png", image_folder / "preview.png")
    said = []
    folder = open_catalog(str(image_folder), log=said.append)
    assert folder.class_names == sorted(CLASSES) and len(folder) == 24
    note = "passed over 1 image(s) beside the class folders (preview.png): an image's class is the folder it is in"
    assert said == [f"--data {image_folder}: {note}"]
    with tarfile.open(tmp_path / "shapes.tar", "w") as tf:
        tf.add(image_folder, arcname="shapes")
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as zf:  # made of the folder's contents: preview.png at the top
        for p in sorted(image_folder.rglob("*.png")):
            zf.write(p, str(p.relative_to(image_folder)))
    for archive in (tmp_path / "shapes.tar", tmp_path / "shapes.zip"):
        said.clear()
        cat = open_catalog(str(archive), log=said.append)
        assert cat.class_names == folder.class_names and np.array_equal(cat.labels, folder.labels), archive
        assert [n.rsplit("/", 1)[-1] for n in cat.names] == [Path(n).name for n in folder.names]
        assert said == [f"--data {archive}: {note}"]
        assert decode_all(cat, 16, 3, workers=0, log=lambda m: None)[0].shape[0] == 24

    kaggle = tmp_path / "kaggle"  # train/<class>/ with a stray image, test/ unlabelled
    shutil.copytree(image_folder, kaggle / "train")
    (kaggle / "test").mkdir()
    for k in range(3):
        shutil.copy(image_folder / "square" / f"square_00{k}.png", kaggle / "test" / f"{k}.png")
    with tarfile.open(tmp_path / "kaggle.tar", "w") as tf:
        tf.add(kaggle, arcname="kaggle")
    for data in (kaggle, tmp_path / "kaggle.tar"):
        said.clear()
        cat = open_catalog(str(data), log=said.append)
        assert cat.class_names == folder.class_names and np.array_equal(cat.labels, folder.labels), data
        assert said[0] == f"--data {data}: split into test, train; training on train/" and note in said[1]
        with pytest.raises(DataError, match=r"no class folders found.* \(it holds 3 loose images\)"):
            open_catalog(str(data), split="test")  # (evaluate: "no held-out images (...)", not fatal)


def test_a_training_set_with_a_held_out_set_beside_it(image_folder, tmp_path):
    """train.tar.gz beside test.tar.gz (this project's CIFAR-10 JPEGs, many downloads), cifar10/train beside
    cifar10/test, isic_Train.zip beside isic_Test.zip or isic_VAL.zip: the test split (what evaluate scores D on)
    is the set beside it, said in a line. Not for a name without the word train, nor across kinds (a folder and
    an archive)."""
    import zipfile

    def zipped(folder, name):
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for p in sorted(folder.rglob("*.png")):
                zf.write(p, str(p.relative_to(folder)))
        return tmp_path / name

    held = make_folder(tmp_path / "held", n_per_class=2, seed=9)
    for mode, (train, test) in {
        "w:gz": ("train.tar.gz", "test.tar.gz"),
        "w": ("cifar-train.tar", "cifar-val.tar"),
    }.items():
        for folder, name in ((image_folder, train), (held, test)):
            with tarfile.open(tmp_path / name, mode) as tf:
                tf.add(folder, arcname="shapes")
        said = []
        test_cat = open_catalog(str(tmp_path / train), split="test", log=said.append)
        assert len(test_cat) == 6 and all(n.startswith(f"{tmp_path / test}:") for n in test_cat.names)
        assert said == [f"--data {tmp_path / train}: held out: {tmp_path / test}, beside it"]
    zipped(image_folder, "isic_Train.zip")
    zipped(held, "isic_VAL.zip")
    assert len(open_catalog(str(tmp_path / "isic_Train.zip"), split="test")) == 6
    zipped(held, "isic_Test.zip")  # test before val
    assert (
        open_catalog(str(tmp_path / "isic_Train.zip"), split="test").names[0].startswith(f"{tmp_path}/isic_Test.zip:")
    )
    (tmp_path / "set").mkdir()
    image_folder.rename(tmp_path / "set" / "train")
    held.rename(tmp_path / "set" / "test")
    assert len(open_catalog(str(tmp_path / "set" / "train"), split="test")) == 6
    zipped(tmp_path / "set" / "test", "trainer.zip")  # "trainer" is not the word train
    with pytest.raises(NoTestSplit):
        open_catalog(str(tmp_path / "trainer.zip"), split="test")
    (tmp_path / "set" / "test").rename(tmp_path / "set" / "test_moved")
    zipped(tmp_path / "set" / "test_moved", "test.zip")
    with pytest.raises(NoTestSplit):  # set/train beside a test.zip in another folder: nothing beside it
        open_catalog(str(tmp_path / "set" / "train"), split="test")


def test_a_run_never_writes_into_its_image_folder(image_folder, tmp_path, monkeypatch, capsys):
    """--out inside the --data folder is refused before anything is written (the next run would list the sample
    grids as a class): given, or the default runs/<name> of a run started in the data folder (`--data .`, whose
    name is the folder's). A run's outputs already inside a class folder are refused when the folder is listed."""
    tiny = ["--image-size", "16", "--width", "0.25", "--batch-size", "4", "--workers", "0", "--device", "cpu",
            "--steps", "1"]  # fmt: skip
    monkeypatch.chdir(image_folder)
    assert open_catalog(".").name == open_catalog("../shapes/").name == "shapes"
    assert main(["--data", ".", *tiny]) == 2
    assert "--out runs/shapes (the default: runs/<data name> in the working folder) is inside --data ." in (
        capsys.readouterr().err)  # fmt: skip
    assert main(["--data", str(image_folder), "--out", str(image_folder / "circle" / "run"), *tiny]) == 2
    assert f"--out {image_folder / 'circle' / 'run'} is inside --data {image_folder}" in capsys.readouterr().err
    assert sorted(p.name for p in image_folder.iterdir()) == sorted(CLASSES)  # nothing written
    assert main(["--data", ".", "--out", str(tmp_path / "run"), *tiny]) == 0
    shutil.copytree(tmp_path / "run", image_folder / "square" / "old_run")  # moved there by hand
    with pytest.raises(DataError, match="square/old_run holds a training run's outputs .* trained on as class square"):
        open_catalog(str(image_folder))


def test_a_zip_written_with_backslashes(image_folder, tmp_path):
    """A zip whose member names separate folders with \\ (PowerShell 5's Compress-Archive writes them so): read as
    the folder it was made of (it was refused: "not inside a class folder")."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "win.zip", "w") as zf:
        zf.writestr("shapes\\circle\\", b"")  # a folder entry, as such tools write one
        for p in sorted(image_folder.rglob("*.png")):
            zf.write(p, "shapes\\" + str(p.relative_to(image_folder)).replace("/", "\\"))
    said = []
    cat, folder = open_catalog(str(tmp_path / "win.zip"), log=said.append), open_catalog(str(image_folder))
    assert cat.class_names == folder.class_names and np.array_equal(cat.labels, folder.labels) and not said
    assert cat.names[0] == f"{tmp_path / 'win.zip'}:shapes/circle/circle_000.png"
    assert all(cat.read(i) == Path(folder.names[i]).read_bytes() for i in range(len(cat)))


def test_a_zip_that_cannot_be_read_here_is_refused_by_what_it_is(image_folder, tmp_path):
    """A zip with a password, or one whose images 7-Zip compressed with a method Python's zipfile does not read
    (Zstandard, PPMd; Windows' Deflate64): every image failed on its own, and the run said only "none of the 24
    images probed ... could be opened". Said at once, with what to do; and where images cannot be opened for another
    reason, the first one's error is given."""
    import re
    import zipfile

    images = sorted(image_folder.rglob("*.png"))

    def zipped(name, field, value):
        """A zip of the images whose entries' `field` ("flags": bit 0 says encrypted; "method") holds `value`, set in
        each local header and central record (zipfile writes neither as given); the bytes stay as they are."""
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for p in images:
                zf.write(p, str(p.relative_to(image_folder)))
        data = bytearray((tmp_path / name).read_bytes())
        for sig, at in ((b"PK\x03\x04", {"flags": 6, "method": 8}), (b"PK\x01\x02", {"flags": 8, "method": 10})):
            for m in re.finditer(re.escape(sig), data):
                data[m.start() + at[field] : m.start() + at[field] + 2] = value.to_bytes(2, "little")
        (tmp_path / name).write_bytes(bytes(data))
        return str(tmp_path / name)

    with pytest.raises(DataError) as e:
        open_catalog(zipped("locked.zip", "flags", 1))
    assert str(e.value) == (f"--data {tmp_path / 'locked.zip'}: {len(images)} of its {len(images)} images are "
                            "encrypted (a zip with a password): extract it with the password and give the folder, or "
                            "zip it again without one")  # fmt: skip
    for method, name in ((93, "Zstandard"), (9, "Deflate64"), (77, "method 77")):
        with pytest.raises(DataError, match=rf"images are compressed with {name}, which Python's zipfile cannot read"):
            open_catalog(zipped(f"m{method}.zip", "method", method))
    broken = tmp_path / "broken"
    for c in ("a", "b"):
        (broken / c).mkdir(parents=True)
        (broken / c / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"could be opened \(the first: .*a/x\.png: UnidentifiedImageError: cannot "):
        probe(open_catalog(str(broken)))


def test_a_set_split_into_train_and_test_folders(tmp_path, monkeypatch):
    """A folder or archive laid out as train/<class>/..., test/<class>/... (Kaggle's chest X-rays, many papers'
    releases): training reads train/ and names the output folder after the set, evaluate's held-out split is test/
    (else val/), and the log says which part is used. Before, the folder trained two classes named "test" and
    "train", and an archive of it trained on both parts. Folders that are merely named so stay classes."""
    import pickle
    import zipfile

    root = tmp_path / "xray"
    make_folder(root / "train", n_per_class=3, seed=1)
    make_folder(root / "val", n_per_class=1, seed=2)
    make_folder(root / "test", n_per_class=2, seed=3, classes=CLASSES[:2])
    (root / ".cache").mkdir()  # hidden folders are not a part
    said = []
    train = open_catalog(str(root), log=said.append)
    assert train.name == "xray" and train.class_names == list(CLASSES) and len(train) == 9
    assert all("/xray/train/" in n for n in train.names) and said == [f"--data {root}: split into test, train, val; "
                                                                     "training on train/"]  # fmt: skip
    test = open_catalog(str(root), split="test")
    assert test.class_names == list(CLASSES[:2]) and len(test) == 4 and all("/xray/test/" in n for n in test.names)
    zipped, tarred = tmp_path / "xray.zip", tmp_path / "xray.tar.gz"
    with zipfile.ZipFile(zipped, "w") as zf, tarfile.open(tarred, "w:gz") as tf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, f"xray/{p.relative_to(root)}")
            tf.add(p, f"xray/{p.relative_to(root)}")
    for archive in (zipped, tarred):
        for split, want in (("train", train), ("test", test)):
            cat = open_catalog(str(archive), split=split)
            assert cat.class_names == want.class_names and np.array_equal(cat.labels, want.labels)
            assert [n.split(":", 1)[1] for n in cat.names] == [f"xray/{Path(n).relative_to(root)}" for n in want.names]
            read = pickle.loads(pickle.dumps(cat.read))  # a spawned worker's copy reads the same members
            assert all(read(i) == Path(want.names[i]).read_bytes() for i in range(len(cat)))
    # val/ when there is no test/; none at all: refused for the test split, named
    (root / "test").rename(tmp_path / "gone")
    assert all("/xray/val/" in n for n in open_catalog(str(root), split="test").names)
    (root / "val").rename(tmp_path / "gone2")
    assert len(open_catalog(str(root))) == 9
    with pytest.raises(NoTestSplit, match="xray: split into train, none of them a test split \\(test, testing, tests"):
        open_catalog(str(root), split="test")
    # not a split: a folder beside them that is no part, or parts holding images instead of class folders
    make_folder(root, n_per_class=1, classes=("other",))
    with pytest.warns(UserWarning, match="train are read as classes beside other, which is no part of a set split"):
        assert open_catalog(str(root)).class_names == ["other", "train"]
    named = tmp_path / "named"  # parts of images alone (Kaggle's butterflies, labelled by Training_set.csv): said
    for c in ("train", "test"):
        (named / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(named / c / "x.png")
    (named / "Testing_set.csv").write_text("filename\nx.png\n")
    (named / "Training_set.csv").write_text("filename,label\nx.png,MONARCH\n")
    with zipfile.ZipFile(tmp_path / "named.zip", "w") as zf:
        for c in ("train", "test"):
            zf.write(named / c / "x.png", f"{c}/x.png")
    said = []  # the folder: its training part labelled by the CSV beside (it was two classes, test and train)
    assert open_catalog(str(named), log=said.append).class_names == ["MONARCH"]
    assert said == [f"--data {named}: split into test, train; training on train/, its images labelled by "
                    "Training_set.csv"]  # fmt: skip
    with pytest.raises(NoTestSplit, match=r"test/'s images are not labelled by Testing_set\.csv \(--csv .*: needs a "
                       r"header and at least one row with two columns\)"):  # fmt: skip
        open_catalog(str(named), split="test")  # (the competition's hidden answers)
    data, hint = tmp_path / "named.zip", "; where a CSV labels the training part's images, unpack it and give that "
    with pytest.warns(UserWarning) as seen:
        assert open_catalog(str(data)).class_names == ["test", "train"]
    said = f"--data {data}: test, train are named as a split set's parts but hold images alone, read as classes"
    assert [str(w.message) for w in seen] == [f"{said} of those names{hint}part with --csv"]
    (named / "Training_set.csv").rename(named / "notes.txt")  # no CSV: as before, read as classes, warned
    with pytest.warns(UserWarning, match="test, train are named as a split set's parts but hold images alone"):
        assert open_catalog(str(named)).class_names == ["test", "train"]
    (named / "notes.txt").rename(named / "Training_set.csv")
    assert open_catalog(str(named / "train"), csv_opt="Training_set.csv").class_names == ["MONARCH"]
    # a training run on the split set: its train/ part, the output folder named after the set
    monkeypatch.chdir(tmp_path)
    make_folder(root / "test", n_per_class=2, seed=3)
    shutil.rmtree(root / "other")
    assert main(["--data", str(root), "--image-size", "16", "--width", "0.25", "--batch-size", "4", "--workers", "0",
                 "--device", "cpu", "--steps", "1"]) == 0  # fmt: skip
    config = json.loads((tmp_path / "runs" / "xray" / "config.json").read_text())
    assert config["config"]["data"] == str(root) and config["classes"] == list(CLASSES)


def test_parts_named_by_a_word_each_in_a_folder_of_its_name(tmp_path):
    """Kaggle's cat-and-dog set (training_set/training_set/<class>/, test_set/test_set/<class>/) and Intel's scenes
    (seg_train/seg_train/, seg_test/seg_test/, and seg_pred/seg_pred/ of unlabelled images), as folders and as
    zips: the parts were the classes (training_set and test_set; seg_pred, seg_test and seg_train), in silence."""
    import zipfile

    for name, parts in (("catdog", ("training_set", "test_set")), ("intel", ("seg_train", "seg_test", "seg_pred"))):
        root = tmp_path / name
        for k, part in enumerate(parts):
            if part == "seg_pred":
                (root / part / part).mkdir(parents=True)
                Image.new("RGB", (8, 8)).save(root / part / part / "0.png")
            else:
                make_folder(root / part / part, n_per_class=2 + k, size=(8, 8), seed=k)
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
            for f in sorted(root.rglob("*.png")):
                zf.write(f, f"{name}/{f.relative_to(root)}")
        for data in (root, tmp_path / f"{name}.zip"):
            said = []
            train = open_catalog(str(data), log=said.append)
            assert train.class_names == list(CLASSES) and len(train) == 6 and train.name == name, data
            assert all(f"/{parts[0]}/{parts[0]}/" in n for n in train.names)
            assert said == [f"--data {data}: split into {', '.join(sorted(parts))}; training on {parts[0]}/"]
            test = open_catalog(str(data), split="test")
            assert test.class_names == list(CLASSES) and len(test) == 9
            assert all(f"/{parts[1]}/{parts[1]}/" in n for n in test.names)
    for names in (("train_a", "train_b"), ("test_tube", "beaker")):  # two training parts, a word beside no split
        for c in names:
            (tmp_path / "lab" / "-".join(names) / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "lab" / "-".join(names) / c / "x.png")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert open_catalog(str(tmp_path / "lab" / "-".join(names))).class_names == sorted(names)
    make_folder(tmp_path / "catdog", n_per_class=1, size=(8, 8), classes=["extra"])  # a folder beside the parts: said
    with zipfile.ZipFile(tmp_path / "catdog2.zip", "w") as zf:
        for f in sorted((tmp_path / "catdog").rglob("*.png")):
            zf.write(f, f"catdog/{f.relative_to(tmp_path / 'catdog')}")
    for data in (tmp_path / "catdog", tmp_path / "catdog2.zip"):
        with pytest.warns(UserWarning, match="test_set, training_set are read as classes beside extra, which is no"):
            assert open_catalog(str(data)).class_names == ["extra", "test_set", "training_set"]


def test_an_evaluation_part_is_a_held_out_part(tmp_path):
    """Food-11: training/, validation/, evaluation/, each of the 11 classes; Omniglot as torchvision downloads it:
    images_background/ and images_evaluation/ (its training and test alphabets). They were three and two classes
    (the parts), with a warning for Food-11 and in silence for Omniglot."""
    food = tmp_path / "food11"
    for part in ("training", "validation", "evaluation"):
        make_folder(food / part, n_per_class=1, size=(8, 8))
    said = []
    assert open_catalog(str(food), log=said.append).class_names == list(CLASSES)
    assert said == [f"--data {food}: split into evaluation, training, validation; training on training/"]
    assert all("/validation/" in n for n in open_catalog(str(food), split="test").names)
    omniglot = tmp_path / "omniglot-py"
    make_folder(omniglot / "images_background", n_per_class=1, size=(8, 8), classes=["Arcadian", "Braille"])
    make_folder(omniglot / "images_evaluation", n_per_class=1, size=(8, 8), classes=["Angelic", "Kannada"])
    assert open_catalog(str(omniglot)).class_names == ["Arcadian", "Braille"]


def test_a_split_set_with_a_folder_of_no_images_beside_its_parts(tmp_path):
    """Fruits 360: Training/<class>/, Test/<class>/, test-multiple_fruits/ (images alone) and papers/ (a PDF). The
    papers/ folder made it no split set: an image folder whose class papers/ held no images, and the error's hint
    named Test/ to give. A folder of no images beside the parts is passed over, said; one that holds images (a
    class named beaker/) is not. A hint for a folder one level down names a training part first."""
    root = tmp_path / "fruits-360"
    make_folder(root / "Training", n_per_class=2, size=(8, 8))
    make_folder(root / "Test", n_per_class=1, size=(8, 8), seed=1)
    (root / "test-multiple_fruits").mkdir()
    Image.new("RGB", (8, 8)).save(root / "test-multiple_fruits" / "apple_banana.jpg")
    (root / "papers").mkdir()
    (root / "papers" / "paper.pdf").write_bytes(b"%PDF")
    said = []
    train = open_catalog(str(root), log=said.append)
    assert train.class_names == list(CLASSES) and len(train) == 6 and all("/Training/" in n for n in train.names)
    assert said == [f"--data {root}: split into Test, Training, test-multiple_fruits (papers: no images); training on "
                    "Training/"]  # fmt: skip
    test = open_catalog(str(root), split="test")
    assert test.class_names == list(CLASSES) and len(test) == 3 and all("/Test/" in n for n in test.names)
    Image.new("RGB", (8, 8)).save(root / "papers" / "figure.png")  # a folder of images: a class, as before
    with pytest.warns(UserWarning, match="are read as classes beside papers"):
        assert open_catalog(str(root)).class_names == ["Test", "Training", "papers", "test-multiple_fruits"]
    (root / "papers" / "figure.png").unlink()
    for name in ("code", "docs", "licenses"):  # more than 3 such folders: a folder of classes, one without images
        (root / name).mkdir()
    with pytest.raises(DataError, match=r"Training holds folders of images \(circle, ...\): if those are the classes, "
                       r"give --data .*fruits-360/Training$"):  # fmt: skip
        open_catalog(str(root))


def test_class_folders_that_each_hold_the_same_folders(tmp_path):
    """PlantVillage: color/, grayscale/ and segmented/, each holding the 38 classes, were 3 classes in silence; class
    folders each split into train/ and test/ read both in silence. Both are said; folders that differ from one class
    folder to the next (a patient's each) and a single folder each (Tiny ImageNet's images/) are not, unless every
    class holds a few folders of its own (LC25000's tissue classes in each organ's folder)."""
    import zipfile

    root = tmp_path / "plantvillage dataset"
    for variant in ("color", "grayscale", "segmented"):
        make_folder(root / variant, n_per_class=1, size=(8, 8))
    said = []
    assert open_catalog(str(root), log=said.append).class_names == ["color", "grayscale", "segmented"]
    assert said == [f"note: each class folder of {root} holds the same 3 folders (circle, square, stripes): a class is "
                    f"every image under its folder; if those folders are the classes, give one class folder as --data "
                    f"(--data {root / 'color'})"]  # fmt: skip
    assert open_catalog(str(root / "color")).class_names == list(CLASSES)
    inner = tmp_path / "inner"
    for c in ("cat", "dog"):
        make_folder(inner / c, n_per_class=1, size=(8, 8), classes=["train", "test"])
    said = []
    assert open_catalog(str(inner), log=said.append).class_names == ["cat", "dog"]
    assert said == [f"note: each class folder of {inner} is split into the same parts (test, train): all are read as "
                    "its class"]  # fmt: skip
    with zipfile.ZipFile(tmp_path / "pv.zip", "w") as zf:  # a zip of it: the same, less the folder to give
        for p in sorted(root.rglob("*.png")):
            zf.write(p, f"pv/{p.relative_to(root)}")
    said = []
    assert open_catalog(str(tmp_path / "pv.zip"), log=said.append).class_names == ["color", "grayscale", "segmented"]
    assert said == [f"note: each class folder of {tmp_path / 'pv.zip'} holds the same 3 folders (circle, square, "
                    "stripes): a class is every image under its folder; if those folders are the classes, give one "
                    "class folder, unpacked, as --data"]  # fmt: skip
    office = tmp_path / "Office31"  # the same folders inside lone folders: amazon/images/<class>/, dslr/images/ ...
    for domain in ("amazon", "dslr"):
        make_folder(office / domain / "images", n_per_class=1, size=(8, 8))
    said = []
    assert open_catalog(str(office), log=said.append).class_names == ["amazon", "dslr"]
    assert said == [f"note: each class folder of {office} holds the same 3 folders (circle, square, stripes): a class "
                    f"is every image under its folder; if those folders are the classes, give one class folder as "
                    f"--data (--data {office / 'amazon'})"]  # fmt: skip
    assert open_catalog(str(office / "amazon")).class_names == list(CLASSES)
    for c, sub in (("cat", "patient_1"), ("dog", "patient_2"), ("owl", "images")):
        make_folder(tmp_path / "other" / c, n_per_class=1, size=(8, 8), classes=[sub, f"{sub}b"][: 1 + (c != "owl")])
    said = []
    assert open_catalog(str(tmp_path / "other"), log=said.append).class_names == ["cat", "dog", "owl"] and not said
    # LC25000: colon_image_sets/{colon_aca,colon_n}/, lung_image_sets/{lung_aca,lung_n,lung_scc}/: the tissue classes
    # two levels down, each organ's own; read as the organs, in silence. Said (a folder and an archive)
    lc = tmp_path / "lung_colon_image_set"
    make_folder(lc / "colon_image_sets", n_per_class=1, size=(8, 8), classes=["colon_aca", "colon_n"])
    make_folder(lc / "lung_image_sets", n_per_class=1, size=(8, 8), classes=["lung_aca", "lung_n", "lung_scc"])
    shutil.make_archive(str(tmp_path / "lc"), "zip", lc)
    for data, give in ((lc, f" as --data (--data {lc / 'colon_image_sets'})"), (tmp_path / "lc.zip", ", unpacked, as "
                                                                                  "--data")):  # fmt: skip
        said = []
        assert open_catalog(str(data), log=said.append).class_names == ["colon_image_sets", "lung_image_sets"]
        assert said == [
            f"note: each class folder of {data} holds its images in folders of its own (colon_image_sets/"
            ": colon_aca, colon_n; lung_image_sets/: lung_aca, lung_n, lung_scc): a class is every image "
            f"under its folder; if those folders are the classes, give one class folder{give}"
        ], data


def test_folders_of_masks_inside_the_class_folders_are_passed_over(tmp_path):
    """COVID-19 Radiography: <class>/images/ and <class>/masks/ (the lungs' segmentation masks, one per image); BUSI:
    `benign (1).png` beside `benign (1)_mask.png`. The masks were read as images of their class, half of each class,
    in silence. Folders named mask or masks inside the class folders, and files named as an image beside them with
    _mask added, are passed over, said, in a folder and in an archive; a class named masks is a class, and x_mask.png
    without an x.png is an image."""
    import zipfile

    root = tmp_path / "COVID-19_Radiography_Dataset"
    for c in ("COVID", "Normal"):
        make_folder(root / c, n_per_class=2, size=(8, 8), classes=["images"])
        make_folder(root / c, n_per_class=2, size=(8, 8), classes=["masks"], grey=True)
    with zipfile.ZipFile(tmp_path / "covid.zip", "w") as zf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, f"{root.name}/{p.relative_to(root)}")
    for data, where in ((root, ""), (tmp_path / "covid.zip", f"{root.name}/")):
        said = []
        cat = open_catalog(str(data), log=said.append)
        assert cat.class_names == ["COVID", "Normal"] and len(cat) == 4 and all("/images/" in n for n in cat.names)
        assert said == [f"--data {data}: passed over 2 folder(s) of masks ({where}COVID/masks/, {where}Normal/masks/): "
                        "masks are no training images"], data  # fmt: skip
    make_folder(tmp_path / "faces", n_per_class=2, size=(8, 8), classes=["masks", "no_masks"])
    assert open_catalog(str(tmp_path / "faces")).class_names == ["masks", "no_masks"]
    # BUSI: `benign (1).png` beside `benign (1)_mask.png` and `benign (1)_mask_1.png`, in the class folder itself
    busi = tmp_path / "Dataset_BUSI_with_GT"
    for c in ("benign", "normal"):
        (busi / c).mkdir(parents=True)
        for name in (f"{c} (1)", f"{c} (1)_mask", f"{c} (1)_mask_1", f"{c} (2)", f"{c} (2)_mask", "x_mask"):
            Image.new("RGB", (8, 8)).save(busi / c / f"{name}.png")
    with tarfile.open(tmp_path / "busi.tar", "w") as tf:
        tf.add(busi, arcname=busi.name)
    for data, where in ((busi, ""), (tmp_path / "busi.tar", f"{busi.name}/")):
        said = []
        cat = open_catalog(str(data), log=said.append)
        want = [f"{c} ({i}).png" for c in ("benign", "normal") for i in (1, 2)] + ["x_mask.png"] * 2  # (no x.png)
        assert sorted(n.rsplit("/", 1)[1] for n in cat.names) == sorted(want), data
        assert said == [f"--data {data}: passed over 6 mask(s) named after an image ({where}benign/benign (1)_mask.png"
                        f", {where}benign/benign (1)_mask_1.png, {where}benign/benign (2)_mask.png ...): masks are no "
                        "training images"], data  # fmt: skip


def test_a_class_folder_of_a_segmentation_sets_masks_is_passed_over(tmp_path):
    """Kvasir-SEG: images/ beside masks/ (black and white, one per image); ISIC 2018 Task 1: ..._Input/ beside
    ..._GroundTruth/ (ISIC_0000000_segmentation.png). The masks were a class, in silence; now passed over, said, in a
    folder and an archive. Photos in folders named as masks (a face-mask set's with_mask/, without_mask/ beside
    mask_weared_incorrect/) are classes."""
    import zipfile

    rng = np.random.default_rng(0)
    photo = lambda: Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))  # noqa: E731
    mask = np.zeros((24, 24), np.uint8)
    mask[5:15, 8:20] = 255
    kvasir, isic = tmp_path / "Kvasir-SEG", tmp_path / "isic2018_task1"
    for i in range(3):
        for root, images, masks, suffix in ((kvasir, "images", "masks", ""),
                                            (isic, "ISIC2018_Task1-2_Training_Input",
                                             "ISIC2018_Task1_Training_GroundTruth", "_segmentation")):  # fmt: skip
            (root / images).mkdir(parents=True, exist_ok=True)
            (root / masks).mkdir(exist_ok=True)
            photo().save(root / images / f"x{i}.jpg")
            Image.fromarray(mask).convert("RGB").save(root / masks / f"x{i}{suffix}.jpg", quality=75)  # (JPEG's rings)
    with zipfile.ZipFile(tmp_path / "kvasir.zip", "w") as zf:
        for p in sorted(kvasir.rglob("*.jpg")):
            zf.write(p, f"{kvasir.name}/{p.relative_to(kvasir)}")
    for data, gone in ((kvasir, "masks"), (tmp_path / "kvasir.zip", "masks"),
                       (isic, "ISIC2018_Task1_Training_GroundTruth")):  # fmt: skip
        said = []
        cat = open_catalog(str(data), log=said.append)
        assert len(cat.class_names) == 1 and len(cat) == 3 and all("mask" not in n.lower() for n in cat.names), data
        assert (f"note: --data {data}: {gone}/ holds a segmentation set's masks (named so, black and white): no class, "
                "passed over") in said, data  # fmt: skip
    celeba = tmp_path / "CelebAMask-HQ"  # its masks, a folder of 2,000 a part, named so amid other words (they were a
    for i in range(3):  # class of their own, in silence)
        (celeba / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
        (celeba / "CelebAMask-HQ-mask-anno" / str(i)).mkdir(parents=True)
        photo().save(celeba / "CelebA-HQ-img" / f"{i}.jpg")
        Image.fromarray(mask).save(celeba / "CelebAMask-HQ-mask-anno" / str(i) / f"{i:05d}_hair.png")
    said = []
    assert open_catalog(str(celeba), log=said.append).class_names == ["CelebA-HQ-img"]
    assert said[0] == (f"note: --data {celeba}: CelebAMask-HQ-mask-anno/ holds a segmentation set's masks (named so, "
                       "black and white): no class, passed over")  # fmt: skip
    faces = tmp_path / "faces"
    for c in ("with_mask", "without_mask", "mask_weared_incorrect"):
        (faces / c).mkdir(parents=True)
        photo().save(faces / c / "0.png")
    assert open_catalog(str(faces)).class_names == ["mask_weared_incorrect", "with_mask", "without_mask"]


def test_a_training_part_not_named_as_one_beside_held_out_parts(tmp_path):
    """Places365 as torchvision downloads it: data_256_standard/ (a/abbey/ ...) beside val_256/ (images alone,
    labelled by places365_val.txt); a set's images/<class>/ beside test/<class>/. They were two classes (the two
    folders), in silence. The one folder not named as a part, holding folders, beside held-out parts is the training
    part; a folder of images beside a test/ stays a class."""
    root = tmp_path / "places"
    for letter, names in (("a", ("abbey", "airfield")), ("b", ("bakery",)), ("c", ("canyon",))):
        make_folder(root / "data_256_standard" / letter, n_per_class=1, size=(8, 8), classes=names)
    (root / "val_256").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val_256" / "Places365_val_00000001.jpg")
    said = []
    cat = open_catalog(str(root), log=said.append)
    assert cat.class_names == ["abbey", "airfield", "bakery", "canyon"] and cat.name == "places"
    assert said[0] == f"--data {root}: split into data_256_standard, val_256; training on data_256_standard/"
    with pytest.raises(DataError, match=r"val_256: no class folders found \(it holds 1 loose images\)"):
        open_catalog(str(root), split="test")
    sets = tmp_path / "sets"
    make_folder(sets / "images", n_per_class=2, size=(8, 8))
    make_folder(sets / "test", n_per_class=1, size=(8, 8))
    shutil.make_archive(str(sets), "zip", sets)
    for data in (sets, tmp_path / "sets.zip"):
        train, test = open_catalog(str(data)), open_catalog(str(data), split="test")
        assert train.class_names == test.class_names == list(CLASSES) and (len(train), len(test)) == (6, 3), data
    simpsons = tmp_path / "simpsons"  # Kaggle's Simpsons: simpsons_dataset/<character>/ beside kaggle_simpson_testset/
    make_folder(simpsons / "simpsons_dataset", n_per_class=1, size=(8, 8))
    make_folder(simpsons / "kaggle_simpson_testset", n_per_class=1, size=(8, 8))
    said = []
    assert open_catalog(str(simpsons), log=said.append).class_names == list(CLASSES)
    assert said == [f"--data {simpsons}: split into kaggle_simpson_testset, simpsons_dataset; training on "
                    "simpsons_dataset/"]  # fmt: skip
    flat = tmp_path / "flat"  # classes bird and test, images in each: classes, nothing said
    make_folder(flat, n_per_class=1, size=(8, 8), classes=["bird", "test"])
    shutil.make_archive(str(flat), "zip", flat)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in (flat, tmp_path / "flat.zip"):
            assert open_catalog(str(data)).class_names == ["bird", "test"]


def test_caltech101s_clutter_is_passed_over_as_torchvision_passes_it_over(tmp_path):
    """Caltech-101's 101_ObjectCategories/ holds BACKGROUND_Google/ (clutter images) beside its 101 object classes:
    it was trained on as a class. It is passed over, said (torchvision's Caltech101 leaves it out too), unless
    --classes names it; --classes' ranges count the object classes."""
    root = make_folder(tmp_path / "101_ObjectCategories", n_per_class=1, size=(8, 8),
                       classes=["BACKGROUND_Google", "Faces", "accordion", "airplanes"])  # fmt: skip
    said = []
    assert open_catalog(str(root), log=said.append).class_names == ["Faces", "accordion", "airplanes"]
    assert said == [f"note: {root}'s BACKGROUND_Google/ is Caltech-101's background clutter, no object class: passed "
                    "over, as torchvision's Caltech101 passes it over"]  # fmt: skip
    assert open_catalog(str(root), classes="0:2").class_names == ["Faces", "accordion"]
    assert open_catalog(str(root), classes="BACKGROUND_Google,Faces").class_names == ["BACKGROUND_Google", "Faces"]


def test_gtsrb_as_kaggle_ships_it(tmp_path):
    """GTSRB on Kaggle: Train/<class id>/, Test/ (images alone, labelled by Test.csv beside it) and Meta/ (one
    pictogram a class), with Train.csv, Test.csv, Meta.csv. Meta, Test and Train were the classes (a warning said
    so). Meta/ is passed over as a part of no training images; the held-out Test/ is read labelled by Test.csv, said
    (it was an error naming Test.csv to give)."""
    root = tmp_path / "gtsrb"
    make_folder(root / "Train", n_per_class=2, size=(8, 8))
    make_folder(root / "Meta", n_per_class=1, size=(8, 8))
    (root / "Test").mkdir()
    rows = ["Width,Height,ClassId,Path"]
    for i, c in enumerate(CLASSES):
        Image.new("RGB", (8, 8)).save(root / "Test" / f"{i:05d}.png")
        rows.append(f"8,8,{c},Test/{i:05d}.png")
    for name in ("Meta.csv", "Test.csv", "Train.csv"):
        (root / name).write_text("\n".join(rows) + "\n")
    said = []
    train = open_catalog(str(root), log=said.append)
    assert train.class_names == list(CLASSES) and len(train) == 6 and all("/gtsrb/Train/" in n for n in train.names)
    assert said == [f"--data {root}: split into Meta, Test, Train; training on Train/"]
    said.clear()
    held = open_catalog(str(root), split="test", log=said.append)
    assert held.class_names == list(CLASSES) and held.labels.tolist() == [0, 1, 2]
    assert said == [f"--data {root}: split into Meta, Test, Train; held out: Test/, its images labelled by "
                    f"{root / 'Test.csv'}"]  # fmt: skip
    held = open_catalog(str(root / "Test"), csv_opt="Test.csv")
    assert held.class_names == list(CLASSES) and len(held) == 3


def test_a_folder_holding_only_a_folder_of_its_own_name(tmp_path):
    """Kaggle's archives often unpack into a folder that holds one folder of the same name (Garbage classification/
    Garbage classification/<class>/): that was one class, an unconditional GAN with a note. Its inner folder is read
    (said); a class folder of images alone (cats/cats/*.png) stays one class; a split set inside one is read so."""
    outer = tmp_path / "Garbage classification"
    make_folder(outer / outer.name, n_per_class=2, size=(8, 8))
    said = []
    cat = open_catalog(str(outer), log=said.append)
    assert cat.class_names == list(CLASSES) and len(cat) == 6 and cat.name == outer.name and cat.folder == outer
    assert said == [f"--data {outer}: reading Garbage classification/ in it, the one folder it holds"]
    (tmp_path / "cats" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "cats" / "cats" / "0.png")
    assert open_catalog(str(tmp_path / "cats")).class_names == ["cats"]
    make_folder(tmp_path / "set" / "set" / "train", n_per_class=2, size=(8, 8))
    make_folder(tmp_path / "set" / "set" / "test", n_per_class=1, size=(8, 8), seed=1)
    assert len(open_catalog(str(tmp_path / "set"))) == 6 and len(open_catalog(str(tmp_path / "set"), split="test")) == 3


def test_a_set_in_kagglehubs_cache_is_named_after_the_set_not_its_version(tmp_path, monkeypatch):
    """kagglehub.dataset_download prints ~/.cache/kagglehub/datasets/<owner>/<name>/versions/<n>, which users give as
    --data: the run was named after the version, runs/2 (a second set's runs/1 beside it). The set's folder itself
    (versions/ beside 2.complete) was one class, versions: now its newest version downloaded whole is read."""
    got = tmp_path / "kagglehub" / "datasets" / "paultimothymooney" / "chest-xray-pneumonia" / "versions" / "2"
    make_folder(got / "chest_xray" / "train", n_per_class=2, size=(8, 8))
    make_folder(got / "chest_xray" / "test", n_per_class=1, size=(8, 8), seed=1)
    cat = open_catalog(str(got))
    assert cat.name == "chest-xray-pneumonia" and len(cat) == 6 and cat.folder == got
    make_folder(got.parent / "1" / "chest_xray" / "train", n_per_class=1, size=(8, 8))  # an older version
    for n in (1, 2):
        (got.parent.parent / f"{n}.complete").write_text("")  # (kagglehub's marks of versions downloaded whole)
    (got.parent.parent / ".complete").mkdir()
    for data in (got.parent.parent, got.parent):  # the set's folder (or its versions/): it was one class, versions
        said = []
        cat = open_catalog(str(data), log=said.append)
        assert cat.name == "chest-xray-pneumonia" and len(cat) == 6 and cat.class_names == list(CLASSES)
        assert said[0] == (f"--data {data}: a data set in kagglehub's cache: reading versions/2/, its newest "
                           "downloaded (of 2 there)")  # fmt: skip
    (got.parent.parent / "2.complete").unlink()  # (version 2 cut short: version 1, the newest whole)
    assert len(open_catalog(str(got.parent.parent))) == 3
    (tmp_path / "mine" / "versions" / "v2").mkdir(parents=True)  # (a version not numbered: its own name)
    make_folder(tmp_path / "mine" / "versions" / "v2", n_per_class=1, size=(8, 8))
    assert open_catalog(str(tmp_path / "mine" / "versions" / "v2")).name == "v2"
    monkeypatch.chdir(tmp_path)
    assert main(["--data", str(got), "--image-size", "16", "--width", "0.25", "--batch-size", "4", "--steps", "1",
                 "--workers", "0"]) == 0  # fmt: skip
    assert (tmp_path / "runs" / "chest-xray-pneumonia" / "config.json").is_file()


def test_a_split_set_whose_parts_hold_their_images_beside_their_labels_csv(tmp_path):
    """Roboflow's classification export: train/, valid/ and test/, each its images alone beside _classes.csv
    (`filename, Cat, Dog, Fox`, a one-hot row an image, spaces after the commas). It was three classes, test, train
    and valid (with a warning naming one CSV). Now each part is labelled by its own CSV: train/ trains, test/ (else
    valid/) is held out; an unlabelled part is passed over for a labelled one."""
    root = tmp_path / "pets.v2i.multiclass"
    kinds = ["Cat", "Dog", "Fox"]
    for part, n in (("train", 6), ("valid", 3), ("test", 3)):
        (root / part).mkdir(parents=True)
        rows = ["filename, Cat, Dog, Fox"]
        for i in range(n):
            name = f"{part}{i}_jpg.rf.{i:032x}.jpg"
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / part / name)
            rows.append(f"{name}, " + ", ".join("1" if k == (i * 2) % 3 else "0" for k in range(3)))
        (root / part / "_classes.csv").write_text("\n".join(rows) + "\n")
    said = []
    cat = open_catalog(str(root), log=said.append)
    assert cat.class_names == kinds and cat.labels.tolist() == [0, 2, 1, 0, 2, 1] and cat.name == root.name
    assert [Path(n).name[:6] for n in cat.names] == [f"train{i}" for i in range(6)] and cat.folder == root
    assert said == [f"--data {root}: split into test, train, valid; training on train/"]
    held = open_catalog(str(root), split="test")
    assert [Path(n).name[:5] for n in held.names] == ["test0", "test1", "test2"] and held.labels.tolist() == [0, 2, 1]
    shutil.make_archive(str(tmp_path / "export"), "zip", root)  # Roboflow's download, zipped (it was three classes,
    shutil.make_archive(str(tmp_path / "export"), "gztar", tmp_path, root.name)  # with a warning saying to unpack it)
    with tarfile.open(tmp_path / "export.tar", "w") as tf:  # `tar cf export.tar .` in it: ./train/... members
        tf.add(root, arcname=".")
    for zipped in (tmp_path / "export.zip", tmp_path / "export.tar.gz", tmp_path / "export.tar"):
        said = []
        got = open_catalog(str(zipped), log=said.append)
        assert got.class_names == kinds and got.labels.tolist() == cat.labels.tolist() and got.name == "export"
        assert [n.rsplit("/", 1)[1] for n in got.names] == [Path(n).name for n in cat.names]
        assert [got.read_bytes(i) for i in range(len(got))] == [cat.read_bytes(i) for i in range(len(cat))]
        assert said == [f"--data {zipped}: split into test, train, valid; training on train/"]
        got = open_catalog(str(zipped), split="test")
        assert [n.rsplit("/", 1)[1][:5] for n in got.names] == ["test0", "test1", "test2"]
        assert got.labels.tolist() == [0, 2, 1]
    (root / "test" / "_classes.csv").unlink()  # an unlabelled test/: the labelled valid/ is held out
    shutil.make_archive(str(tmp_path / "export2"), "zip", root)
    assert [n.rsplit("/", 1)[1][:6] for n in open_catalog(str(tmp_path / "export2.zip"), split="test").names] == [
        "valid0", "valid1", "valid2"]  # fmt: skip
    boxes = tmp_path / "boxes"  # its object detection export: a row a box, two for train0.jpg
    (boxes / "train").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(boxes / "train" / "train0.jpg")
    rows = "filename,width,height,class,xmin,ymin,xmax,ymax\ntrain0.jpg,8,8,Cat,1,1,4,4\ntrain0.jpg,8,8,Dog,5,5,7,7\n"
    (boxes / "train" / "_annotations.csv").write_text(rows)
    shutil.copytree(boxes / "train", boxes / "valid")
    shutil.make_archive(str(tmp_path / "boxes"), "zip", boxes)
    for data in (boxes, tmp_path / "boxes.zip"):
        with pytest.raises(DataError, match=r"train/_annotations\.csv holds bounding boxes, a row a box \(an object "
                           r"detection export\), not a label an image: export the set for classification"):  # fmt: skip
            open_catalog(str(data))
    assert [Path(n).name[:6] for n in open_catalog(str(root), split="test").names] == ["valid0", "valid1", "valid2"]
    assert len(open_catalog(str(root))) == 6


def test_a_kaggle_competitions_parts_labelled_by_the_csv_beside_them(tmp_path):
    """APTOS 2019: train_images/ and test_images/, their images alone, beside train.csv (id_code, diagnosis),
    test.csv (id_code: the answers are hidden) and sample_submission.csv; Dog Breed Identification: train/, test/
    and labels.csv (id, breed). They were two classes, test and train (a warning named the CSV to give). Now the
    training part is labelled by its CSV, said; a held-out part is where its CSV labels it."""
    root = tmp_path / "aptos2019-blindness-detection"
    for part, n in (("train_images", 10), ("test_images", 4)):
        (root / part).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(root / part / f"{part[:2]}{i:010x}.png")
    (root / "train.csv").write_text("id_code,diagnosis\n" + "".join(f"tr{i:010x},{i % 5}\n" for i in range(10)))
    (root / "test.csv").write_text("id_code\n" + "".join(f"te{i:010x}\n" for i in range(4)))
    (root / "sample_submission.csv").write_text("id_code,diagnosis\n" + "".join(f"te{i:010x},0\n" for i in range(4)))
    said = []
    cat = open_catalog(str(root), log=said.append)
    assert cat.class_names == ["0", "1", "2", "3", "4"] and cat.labels.tolist() == [i % 5 for i in range(10)]
    assert [Path(n).name for n in cat.names] == [f"tr{i:010x}.png" for i in range(10)] and cat.name == root.name
    assert said == [f"--data {root}: split into test_images, train_images; training on train_images/, its images "
                    "labelled by train.csv"]  # fmt: skip
    with pytest.raises(NoTestSplit, match=r"test_images/'s images are not labelled by test\.csv"):
        open_catalog(str(root), split="test")
    shutil.make_archive(str(tmp_path / "aptos"), "zip", root)  # `kaggle competitions download`'s zip: the same
    said = []
    got = open_catalog(str(tmp_path / "aptos.zip"), log=said.append)
    assert got.class_names == cat.class_names and got.labels.tolist() == cat.labels.tolist() and got.name == "aptos"
    assert [got.read_bytes(i) for i in range(10)] == [cat.read_bytes(i) for i in range(10)]
    assert said == [f"--data {tmp_path / 'aptos.zip'}: split into test_images, train_images; training on "
                    "train_images/, its images labelled by train.csv"]  # fmt: skip
    with pytest.raises(NoTestSplit, match=r"test_images/'s images are not labelled by test\.csv"):
        open_catalog(str(tmp_path / "aptos.zip"), split="test")
    (root / "test.csv").write_text("id_code,diagnosis\n" + "".join(f"te{i:010x},{4 - i}\n" for i in range(4)))
    held = open_catalog(str(root), split="test")  # (answers published: held out)
    assert held.labels.tolist() == [3, 2, 1, 0] and held.class_names == ["1", "2", "3", "4"]
    siim = tmp_path / "siim-isic-melanoma-classification"  # SIIM-ISIC 2020: jpeg/train/ two folders below train.csv;
    for part, n in (("train", 4), ("test", 2)):  # test.csv of the test images' metadata, no labels
        (siim / "jpeg" / part).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(siim / "jpeg" / part / f"ISIC_{part}{i}.jpg")
    rows = "".join(f"ISIC_train{i},male,{i % 2}\n" for i in range(4))
    (siim / "train.csv").write_text("image_name,sex,target\n" + rows)
    (siim / "test.csv").write_text("image_name,sex,anatom_site\nISIC_test0,male,torso\nISIC_test1,female,head\n")
    said = []
    got = open_catalog(str(siim / "jpeg"), log=said.append)  # (it was two classes, test and train, with a warning)
    assert got.class_names == ["0", "1"] and got.labels.tolist() == [0, 1, 0, 1]
    assert said == [f"--data {siim / 'jpeg'}: split into test, train; training on train/, its images labelled by "
                    "../train.csv"]  # fmt: skip
    with pytest.raises(NoTestSplit, match=r"test/'s images are not labelled by \.\./test\.csv \(.*: no column named as "
                       r"labels \(label, labels, target"):  # fmt: skip
        open_catalog(str(siim / "jpeg"), split="test")  # (its last column, anatom_site, was taken for labels)
    dogs = tmp_path / "dog-breed-identification"
    make_folder(dogs / "train", n_per_class=2, size=(8, 8), classes=["x"])
    for k, f in enumerate(sorted((dogs / "train" / "x").iterdir())):
        f.rename(dogs / "train" / f"{k:04x}.png")
    (dogs / "train" / "x").rmdir()
    (dogs / "test").mkdir()
    Image.new("RGB", (8, 8)).save(dogs / "test" / "ffff.png")
    (dogs / "labels.csv").write_text("id,breed\n0000,beagle\n0001,pug\n")
    (dogs / "sample_submission.csv").write_text("id,beagle,pug\nffff,0.5,0.5\n")
    got = open_catalog(str(dogs))
    assert got.class_names == ["beagle", "pug"] and got.labels.tolist() == [0, 1]
    (dogs / "labels.csv").write_text("id,breed\n0000,beagle\n0007,pug\n")  # (a CSV of other images: named)
    with pytest.raises(DataError, match=r"labels\.csv: 1 of 2 names in column 'id' match no image"):
        open_catalog(str(dogs))


def test_hugging_faces_image_folder_with_metadata_in_each_part(tmp_path):
    """Hugging Face's ImageFolder with metadata (a repository as `datasets` documents it): train/metadata.jsonl
    (`{"file_name": "images/0.png", "label": "cat"}`) beside train/images/, test/ likewise. It was one class, images,
    an unconditional GAN. Now each part is labelled by its metadata."""
    root = tmp_path / "pets-hf"
    for part, n in (("train", 4), ("test", 2)):
        (root / part / "images").mkdir(parents=True)
        rows = []
        for i in range(n):
            Image.new("RGB", (8, 8), (50 * i, 0, 0)).save(root / part / "images" / f"{i}.png")
            rows.append(json.dumps({"file_name": f"images/{i}.png", "label": ["cat", "dog"][i % 2]}))
        (root / part / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    (root / "README.md").write_text("---\nconfigs: ...\n---\n")
    cat = open_catalog(str(root))
    assert cat.class_names == ["cat", "dog"] and cat.labels.tolist() == [0, 1, 0, 1] and cat.name == "pets-hf"
    held = open_catalog(str(root), split="test")
    assert held.labels.tolist() == [0, 1] and all("/test/images/" in n for n in held.names)
    one = tmp_path / "one-meta"  # one metadata file at its root for both parts: file_name train/0.png (they were read
    for part, n in (("train", 4), ("test", 2)):  # as classes, test and train, with a warning)
        (one / part).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (50 * i, 0, 0)).save(one / part / f"{i}.png")
    rows = [f"{part}/{i}.png,{['cat', 'dog'][i % 2]}" for part, n in (("test", 2), ("train", 4)) for i in range(n)]
    (one / "metadata.csv").write_text("file_name,label\n" + "\n".join(rows[::-1]) + "\n")
    said = []
    got = open_catalog(str(one), log=said.append)
    assert got.class_names == ["cat", "dog"] and got.labels.tolist() == [1, 0, 1, 0] and got.name == "one-meta"
    assert [Path(n).relative_to(one).as_posix() for n in got.names] == ["train/3.png", "train/2.png", "train/1.png",
                                                                        "train/0.png"]  # fmt: skip
    assert said == [f"--data {one}: split into test, train; training on train/"] and got.folder == one
    held = open_catalog(str(one), split="test")
    assert held.labels.tolist() == [1, 0] and [Path(n).name for n in held.names] == ["1.png", "0.png"]
    (one / "metadata.csv").write_text("file_name,label\n" + "\n".join(r for r in rows if r.startswith("train")))
    with pytest.raises(NoTestSplit, match="split into train, none of them a labelled test split"):
        open_catalog(str(one), split="test")  # (test/'s images unlisted: no labelled test split)
    shutil.make_archive(str(tmp_path / "pets-hf"), "zip", tmp_path, root.name)  # zipped (it was one class, images)
    got = open_catalog(str(tmp_path / "pets-hf.zip"))
    assert got.class_names == ["cat", "dog"] and got.labels.tolist() == [0, 1, 0, 1]
    assert [got.read_bytes(i) for i in range(4)] == [cat.read_bytes(i) for i in range(4)]
    held = open_catalog(str(tmp_path / "pets-hf.zip"), split="test")
    assert held.labels.tolist() == [0, 1] and all(":pets-hf/test/images/" in n for n in held.names)


def test_a_folder_holding_one_folder_alone_is_read_through_it(tmp_path):
    """Other lone folders: Microsoft's cats and dogs (kagglecatsanddogs_5340/PetImages/{Cat,Dog}/ beside a licence
    PDF and a readme) and GTSRB (GTSRB/Final_Training/Images/00000/ ...: a lone part, its classes in a folder of
    another name) were one class each (PetImages; Images), an unconditional GAN with a note. They are read through
    the lone folders (said), the run named after --data; a README, licence or citation request beside does not
    count, a labels file does, unless the lone folder holds a split set of class folders (Kaggle's Stanford Cars);
    a lone part of a split set stays one (it has no held-out part, said)."""
    pets = tmp_path / "kagglecatsanddogs_5340"
    make_folder(pets / "PetImages", n_per_class=2, size=(8, 8))
    (pets / "CDLA-Permissive-2.0.pdf").write_bytes(b"%PDF")
    (pets / "readme[1].txt").write_text("Microsoft's cats and dogs")
    (pets / "translate.py").write_text("# Animals-10's names, beside raw-img/")
    (pets / "Rice_Citation_Request.txt").write_text("Please cite ...")  # (the Rice Image Dataset's: it was a list)
    said = []
    cat = open_catalog(str(pets), log=said.append)
    assert cat.class_names == list(CLASSES) and len(cat) == 6 and cat.name == pets.name and cat.folder == pets
    assert said == [f"--data {pets}: reading PetImages/ in it, the one folder it holds"]
    gtsrb = tmp_path / "GTSRB"
    make_folder(gtsrb / "Final_Training" / "Images", n_per_class=2, size=(8, 8))
    for data, said_first in ((gtsrb, "split into Final_Training; training on Final_Training/"),
                             (gtsrb / "Final_Training", "reading Images/ in it, the one folder it holds")):  # fmt: skip
        said = []
        cat = open_catalog(str(data), log=said.append)
        assert cat.class_names == list(CLASSES) and len(cat) == 6 and cat.name == data.name, data
        assert said == [f"--data {data}: {said_first}"]
    with pytest.raises(NoTestSplit, match="GTSRB: split into Final_Training, none of them a test split"):
        open_catalog(str(gtsrb), split="test")
    mri = tmp_path / "mri"  # the parts of a split set, each with its classes in a lone folder: in a folder and a zip
    make_folder(mri / "Training" / "images", n_per_class=2, size=(8, 8))
    make_folder(mri / "Testing" / "images", n_per_class=1, size=(8, 8))
    shutil.make_archive(str(tmp_path / "mri"), "zip", mri)
    for data in (mri, tmp_path / "mri.zip"):
        train, test = open_catalog(str(data)), open_catalog(str(data), split="test")
        assert train.class_names == test.class_names == list(CLASSES) and (len(train), len(test)) == (6, 3), data
    (pets / "labels.csv").write_text("image,label\n")  # a labels file beside: the folder is no wrapping, but said
    said = []
    assert open_catalog(str(pets), log=said.append).class_names == ["PetImages"]
    assert said[-1] == (f"note: the one class folder of {pets}, PetImages/, holds folders (circle, square, stripes): "
                        f"--data {pets / 'PetImages'} reads them as classes or parts")  # fmt: skip
    cars = tmp_path / "cars"  # Kaggle's Stanford Cars by class folder: car_data/car_data/{train,test}/<class>/
    for part in ("train", "test"):
        make_folder(cars / "car_data" / "car_data" / part, n_per_class=1, size=(8, 8))
    (cars / "anno_train.csv").write_text("00001.jpg,39,116,569,375,14\n")
    said = []  # a split set of class folders: read through the lone folders all the same (it was one class, a note)
    assert open_catalog(str(cars), log=said.append).class_names == list(CLASSES)
    assert said == [f"--data {cars}: reading car_data/car_data/ in it, the one folder it holds beside anno_train.csv "
                    "(where that holds labels, give it with --csv)",
                    f"--data {cars}: split into test, train; training on train/"]  # fmt: skip
    poke = tmp_path / "pokemon"  # Kaggle's Pokemon: images/images/*.png beside pokemon.csv: no folders to name
    (poke / "images" / "images").mkdir(parents=True)
    Image.new("RGBA", (8, 8)).save(poke / "images" / "images" / "bulbasaur.png")
    (poke / "pokemon.csv").write_text("Name,Type1,Type2\nbulbasaur,Grass,Poison\n")
    said = []
    assert open_catalog(str(poke), log=said.append).class_names == ["images"]
    assert not any("one class folder" in line for line in said)
    # Kaggle's ImageNet: ILSVRC/{Annotations,Data,ImageSets}/ beside LOC_val_solution.csv, the images in
    # Data/CLS-LOC/{train/<class>/,val/,test/}: the note named --data .../ILSVRC, whose Annotations/ holds no images
    kaggle = tmp_path / "imagenet"
    make_folder(kaggle / "ILSVRC" / "Data" / "CLS-LOC" / "train", n_per_class=1, size=(8, 8))
    for part in ("val", "test"):
        (kaggle / "ILSVRC" / "Data" / "CLS-LOC" / part).mkdir()
        Image.new("RGB", (8, 8)).save(kaggle / "ILSVRC" / "Data" / "CLS-LOC" / part / f"{part}_1.JPEG")
    for no_images in ("Annotations/CLS-LOC/val/val_1.xml", "ImageSets/CLS-LOC/train_cls.txt"):
        (kaggle / "ILSVRC" / no_images).parent.mkdir(parents=True)
        (kaggle / "ILSVRC" / no_images).write_text("x")
    (kaggle / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nval_1,circle 1 2 3 4\n")
    said = []
    assert open_catalog(str(kaggle), log=said.append).class_names == ["ILSVRC"]
    data = kaggle / "ILSVRC" / "Data"
    assert said[-1] == (f"note: the one class folder of {kaggle}, ILSVRC/, holds its images in folders (test, train, "
                        f"val) of ILSVRC/Data/CLS-LOC/: --data {data} reads them as classes or parts")  # fmt: skip
    assert open_catalog(str(data)).class_names == list(CLASSES)


def write_one_hot_csv(path, names, classes, label_of):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *classes])
        w.writerows([(n, *("1.0" if c == label_of[n] else "0.0" for c in classes)) for n in names])


def test_archives_with_a_labels_csv_and_one_hot_labels(tmp_path):
    """ISIC 2019's download: flat images in a zip, the labels one-hot in a CSV beside it (image, MEL, NV, BCC, ...,
    UNK). The classes are the columns that occur, in column order; the CSV names images without extension."""
    import zipfile

    rng = np.random.default_rng(0)
    classes = ["MEL", "NV", "BCC", "AK", "UNK"]
    names = [f"ISIC_{i:07d}" for i in range(9)]
    label_of = {n: classes[[1, 0, 2, 1, 1, 3, 0, 2, 1][i]] for i, n in enumerate(names)}  # UNK: never
    archive = tmp_path / "ISIC_2019_Training_Input.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in names:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buf, format="JPEG")
            zf.writestr(f"ISIC_2019_Training_Input/{n}.jpg", buf.getvalue())
    write_one_hot_csv(tmp_path / "gt.csv", names, classes, label_of)
    cat = open_catalog(str(archive), csv_opt="gt.csv")  # --csv relative to the archive's folder
    assert cat.class_names == ["MEL", "NV", "BCC", "AK"]
    assert [cat.class_names[k] for k in cat.labels] == [label_of[n] for n in names]
    assert cat.names[4] == f"{archive}:ISIC_2019_Training_Input/ISIC_0000004.jpg"
    x, _ = decode_all(cat, 16, 3, workers=0, log=lambda m: None)
    assert x.shape == (9, 16, 16, 3)

    # the same in the ISIC folder layout, found without --csv
    write_isic(tmp_path / "isic", [(n, 0) for n in names])
    (tmp_path / "isic" / "train_data.csv").unlink()
    write_one_hot_csv(tmp_path / "isic" / "gt.csv", names, classes, label_of)
    assert open_catalog(str(tmp_path / "isic")).labels.tolist() == cat.labels.tolist()

    # a row that marks no class (or several) is named, not guessed at
    label_of[names[3]] = None
    write_one_hot_csv(tmp_path / "gt.csv", names, classes, label_of)
    with pytest.raises(DataError, match="look one-hot, but row 5 marks 0 classes; name the label column"):
        open_catalog(str(archive), csv_opt=str(tmp_path / "gt.csv"))
    # a tar with a CSV works the same way; a name the archive lacks is reported
    with tarfile.open(tmp_path / "flat.tar", "w") as tf:
        tf.add(tmp_path / "isic" / "Images", arcname="imgs")
    write_one_hot_csv(tmp_path / "gt2.csv", [*names, "ISIC_9999999"], classes, {**label_of, names[3]: "NV",
                                                                              "ISIC_9999999": "NV"})  # fmt: skip
    with pytest.raises(DataError, match="1 of 10 names in column 'image' match no image in .*flat.tar.*ISIC_9999999"):
        open_catalog(str(tmp_path / "flat.tar"), csv_opt=str(tmp_path / "gt2.csv"))


def test_archives_that_hold_their_labels_csv(tmp_path, monkeypatch):
    """The ISIC layout zipped (isic/Images/ beside isic/train_data.csv, in one zip): it was one class, Images, the
    CSV passed over (".csv (1)"); ISIC 2019 as Kaggle ships it, the images and both CSVs in one zip: --csv
    ISIC_2019_Training_GroundTruth.csv was "file not found". The CSV beside Images/ is found in the archive as in a
    folder, and --csv not on disk is looked for in the archive; a name it holds twice is refused, naming both."""
    import zipfile

    write_isic(tmp_path / "isic", [(f"ISIC_{i:07d}", i % 2) for i in range(6)])
    with zipfile.ZipFile(tmp_path / "isic.zip", "w") as zf:
        for f in sorted((tmp_path / "isic").rglob("*")):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    folder = open_catalog(str(tmp_path / "isic"))
    said = []
    cat = open_catalog(str(tmp_path / "isic.zip"), log=said.append)
    assert cat.class_names == ["0", "1"] and cat.labels.tolist() == folder.labels.tolist() and said == []
    assert [cat.read_bytes(i) for i in range(6)] == [folder.read_bytes(i) for i in range(6)]
    with pytest.raises(NoTestSplit):
        open_catalog(str(tmp_path / "isic.zip"), split="test")
    names = [f"ISIC_{i:07d}" for i in range(4)]
    kaggle = tmp_path / "kaggle" / "isic-2019.zip"
    kaggle.parent.mkdir()
    write_one_hot_csv(tmp_path / "gt.csv", names, ["MEL", "NV"], {n: "MEL NV".split()[i % 2] for i, n in
                                                                   enumerate(names)})  # fmt: skip
    with zipfile.ZipFile(kaggle, "w") as zf:
        for i, n in enumerate(names):
            zf.write(tmp_path / "isic" / "Images" / f"ISIC_{i:07d}.jpg", f"ISIC_2019_Training_Input/{n}.jpg")
        zf.write(tmp_path / "gt.csv", "ISIC_2019_Training_GroundTruth.csv")
        zf.writestr("ISIC_2019_Training_Metadata.csv", "image,age_approx\n")
    monkeypatch.chdir(tmp_path)
    got = open_catalog(str(kaggle), csv_opt="ISIC_2019_Training_GroundTruth.csv")
    assert got.class_names == ["MEL", "NV"] and got.labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match=r"--csv nope\.csv: file not found \(looked at .*\); .*isic-2019\.zip holds "
                       r"none so named"):  # fmt: skip
        open_catalog(str(kaggle), csv_opt="nope.csv")
    with zipfile.ZipFile(kaggle, "a") as zf:  # (its path in the archive picks it; a name two share is refused)
        zf.writestr("extra/ISIC_2019_Training_GroundTruth.csv", "image,MEL\n")
        for part in ("extra", "more"):
            zf.writestr(f"{part}/labels.csv", "image,MEL\n")
    assert open_catalog(str(kaggle), csv_opt="ISIC_2019_Training_GroundTruth.csv").labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match=r"holds 2 so named \(extra/labels\.csv, more/labels\.csv\): give its path "
                       r"in it"):  # fmt: skip
        open_catalog(str(kaggle), csv_opt="labels.csv")


def test_class_examples_in_the_sample_grid_layout(image_folder):
    """The first readable images of each class, a row per class, decoded as training decodes them; an unreadable
    one is passed over, a class short of images leaves black tiles; the decoded-set path gives the same."""
    from fastacgan.decode import class_examples

    cat = open_catalog(str(image_folder))  # 3 classes x 8 images
    first = [int(np.flatnonzero(cat.labels == k)[0]) for k in range(3)]
    (Path(cat.names[first[1]])).write_bytes(b"not an image")
    got = class_examples(cat, 16, 3, rows=3, per_row=10)
    assert got.shape == (30, 16, 16, 3) and got.dtype == np.uint8
    for k in range(3):
        idx = [int(i) for i in np.flatnonzero(cat.labels == k) if k != 1 or i != first[1]]
        want = np.stack([decode_image(Path(cat.names[i]).read_bytes(), cat.names[i], 16, 3) for i in idx])
        assert np.array_equal(got[10 * k : 10 * k + len(idx)], want)
        assert not got[10 * k + len(idx) : 10 * (k + 1)].any()  # black: fewer than 10 images of the class
    digits = open_catalog("builtin:digits:200", image_size=16)
    grid = class_examples(digits, 16, 1, rows=10)
    for k in range(10):
        i = np.flatnonzero(digits.labels == k)[:10]
        assert np.array_equal(grid[10 * k : 10 * k + 10], digits.images[torch.as_tensor(i)].numpy())


def test_classes_named_by_synonyms_are_picked_by_their_first(tmp_path):
    """Hugging Face's ImageNet names its classes by their synonyms (`tench, Tinca tinca`): --classes tench named no
    class; now it is the class whose first name it is, in any case (a first name two classes share names none)."""
    names = ["tench, Tinca tinca", "goldfish, Carassius auratus", "crane, bird", "crane, derrick"]
    for k, name in enumerate(names):
        (tmp_path / "inet" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(tmp_path / "inet" / name / "1.png")
    cat = open_catalog(str(tmp_path / "inet"), classes="Goldfish,tench")
    assert cat.class_names == ["goldfish, Carassius auratus", "tench, Tinca tinca"] and cat.labels.tolist() == [0, 1]
    with pytest.raises(DataError, match="--classes: crane not in the data"):
        open_catalog(str(tmp_path / "inet"), classes="crane")


def _ham10000(root: Path, n: int = 3) -> list[str]:
    """HAM10000 as Kaggle ships it: its images in two parts and a copy of each (lower case), beside its metadata,
    which labels them, and a CSV of pixel rows; the images' names."""
    names = []
    for k, part in enumerate(("HAM10000_images_part_1", "HAM10000_images_part_2")):
        for j in range(n):
            names.append(f"ISIC_00243{10 * k + j:02d}")
            for folder in (part, part.lower()):
                (root / folder).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (40 * k, 30 * j, 0)).save(root / folder / f"{names[-1]}.jpg")
    dx = ["nv", "mel", "df"]
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n" + "".join(
        f"HAM_{i},{name},{dx[i % 3]}\n" for i, name in enumerate(names)))  # fmt: skip
    (root / "hmnist_8_8_RGB.csv").write_text(",".join(f"pixel{j:04d}" for j in range(192)) + ",label\n" + "0," * 192
                                             + "2\n")  # fmt: skip
    return names


@pytest.mark.parametrize("form", ["zip", "tar", "tar.gz"])
def test_ham10000_zipped_as_kaggle_ships_it(tmp_path, form):
    """Kaggle's zip of HAM10000 (its two image parts, a copy of each in lower case, the metadata and the hmnist pixel
    CSVs) was four classes, the folders (its folder already read labelled by the metadata), and --csv
    HAM10000_metadata.csv on it was refused: each name is two members, and an archive's copies were not compared.
    Now read as the folder is, its copies told by their sizes and CRCs (a zip's) or their bytes; a member that
    differs from its copy is still refused, naming both."""
    names = _ham10000(tmp_path / "ham10000")
    folder = open_catalog(str(tmp_path / "ham10000"))
    archive = tmp_path / f"skin-cancer-mnist-ham10000.{form}"

    def pack():
        files = sorted(f for f in (tmp_path / "ham10000").rglob("*") if f.is_file())
        if form == "zip":
            with zipfile.ZipFile(archive, "w") as zf:
                for f in files:
                    zf.write(f, f.relative_to(tmp_path / "ham10000").as_posix())
        else:
            with tarfile.open(archive, "w:gz" if form == "tar.gz" else "w") as tf:
                for f in files:
                    tf.add(f, f.relative_to(tmp_path / "ham10000").as_posix())

    pack()
    said = []
    cat = open_catalog(str(archive), log=said.append)
    assert cat.class_names == folder.class_names == ["df", "mel", "nv"]
    assert cat.labels.tolist() == folder.labels.tolist() == [2, 1, 0, 2, 1, 0]
    assert [Path(n).stem for n in cat.names] == names and cat.name == "skin-cancer-mnist-ham10000"
    assert [cat.read_bytes(i) for i in range(6)] == [folder.read_bytes(i) for i in range(6)]
    assert said == [f"--data {archive}: HAM10000_images_part_1/, HAM10000_images_part_2/, ham10000_images_part_1/ ... "
                    "are parts of one set: its images labelled by HAM10000_metadata.csv"]  # fmt: skip
    with pytest.raises(NoTestSplit):
        open_catalog(str(archive), split="test")
    given = open_catalog(str(archive), csv_opt=str(tmp_path / "ham10000" / "HAM10000_metadata.csv"))
    assert given.labels.tolist() == cat.labels.tolist()
    # a copy that is not one (other bytes, the same size): refused, as in the folder
    other = tmp_path / "ham10000" / "ham10000_images_part_2" / f"{names[4]}.jpg"
    other.write_bytes(other.read_bytes()[:-2] + b"\x00\x00")
    pack()
    with pytest.raises(DataError, match=rf"row 6 names '{names[4]}', which is HAM10000_images_part_2/{names[4]}\.jpg "
                       rf"and ham10000_images_part_2/{names[4]}\.jpg"):  # fmt: skip
        open_catalog(str(archive))


def test_tiny_imagenets_held_out_part_is_labelled_by_its_list(tmp_path):
    """Tiny ImageNet: train/<wnid>/images/*.JPEG, val/images/ labelled by val/val_annotations.txt (no header: name,
    wnid, box), test/images/ unlabelled. Its test split was test/, one class named images (fastacgan.evaluate then
    named the options that read val/); now val/, labelled by the list, said; so in the zip it is downloaded as. A
    list that labels none (a column of notes) or a held-out part of the training part's class folders is read as
    before."""
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819", "n01641577"]
    for k, w in enumerate(wnids):
        (root / "train" / w / "images").mkdir(parents=True)
        Image.new("RGB", (8, 8), (60 * k, 0, 0)).save(root / "train" / w / "images" / f"{w}_0.JPEG")
        (root / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t0\t0\t8\t8\n")
    for part in ("val", "test"):
        (root / part / "images").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * (i % 3), 9, i)).save(root / part / "images" / f"{part}_{i}.JPEG")
    assert open_catalog(str(root), split="test").class_names == ["images"]  # (no list: as before)
    listed = root / "val" / "val_annotations.txt"
    listed.write_text("".join(f"val_{i}.JPEG\t{wnids[i % 3]}\t0\t0\t8\t8\n" for i in range(4)))
    said = []
    held = open_catalog(str(root), split="test", log=said.append)
    assert held.class_names == wnids and held.labels.tolist() == [0, 1, 2, 0]
    assert [Path(n).name for n in held.names] == [f"val_{i}.JPEG" for i in range(4)]
    assert said == [f"--data {root}: split into test, train, val; held out: val/, its images labelled by {listed}"]
    assert open_catalog(str(root)).class_names == wnids  # (training: train/, the list not read)
    shutil.make_archive(str(tmp_path / "tiny-imagenet-200"), "zip", tmp_path, root.name)  # as it is downloaded
    said.clear()
    zipped = open_catalog(str(tmp_path / "tiny-imagenet-200.zip"), split="test", log=said.append)
    assert zipped.class_names == wnids and zipped.labels.tolist() == [0, 1, 2, 0]
    assert [zipped.read_bytes(i) for i in range(4)] == [held.read_bytes(i) for i in range(4)]
    assert said[-1] == (f"--data {tmp_path / 'tiny-imagenet-200.zip'}: split into test, train, val; held out: val/, "
                        "its images labelled by tiny-imagenet-200/val/val_annotations.txt")  # fmt: skip
    listed.write_text("file,note\n" + "".join(f"val_{i}.JPEG,blurred\n" for i in range(4)))  # labels none
    assert open_catalog(str(root), split="test").class_names == ["images"]
    listed.write_text("".join(f"val_{i}.JPEG\t{wnids[i % 3]}\n" for i in range(4)))
    shutil.rmtree(root / "val" / "images")
    for w in wnids:  # a held-out part of the training part's class folders: read so, the list beside it aside
        shutil.copytree(root / "train" / w, root / "val" / w)
    assert open_catalog(str(root), split="test").labels.tolist() == [0, 1, 2]


def test_imagenet_100_as_kaggle_ships_it(tmp_path):
    """ImageNet-100 on Kaggle: train.X1/ ... train.X4/, a quarter of its classes each, beside val.X/ (all of them)
    and Labels.json. It failed (IndexError) where a warning about parts read as classes found no other folder;
    now the training parts are read as one set, said, val.X/ held out, in the folder and in its zip. Two folders
    named as the training part, one of images alone, are classes, with a warning (it was the IndexError)."""
    root = tmp_path / "imagenet100"
    wnids = ["n01440764", "n01443537", "n01484850", "n01491361"]
    for k in range(4):
        for w in (wnids[k], wnids[(k + 1) % 4]):  # (a class in two parts is one class)
            (root / f"train.X{k + 1}" / w).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (50 * k, 0, 0)).save(root / f"train.X{k + 1}" / w / f"{w}_{k}.JPEG")
    for w in wnids:
        (root / "val.X" / w).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / "val.X" / w / f"ILSVRC2012_val_{w}.JPEG")
    (root / "Labels.json").write_text(json.dumps({w: f"class {w}" for w in wnids}))
    shutil.make_archive(str(tmp_path / "archive"), "zip", root)  # (the zip Kaggle gives: the folder's contents)
    for data in (root, tmp_path / "archive.zip"):
        said = []
        train = open_catalog(str(data), log=said.append)
        assert train.class_names == wnids and train.labels.tolist() == [0, 1, 1, 2, 2, 3, 0, 3]
        assert [n.replace(str(data), "").lstrip("/:").split("/")[0] for n in train.names] == [
            f"train.X{k}" for k in (1, 1, 2, 2, 3, 3, 4, 4)]  # fmt: skip
        assert decode_image(train.read_bytes(5), train.names[5], 8, 3)[0, 0, 0].item() in range(95, 106)  # X3: red 100
        parts = "train.X1, train.X2, train.X3, train.X4, val.X"
        assert said == [f"--data {data}: split into {parts}; training on train.X1/, train.X2/, train.X3/, train.X4/, "
                        "together"]  # fmt: skip
        said.clear()
        held = open_catalog(str(data), split="test", log=said.append)
        assert held.class_names == wnids and held.labels.tolist() == [0, 1, 2, 3]
        assert said == [f"--data {data}: split into {parts}; held out: val.X/"]
    odd = tmp_path / "odd"
    make_folder(odd / "train", n_per_class=1, size=(8, 8))
    (odd / "training").mkdir()
    Image.new("RGB", (8, 8)).save(odd / "training" / "1.png")
    with pytest.warns(UserWarning, match="train, training are read as classes: train, training are each named as the "
                      "training part; give the one to train on"):  # fmt: skip
        assert open_catalog(str(odd)).class_names == ["train", "training"]


def test_a_csv_name_that_is_one_images_path_and_anothers_name_is_refused(tmp_path):
    """x.png beside a/x.png, a CSV naming x: the name is both images'. In an archive that failed with a TypeError
    (the check for copies was asked of the name's own lookup, itself ambiguous); it is refused naming both, as in
    the folder."""
    root = tmp_path / "set"
    (root / "a").mkdir(parents=True)
    for f in (root / "x.png", root / "a" / "x.png", root / "y.png"):
        Image.new("RGB", (8, 8)).save(f)
    (tmp_path / "labels.csv").write_text("image,label\ny,dog\nx,cat\n")
    shutil.make_archive(str(tmp_path / "set"), "zip", root)
    for data in (root, tmp_path / "set.zip"):
        with pytest.raises(DataError, match=r"row 3 names 'x', which is (a/)?x\.png and (a/)?x\.png"):
            open_catalog(str(data), csv_opt=str(tmp_path / "labels.csv"))


def test_gtsrb_as_torchvision_downloads_it(tmp_path):
    """torchvision's gtsrb/: GTSRB/Training/00000/*.ppm (a folder a class, numbered) and GTSRB/Final_Test/Images/
    labelled by GT-final_test.csv (`Filename;...;ClassId`, the class by its number) beside GTSRB/. The held-out
    part is read labelled by that list, its classes named as the training part's folders (ClassId 0 is 00000):
    they were 0, 1 ..., which fastacgan.evaluate took for other classes than the run's."""
    root = tmp_path / "gtsrb"
    for c in ("00000", "00001", "00002"):
        (root / "GTSRB" / "Training" / c).mkdir(parents=True)
        Image.new("RGB", (8, 8), (int(c) * 80, 0, 0)).save(root / "GTSRB" / "Training" / c / f"00000_{c}.ppm")
    (root / "GTSRB" / "Final_Test" / "Images").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8)).save(root / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm")
    (root / "GT-final_test.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n" + "".join(
        f"{i:05d}.ppm;8;8;0;0;7;7;{(0, 2, 2, 0)[i]}\n" for i in range(4)))  # fmt: skip
    train = open_catalog(str(root))
    assert train.class_names == ["00000", "00001", "00002"] and train.labels.tolist() == [0, 1, 2]
    said = []
    held = open_catalog(str(root), split="test", log=said.append)
    assert held.class_names == ["00000", "00002"] and held.labels.tolist() == [0, 1, 1, 0]  # (a subset of the classes)
    assert said[-1] == (f"--data {root}: split into Final_Test, Training; held out: Final_Test/, its images labelled "
                        f"by {root / 'GT-final_test.csv'}")  # fmt: skip


def test_a_damaged_xz_archive_is_named(image_folder, tmp_path):
    """A .tar.xz damaged on the way: lzma's LZMAError escaped as a traceback (a gzip or bzip2 stream's errors were
    named); found by fuzzing open_catalog with damaged archives."""
    path = tmp_path / "set.tar.xz"
    with tarfile.open(path, "w:xz") as tf:
        tf.add(image_folder, "set")
    blob = path.read_bytes()
    half = len(blob) // 2  # (the compressed members, past the stream's header)
    path.write_bytes(blob[:half] + bytes(64) + blob[half + 64 :])
    with pytest.raises(DataError, match=rf"--data {path}: cannot read the archive \(Corrupt input data\)"):
        open_catalog(str(path))


def test_labels_csvs_that_are_no_csv_are_named(tmp_path):
    """A --csv that is no labels CSV (a field past csv's 131,072 characters; a blank first line; a count line, as
    CelebA's lists begin, with one line after it) is refused naming the file: csv.Error and IndexErrors escaped
    (found by fuzzing the CSV reader)."""
    root = tmp_path / "isic"
    (root / "Images").mkdir(parents=True)
    for n in ("a", "b"):
        Image.new("RGB", (8, 8)).save(root / "Images" / f"{n}.png")
    cases = {"long.csv": ("image,label\na.png," + "x" * 200_000 + "\n", r"cannot be read as a CSV \(field larger"),
             "blank.csv": ("\r\na.png,cat\n", r"needs a header and at least one row with two columns"),
             "count.csv": ("1\nimage,label", r"needs a header and at least one row")}  # fmt: skip
    was = csv.field_size_limit(131072)  # (csv's default, process-wide: FER2013's reader raised it for good)
    try:
        for name, (text, match) in cases.items():
            (tmp_path / name).write_text(text)
            with pytest.raises(DataError, match=rf"--csv {tmp_path / name}: {match}"):
                open_catalog(str(root), csv_opt=str(tmp_path / name))
    finally:
        csv.field_size_limit(was)
