"""Image sets whose lists beside their images say which images train (fastacgan/listed_sets.py): CUB-200-2011 and
DTD here (Oxford-IIIT Pet, Food-101 and FGVC-Aircraft are in test_binary_sets.py)."""

import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import TINY
from PIL import Image

from fastacgan import checkpoint as ckpt
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.evaluate import main as evaluate
from fastacgan.train import main

BIRDS = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "010.Red_winged_Blackbird"]


def _cub(root: Path) -> tuple[Path, list[str], list[str]]:
    """A CUB_200_2011 folder as its tarball unpacks (attributes.txt beside it): 4 images a class, the 4th of each
    in the test split, images.txt's order not the classes' (its ids are the images' numbers, not sorted by class);
    the red of image k is 20 k. Returns the folder, the training and the test images' paths in images.txt."""
    birds = root / "CUB_200_2011"
    rows, train, test = [], [], []
    for k in range(12):
        cls = BIRDS[(k * 2) % 3]  # (ids not in class order)
        (birds / "images" / cls).mkdir(parents=True, exist_ok=True)
        rel = f"{cls}/{cls[4:]}_{k:04d}_{100 + k}.jpg"
        Image.new("RGB", (30, 20), (20 * k, 0, 0)).save(birds / "images" / rel)
        (test if k >= 9 else train).append(rel)
        rows.append((k + 1, rel))
    (birds / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel in rows))
    (birds / "train_test_split.txt").write_text("".join(f"{i} {int(k < 9)}\n" for k, (i, _) in enumerate(rows)))
    (birds / "image_class_labels.txt").write_text("".join(f"{i} {int(r[:3])}\n" for i, r in rows))
    (birds / "classes.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in enumerate(BIRDS)))
    (birds / "bounding_boxes.txt").write_text("".join(f"{i} 1.0 2.0 20.0 10.0\n" for i, _ in rows))
    (birds / "attributes").mkdir()
    (birds / "attributes" / "certainties.txt").write_text("1 not visible\n")
    (birds / "parts").mkdir()
    (birds / "parts" / "parts.txt").write_text("1 back\n")
    (root / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    return birds, train, test


def test_cub_200_2011_as_its_tarball_unpacks(tmp_path):
    """CUB_200_2011/: images/<class>/ beside images.txt, train_test_split.txt and classes.txt, attributes/ and
    parts/. It was refused ("class folder attributes holds no images"), naming images/, which read all of them, the
    test split's too, and left evaluate nothing held out. Now train_test_split.txt's training images train (their
    classes: their folders, in classes.txt's order) and its test images are held out."""
    birds, train, test = _cub(tmp_path / "data")
    for given in (birds, tmp_path / "data"):  # (or the folder its tarball was unpacked in)
        cat = open_catalog(str(given))
        assert cat.name == "cub200" and cat.class_names == BIRDS and len(cat) == 9
        assert [Path(n).relative_to(birds / "images").as_posix() for n in cat.names] == train
        assert cat.labels.tolist() == [BIRDS.index(r.split("/")[0]) for r in train] == [0, 2, 1, 0, 2, 1, 0, 2, 1]
        assert decode_image(cat.read_bytes(5), cat.names[5], 8, 3)[0, 0, 0].item() in range(95, 106)  # red 100
        held = open_catalog(str(given), split="test")
        assert [Path(n).relative_to(birds / "images").as_posix() for n in held.names] == test
        assert held.class_names == BIRDS and held.labels.tolist() == [0, 2, 1]
    said = []
    whole = open_catalog(str(birds / "images"), log=said.append)
    assert len(whole) == 12 and whole.class_names == BIRDS  # all of them, as asked, and said
    assert said == [
        f"note: {birds / 'images'} is CUB-200-2011's images, read whole, its test list's too (train_test_split.txt "
        f"lists its split): --data {birds} trains on its training list and holds out the test list"
    ]
    (birds / "classes.txt").unlink()  # the folders, sorted
    assert open_catalog(str(birds)).class_names == BIRDS
    (birds / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    with pytest.raises(DataError, match=r"images\.txt: image '010\.Red_winged_Blackbird/.*': its class is not in "
                       r"classes\.txt"):  # fmt: skip
        open_catalog(str(birds))
    (birds / "classes.txt").unlink()
    (birds / "images" / train[4]).unlink()
    with pytest.raises(DataError, match=rf"1 of the 9 images that images\.txt lists are not in "
                       rf"images/{train[4].split('/')[0]}/, e\.g\. {train[4].split('/')[1]}"):  # fmt: skip
        open_catalog(str(birds))
    split = (birds / "train_test_split.txt").read_text().splitlines()
    (birds / "train_test_split.txt").write_text("\n".join(split[:-1]) + "\n")
    with pytest.raises(DataError, match=r"train_test_split\.txt: image 12 of images\.txt is 'not there'; expected 1 "
                       r"\(it trains\) or 0 \(the test split\)"):  # fmt: skip
        open_catalog(str(birds))
    (birds / "train_test_split.txt").write_text("".join(f"{k + 1} 1\n" for k in range(12)))
    with pytest.raises(NoTestSplit, match=r"train_test_split\.txt puts no image in the test split"):
        open_catalog(str(birds), split="test")
    (birds / "images.txt").write_text("1\n")
    with pytest.raises(DataError, match=r"images\.txt: '1'; expected lines 'id value' \(1 001\.Black_footed"):
        open_catalog(str(birds))


def _dtd(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """torchvision's DTD download: root/dtd/dtd/ with images/<class>/ and labels/{train,val,test}1.txt (and the
    other nine partitions' lists, imdb/), 3 images a class, one in each list; the red of the k-th image 20 k."""
    data = root / "dtd" / "dtd"
    lists = {"train": [], "val": [], "test": []}
    for k, (cls, part) in enumerate((c, p) for c in ("banded", "blotchy", "zigzagged") for p in lists):
        (data / "images" / cls).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (30, 20), (20 * k, 0, 0)).save(data / "images" / cls / f"{cls}_{k:04d}.jpg")
        lists[part].append(f"{cls}/{cls}_{k:04d}.jpg")
    (data / "labels").mkdir()
    for part, rows in lists.items():
        (data / "labels" / f"{part}1.txt").write_text("\n".join(rows[::-1]) + "\n")  # (its own order, kept)
        (data / "labels" / f"{part}2.txt").write_text("\n".join(rows[:1]) + "\n")
    (data / "labels" / "labels_joint_anno.txt").write_text("banded/banded_0000.jpg banded\n")
    (data / "imdb").mkdir()
    (data / "imdb" / "imdb.mat").write_bytes(bytes(128))
    return data, lists


def test_dtd_as_torchvision_downloads_it(tmp_path):
    """dtd/dtd/: images/<class>/ beside labels/train1.txt, val1.txt, test1.txt (`banded/banded_0002.jpg`) and imdb/.
    It was refused ("class folder imdb holds no images"), naming images/, which read all of them, the test list's
    too. Now partition 1's training and validation lists train, its test list is held out; the classes sorted, as
    torchvision's."""
    data, lists = _dtd(tmp_path / "data")
    classes = ["banded", "blotchy", "zigzagged"]
    for given in (tmp_path / "data", data.parent, data):
        cat = open_catalog(str(given))
        assert cat.name == "dtd" and cat.class_names == classes
        assert [Path(n).relative_to(data / "images").as_posix() for n in cat.names] == (
            lists["train"][::-1] + lists["val"][::-1]
        )
        assert cat.labels.tolist() == [2, 1, 0, 2, 1, 0]
        assert decode_image(cat.read_bytes(1), cat.names[1], 8, 3)[0, 0, 0].item() in range(55, 66)  # red 60
        held = open_catalog(str(given), split="held")
        assert [Path(n).relative_to(data / "images").as_posix() for n in held.names] == lists["test"][::-1]
        assert held.class_names == classes and held.labels.tolist() == [2, 1, 0]
    said = []
    assert len(open_catalog(str(data / "images"), log=said.append)) == 9
    assert said == [
        f"note: {data / 'images'} is DTD's images, read whole, its test list's too (labels/ lists its split): "
        f"--data {data} trains on its training list and holds out the test list"
    ]
    (data / "labels" / "test1.txt").unlink()
    with pytest.raises(NoTestSplit, match=r"no labels/test1\.txt \(DTD's test split\)"):
        open_catalog(str(data), split="test")
    assert len(open_catalog(str(data))) == 6
    (data / "labels" / "val1.txt").write_text("banded_0001.jpg\n")
    with pytest.raises(DataError, match=r"val1\.txt: image 'banded_0001\.jpg'; expected lines 'class/image' "
                       r"\(banded/banded_0002\.jpg\)"):  # fmt: skip
        open_catalog(str(data))
    (data / "labels" / "val1.txt").write_text("banded/banded_0099.jpg\n")
    with pytest.raises(DataError, match=r"1 of the 4 images that labels/train1\.txt and labels/val1\.txt list are "
                       r"not in images/banded/, e\.g\. banded_0099\.jpg"):  # fmt: skip
        open_catalog(str(data))


def _zip(folder: Path, to: Path) -> Path:
    """A zip of the folder's files as Kaggle's and Windows' zips hold them (the folder's name first, no directory
    entries)."""
    with zipfile.ZipFile(to, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder.parent).as_posix())
    return to


def test_their_archives_are_read_as_the_folders_they_unpack_into(tmp_path):
    """CUB_200_2011.tgz (its tarball: CUB_200_2011/ beside attributes.txt), DTD's tar.gz and a zip of it, FGVC-
    Aircraft's tar (fgvc-aircraft-2013b/data/): their lists were passed over (".txt (8)") and every image read as a
    class folder's, the test list's too, none held out ("only ... have a test split"), FGVC-Aircraft's as one class,
    images. Now they are read as the folders they unpack into: the training list trains, the test list is held out;
    each image read from the archive, whether held in memory (compressed), read by offset (a tar) or by name (a
    zip)."""
    birds, train, test = _cub(tmp_path / "cub")
    with tarfile.open(tmp_path / "CUB_200_2011.tgz", "w:gz") as tf:
        tf.add(birds, "CUB_200_2011")
        tf.add(birds.parent / "attributes.txt", "attributes.txt")
    dtd, lists = _dtd(tmp_path / "dtd-folder")
    with tarfile.open(tmp_path / "dtd-r1.0.1.tar.gz", "w:gz") as tf:
        tf.add(dtd, "dtd")  # (the tarball holds dtd/images/, dtd/labels/, dtd/imdb/)
    sets = {
        tmp_path / "CUB_200_2011.tgz": ("cub200", BIRDS, "CUB_200_2011/images/", train, test),
        tmp_path / "dtd-r1.0.1.tar.gz": ("dtd", ["banded", "blotchy", "zigzagged"], "dtd/images/",
                                         lists["train"][::-1] + lists["val"][::-1], lists["test"][::-1]),
        _zip(dtd, tmp_path / "dtd.zip"): ("dtd", ["banded", "blotchy", "zigzagged"], "dtd/images/",
                                          lists["train"][::-1] + lists["val"][::-1], lists["test"][::-1]),
    }  # fmt: skip
    for archive, (name, classes, under, rows, held_rows) in sets.items():
        said = []
        cat = open_catalog(str(archive), log=said.append)
        assert said == [] and cat.name == name and cat.class_names == classes  # (no ".txt (8) passed over")
        assert cat.names == [f"{archive}:{under}{r}" for r in rows] and cat.sources == [str(archive)]
        assert cat.labels.tolist() == [classes.index(r.split("/")[0]) for r in rows]
        folder_cat = open_catalog(str(birds if name == "cub200" else dtd))
        for i in range(len(cat)):  # the bytes of the same files
            assert cat.read_bytes(i) == folder_cat.read_bytes(i)
        held = open_catalog(str(archive), split="test")
        assert held.names == [f"{archive}:{under}{r}" for r in held_rows] and held.class_names == classes
        assert held.labels.tolist() == [classes.index(r.split("/")[0]) for r in held_rows]
    data = tmp_path / "air" / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (30, 20), (i * 60, 0, 0)).save(data / "images" / f"{1000000 + i}.jpg")
    (data / "images_variant_trainval.txt").write_text("1000000 707-320\n1000001 A320\n1000002 707-320\n")
    (data / "variants.txt").write_text("707-320\nA320\n")
    with tarfile.open(tmp_path / "fgvc-aircraft-2013b.tar", "w") as tf:  # (uncompressed: read by offset)
        tf.add(data.parent, "fgvc-aircraft-2013b")
    cat = open_catalog(str(tmp_path / "fgvc-aircraft-2013b.tar"))
    assert cat.name == "fgvc_aircraft" and cat.class_names == ["707-320", "A320"] and cat.labels.tolist() == [0, 1, 0]
    assert decode_image(cat.read_bytes(2), cat.names[2], 8, 3)[0, 0, 0].item() in range(115, 126)  # red 120
    with pytest.raises(NoTestSplit, match=r"fgvc-aircraft-2013b\.tar: no data/images_variant_test\.txt "
                       r"\(FGVC-Aircraft's test split\)"):  # fmt: skip
        open_catalog(str(tmp_path / "fgvc-aircraft-2013b.tar"), split="test")
    (dtd / "images" / lists["val"][0]).unlink()  # a listed image not in the archive: named, as in the folder
    with pytest.raises(DataError, match=rf"--data {tmp_path / 'dtd2.zip'}: 1 of the 6 images that "
                       rf"dtd/labels/train1\.txt and dtd/labels/val1\.txt list are not in dtd/images/banded/, e\.g\. "
                       rf"{lists['val'][0].split('/')[1]}"):  # fmt: skip
        open_catalog(str(_zip(dtd, tmp_path / "dtd2.zip")))
    shutil.rmtree(dtd / "labels")  # its lists gone: the class folders, as before
    assert open_catalog(str(_zip(dtd, tmp_path / "dtd3.zip"))).class_names == ["banded", "blotchy", "zigzagged"]


@pytest.mark.parametrize("form", ["folder", "tarball"])
def test_a_run_on_cub_and_its_evaluation_use_its_split(tmp_path, capsys, form):
    """A run on CUB_200_2011 (or its tarball) trains on its training images, named after the set; fastacgan.evaluate
    scores the discriminator on its test split (it was refused; its images/ and its tarball left evaluate nothing
    held out)."""
    birds, _, _ = _cub(tmp_path / "data")
    if form == "tarball":
        with tarfile.open(tmp_path / "CUB_200_2011.tgz", "w:gz") as tf:
            tf.add(birds, "CUB_200_2011")
        shutil.rmtree(birds)
        birds = tmp_path / "CUB_200_2011.tgz"
    out = tmp_path / "run"
    assert main([str(a) for a in ["--data", birds, *TINY, "--batch-size", 4, "--steps", 2, "--out", out]]) == 0
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])
    assert state["step"] == 2 and state["classes"] == BIRDS
    assert "-> 9 images, 3 classes" in capsys.readouterr().out
    assert evaluate(["--ckpt", str(out), "--n-per-class", "2", "--image-metrics", "0"]) == 0
    said = capsys.readouterr().err
    assert "(held out)" in said and "its test split" in said


@pytest.mark.parametrize("name", ["CUB_200_2011", "dtd"])
def test_their_names_given_as_data_say_what_to_download(tmp_path, monkeypatch, name):
    """--data CUB_200_2011 where there is none: what to give once it is downloaded (fastacgan downloads nothing)."""
    monkeypatch.chdir(tmp_path)
    folder = "its CUB_200_2011 folder" if name != "dtd" else "torchvision's download folder (its root) or its dtd"
    with pytest.raises(DataError, match=rf"--data {name}: no such file or folder; fastacgan downloads nothing: .*"
                       rf"{re.escape(folder)}"):  # fmt: skip
        open_catalog(name)


def test_a_damaged_list_naming_an_impossible_file_is_refused(tmp_path):
    """A list whose line names a file too long for the file system (a damaged images.txt) is refused as naming
    images that are not there: pathlib's is_file raised ENAMETOOLONG (found by fuzzing the sets' lists)."""
    birds, train, _ = _cub(tmp_path)
    lines = (birds / "images.txt").read_text().splitlines()
    lines[0] = f"1 {train[0].split('/')[0]}/{'x' * 300}.jpg"
    (birds / "images.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"1 of the 9 images that .* are not in "):
        open_catalog(str(birds))
