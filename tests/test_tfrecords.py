"""TFRecord files of tf.train.Example records (fastacgan/tfrecords.py), read without TensorFlow. tests/data/tfrecord/
holds files written by the `tfrecord` package (protobuf's own serialiser; make_fixtures.py says how): TensorFlow
Datasets' layout of a CIFAR-10-like set (images of red = the record's number in its split, green = 40 x its label)
and Kaggle's TPU sets' (train/, val/, test/ without labels)."""

import gzip
import shutil
from pathlib import Path

import pytest
from conftest import TINY

from fastacgan import checkpoint as ckpt
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.evaluate import main as evaluate
from fastacgan.train import main

TF = Path(__file__).parent / "data" / "tfrecord"
CLASSES = ["airplane", "automobile", "bird"]
TRAIN = [0, 2, 1, 0, 1, 2, 2, 0]  # make_fixtures.py's labels


def pixels(cat) -> list[list[int]]:
    return [decode_image(cat.read_bytes(i), cat.names[i], 8, 3)[0, 0].tolist() for i in range(len(cat))]


@pytest.fixture
def tfds(tmp_path) -> Path:
    """~/tensorflow_datasets/cifar10 as tfds.load leaves it: 3.0.2/ (the newest) beside 1.0.0/."""
    shutil.copytree(TF / "tfds", tmp_path / "tensorflow_datasets")
    return tmp_path / "tensorflow_datasets" / "cifar10"


def test_a_tensorflow_datasets_set_its_classes_and_its_test_split(tfds):
    """--data ~/tensorflow_datasets/cifar10, its version folder, or one shard: they were refused ("TFRecord files
    ... which fastacgan does not read: save their images and labels as an .npz first"). Now the newest version's
    training shards, in order, the image picked by features.json (an "id" bytes feature beside it), the classes
    named by label.labels.txt; the test shards held out."""
    version = tfds / "3.0.2"
    shard = version / "cifar10-train.tfrecord-00000-of-00002"
    for data, n in ((tfds, 8), (version, 8), (shard, 5)):
        said = []
        cat = open_catalog(str(data), log=said.append)
        newest = f"--data {tfds}: reading 3.0.2/, its newest version of TFRecord files"
        assert said == ([newest] if data == tfds else [])
        assert cat.name == "cifar10" and cat.class_names == CLASSES and cat.labels.tolist() == TRAIN[:n]
        assert pixels(cat) == [[i, 40 * c, 0] for i, c in enumerate(TRAIN[:n])]
        assert cat.names[0] == f"{shard}[0]"
        for split in ("test", "held") if data != shard else ("test",):  # (held: a training shard is itself)
            held = open_catalog(str(data), split=split)
            assert held.class_names == CLASSES and held.labels.tolist() == [1, 0, 2]
            assert pixels(held) == [[200, 40, 0], [201, 0, 0], [202, 80, 0]]
    for meta in ("features.json", "label.labels.txt"):  # without them: the image by its bytes, numbers as classes
        (version / meta).unlink()
    cat = open_catalog(str(tfds))
    assert cat.class_names == ["0", "1", "2"] and cat.labels.tolist() == TRAIN and len(pixels(cat)) == 8
    with pytest.raises(DataError, match=r"--csv-label-col 'id': no integer feature of that name in .*cifar10-train"
                       r"\.tfrecord-00000-of-00002 \(features: id, image, label\)"):  # fmt: skip
        open_catalog(str(tfds), label_col="id")
    (tfds.parent / "downloads" / "extracted").mkdir(parents=True)  # the data folder itself: its sets named
    shutil.copytree(tfds, tfds.parent / "mnist")
    with pytest.raises(DataError, match=rf"--data {tfds.parent} is TensorFlow Datasets' data folder: give one of its "
                       rf"data sets, --data {tfds} \(cifar10, mnist\)$"):  # fmt: skip
        open_catalog(str(tfds.parent))  # (it was "class folder cifar10 holds no images")
    for f in version.glob("cifar10-test*"):
        f.unlink()
    with pytest.raises(NoTestSplit, match=r"no test split among its TFRecord files \(theirs: train\)"):
        open_catalog(str(tfds), split="test")


def test_kaggles_tpu_sets_hold_out_the_labelled_validation_files(tmp_path):
    """tfrecords-jpeg-192x192/ with train/, val/ and test/ (test/'s records have no "class"): the training files
    train; held out, the validation files, the unlabelled test files passed over, said."""
    root = shutil.copytree(TF / "kaggle", tmp_path / "flowers")
    data = root / "tfrecords-jpeg-192x192"
    cat = open_catalog(str(data))
    assert cat.name == "tfrecords-jpeg-192x192" and cat.class_names == ["0", "1", "2"]
    assert cat.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert [p[0] for p in pixels(cat)] == pytest.approx([30 * i for i in range(6)], abs=3)  # (JPEGs)
    said = []
    held = open_catalog(str(data), split="test", log=said.append)
    assert held.labels.tolist() == [0, 1, 2] and "val" in held.names[0]
    assert said == [f"note: --data {data}: its test files have no labels: passed over"]
    with pytest.raises(DataError, match=r"00-192x192-2\.tfrec: no label \(an integer feature named label, class, "
                       r"\.\.\.\); --csv-label-col names one \(features: id, image\)"):  # fmt: skip
        open_catalog(str(data / "test" / "00-192x192-2.tfrec"))


def test_files_it_does_not_read_are_named(tmp_path):
    """Unlabelled records (-1), a gzip-compressed file, one cut short, and one of other records."""
    with pytest.raises(DataError, match=r"set-train\.tfrecord-00000-of-00001\[0\]: label -1 \(an unlabelled record\)"):
        open_catalog(str(TF / "unlabelled"))
    good = (TF / "tfds" / "cifar10" / "3.0.2" / "cifar10-test.tfrecord-00000-of-00001").read_bytes()
    zipped = tmp_path / "z-train.tfrecord-00000-of-00001"
    zipped.write_bytes(gzip.compress(good))
    with pytest.raises(DataError, match=r"a gzip-compressed TFRecord file: unpack it \(gunzip\) and give that"):
        open_catalog(str(zipped))
    cut = tmp_path / "cut-train.tfrecord-00000-of-00001"
    cut.write_bytes(good[:-30])
    with pytest.raises(DataError, match=r"a record of \d+ bytes at byte \d+ runs past the end of the file"):
        open_catalog(str(cut))
    junk = tmp_path / "junk-train.tfrecord-00000-of-00001"
    junk.write_bytes(len(b"\xff\xff\xff").to_bytes(8, "little") + bytes(4) + b"\xff\xff\xff" + bytes(4))
    with pytest.raises(DataError, match=r"record 0 is not a tf\.train\.Example"):
        open_catalog(str(junk))


def test_a_run_on_a_tensorflow_datasets_set_and_its_evaluation(tfds, tmp_path, capsys):
    """Trained on with the images read from the files in worker processes; evaluate scores D on the test split."""
    out = tmp_path / "run"
    args = ["--data", tfds, *TINY, "--batch-size", 4, "--steps", 2, "--loader", "torch", "--workers", 1, "--out", out]
    assert main([str(a) for a in args]) == 0
    assert ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])["classes"] == CLASSES
    capsys.readouterr()
    assert evaluate(["--ckpt", str(out), "--n-per-class", "2", "--image-metrics", "0"]) == 0
    said = capsys.readouterr().err
    assert "3 images (held out)" in said and "its test split" in said
