"""Hugging Face data sets as Parquet and Arrow files (fastacgan/hf_sets.py), read without pyarrow: the files in
tests/data/hf were written by pyarrow as Hugging Face's datasets writes them (tests/data/hf/make_fixtures.py). They
were refused before ("a Hugging Face data set's file, which fastacgan does not read")."""

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from fastacgan import checkpoint as ckpt
from fastacgan import parquet_format
from fastacgan.data import DataError, NoTestSplit, open_catalog
from fastacgan.decode import decode_image
from fastacgan.train import main

HF = Path(__file__).parent / "data" / "hf"
RED = (0, 50, 100, 150, 200, 250)  # image i of a file: (RED[i % 6], 20 * (i // 6), 99), its label i % 3
CIFAR = ["airplane", "automobile", "bird"]


def colours(cat) -> list[tuple]:
    return [tuple(decode_image(cat.read_bytes(i), cat.names[i], 8, 3)[0, 0].tolist()) for i in range(len(cat))]


def want(rows) -> list[tuple]:
    return [(RED[i % 6], 20 * (i // 6), 99) for i in rows]


def pages(path: Path) -> list[tuple[str, int, int, bool]]:
    """(column, codec, page type of its first data page, has a dictionary page) of each column chunk in the file,
    read with the module's own Thrift reader: what the fixtures exercise."""
    raw = path.read_bytes()
    out = []
    for group in parquet_format.footer(path, raw)[4]:
        for chunk in group[1]:
            meta = chunk[3]
            head = parquet_format.Thrift(raw, meta[9]).struct()
            out.append((".".join(p.decode() for p in meta[3]), meta[4], head[1], 11 in meta))
    return out


def test_the_fixtures_use_what_hugging_face_files_use():
    """Snappy with dictionaries and pages v1 (older datasets); images plain and uncompressed (datasets 4+); gzip
    and pages v2; several row groups."""
    old = pages(HF / "cifar10" / "plain_text" / "train-00000-of-00001.parquet")
    assert {(c, codec, page, d) for c, codec, page, d in old} == {("img.bytes", 1, 0, True), ("img.path", 1, 0, True),
                                                                  ("label", 1, 0, True)}  # fmt: skip
    assert len(old) == 9  # 12 rows in groups of 5: three row groups
    new = pages(HF / "food" / "data" / "train-00000-of-00002.parquet")
    assert ("img.bytes", 0, 0, False) in new and ("label", 1, 0, True) in new
    assert {(codec, page) for _, codec, page, _ in pages(HF / "food" / "data" / "validation-00000-of-00001.parquet")} \
        == {(2, 3)}  # fmt: skip


def test_a_hugging_face_repository_as_downloaded():
    """uoft-cs/cifar10 as `huggingface-cli download` leaves it: README.md, .gitattributes and plain_text/ of a
    train and a test file; its classes as datasets names them (ClassLabel's names); the test file held out."""
    for data in (HF / "cifar10", HF / "cifar10" / "plain_text"):
        cat = open_catalog(str(data))
        assert cat.name == "cifar10" and cat.class_names == CIFAR and len(cat) == 12
        assert cat.labels.tolist() == [i % 3 for i in range(12)] and colours(cat) == want(range(12))
        assert cat.names[7] == str(HF / "cifar10" / "plain_text" / "train-00000-of-00001.parquet") + "[7]"
        for split in ("test", "held"):  # (evaluate's --test-data: the set given whole, its test split)
            held = open_catalog(str(data), split=split)
            assert held.class_names == CIFAR and held.labels.tolist() == [0, 1, 2, 0, 1, 2]
            assert colours(held) == want(range(6)) and held.names[0].endswith("test-00000-of-00001.parquet[0]")
    one = HF / "cifar10" / "plain_text" / "train-00000-of-00001.parquet"
    assert len(open_catalog(str(one))) == 12 and len(open_catalog(str(one), split="test")) == 6
    with pytest.raises(NoTestSplit, match="one split of its set"):
        open_catalog(str(one.with_name("test-00000-of-00001.parquet")), split="test")


def test_shards_a_validation_split_and_the_hubs_converted_form(tmp_path):
    """food101-like data/: two training shards read in order, the validation split held out (no test split);
    one shard given alone is read and said; the Hub's converted <config>/<split>/0000.parquet."""
    cat = open_catalog(str(HF / "food"))
    assert cat.name == "food" and len(cat) == 12 and colours(cat) == want(range(12))
    assert [Path(n).name for n in (cat.names[6], cat.names[7])] == ["train-00000-of-00002.parquet[6]",
                                                                    "train-00001-of-00002.parquet[0]"]  # fmt: skip
    held = open_catalog(str(HF / "food"), split="test")
    assert held.names[0].endswith("validation-00000-of-00001.parquet[0]") and colours(held) == want(range(6))
    shard = HF / "food" / "data" / "train-00000-of-00002.parquet"
    with pytest.warns(UserWarning, match=rf"{shard}: one of the 2 files of its split; --data {shard.parent} reads"):
        assert len(open_catalog(str(shard))) == 7
    conv = open_catalog(str(HF / "converted"))
    assert conv.name == "converted" and len(conv) == 6 and conv.class_names == CIFAR
    assert len(open_catalog(str(HF / "converted"), split="test")) == 3
    lone = tmp_path / "set"  # one split's shards named as no split: a training set, no test split
    lone.mkdir()
    shutil.copy(shard, lone / "0000.parquet")
    assert len(open_catalog(str(lone))) == 7
    with pytest.raises(NoTestSplit, match=r"no test split among its Parquet or Arrow files \(theirs: no split named"):
        open_catalog(str(lone), split="test")


def test_the_label_column_words_as_labels_and_binary_image_columns():
    """CIFAR-100's fine_label and coarse_label (two ClassLabels): the first, said, or the one --csv-label-col
    names; a binary column of JPEG files named image and words in a column named class, with no Hugging Face
    metadata: the words are the classes, in sorted order."""
    path = HF / "cifar100.parquet"
    with pytest.warns(UserWarning, match=r"the labels are column 'fine_label'; --csv-label-col names another: "
                      "coarse_label"):  # fmt: skip
        cat = open_catalog(str(path))
    assert cat.class_names == ["apple", "bed", "cup", "dog"] and cat.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coarse = open_catalog(str(path), label_col="coarse_label")
    assert coarse.class_names == ["fruit", "household"] and coarse.labels.tolist() == [0, 1] * 4
    with pytest.raises(DataError, match=r"--csv-label-col 'fine': no such column in .*cifar100\.parquet \(its "
                       r"columns: fine_label, coarse_label\)"):  # fmt: skip
        open_catalog(str(path), label_col="fine")
    words = open_catalog(str(HF / "words.parquet"))
    assert words.class_names == ["cat", "dog"] and words.labels.tolist() == [1, 0, 1, 0, 0, 1]
    got = np.array(colours(words))
    assert np.abs(got - np.array(want(range(6)))).max() <= 6  # (JPEG)


def test_what_it_cannot_read_is_said(tmp_path):
    with pytest.raises(DataError, match=r"unlabelled\.parquet: 3 of its 3 images have the label -1, as Hugging Face "
                       "marks an image with no label"):  # fmt: skip
        open_catalog(str(HF / "unlabelled.parquet"))
    with pytest.raises(DataError, match=r"tags\.parquet: no column of labels \(label, labels, \.\.\. or a "
                       r"ClassLabel\); --csv-label-col names one \(its columns: tags\)"):  # fmt: skip
        open_catalog(str(HF / "tags.parquet"))
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match=r"zstd\.parquet: its pages are zstd-compressed: pip install zstandard"):
            open_catalog(str(HF / "zstd.parquet"))
    else:
        assert colours(open_catalog(str(HF / "zstd.parquet"))) == want(range(3))
    good = (HF / "words.parquet").read_bytes()
    for name, data, said in (("junk.parquet", b"not parquet at all", "not a Parquet file (it does not begin and end "
                                                                      "with PAR1)"),
                             ("cut.parquet", good[:40] + good[-300:], "cannot read this Parquet file")):  # fmt: skip
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"--data {tmp_path / name}: {re.escape(said)}"):
            open_catalog(str(tmp_path / name))


def test_snappy_literals_and_copies():
    """Snappy's raw format: literals (short, and long with their length in the bytes after the tag), copies with
    1-, 2- and 4-byte offsets, a copy longer than its offset (it repeats what it copies)."""
    text = b"abcdefgh" * 10  # 80 bytes
    stream = bytes([100]) + bytes([(60 << 2) | 0, 79]) + text  # the length, a literal of 80 (1 length byte)
    stream += bytes([((8 - 4) << 2) | 1, 8])  # copy 8 from 8 back (1-byte offset): "abcdefgh"
    stream += bytes([((6 - 1) << 2) | 2, 3, 0])  # copy 6 from 3 back (2-byte offset): "fghfgh"
    stream += bytes([((6 - 1) << 2) | 3, 94, 0, 0, 0])  # copy 6 from 94 back (4-byte offset): "abcdef"
    assert parquet_format.snappy_decompress(stream) == text + b"abcdefgh" + b"fghfgh" + b"abcdef"
    with pytest.raises(ValueError, match="a back-reference 9 bytes back, 2 written"):
        parquet_format.snappy_decompress(bytes([4, 1 << 2]) + b"ab" + bytes([1, 9]))
    with pytest.raises(ValueError, match="2 bytes, its header says 5"):
        parquet_format.snappy_decompress(bytes([5, 1 << 2]) + b"ab")


def test_a_run_on_a_hugging_face_set_and_its_evaluation(tmp_path, capsys):
    """Trained on with the resident and the torch loaders (its bytes read in worker processes), then evaluated:
    the discriminator scored on its test split."""
    from fastacgan.evaluate import main as evaluate

    for loader in ("resident", "torch"):
        out = tmp_path / loader
        args = ["--data", HF / "cifar10", *TINY, "--batch-size", 4, "--steps", 2, "--loader", loader, "--out", out]
        assert main([str(a) for a in args + (["--workers", "1"] if loader == "torch" else [])]) == 0
        state = ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])
        assert state["step"] == 2 and state["classes"] == CIFAR
    capsys.readouterr()
    assert evaluate(["--ckpt", str(tmp_path / "torch"), "--n-per-class", "2", "--image-metrics", "0"]) == 0
    said = capsys.readouterr()
    assert "(held out)" in said.err and "its test split" in said.err


def test_a_repository_in_the_hubs_cache(tmp_path):
    """~/.cache/huggingface/hub/datasets--uoft-cs--cifar10 (what load_dataset and hf_hub_download keep): blobs/ of
    the files, refs/main naming a commit, snapshots/<commit>/plain_text/*.parquet links to the blobs. The
    repository's folder was "class folder blobs holds no images"; its snapshot's run was named by the commit."""
    repo = tmp_path / "hub" / "datasets--uoft-cs--cifar10"
    (repo / "blobs").mkdir(parents=True)
    old, new = repo / "snapshots" / ("0" * 40), repo / "snapshots" / ("1" * 40)
    for snap in (old, new):
        (snap / "plain_text").mkdir(parents=True)
    for k, split in enumerate(("train", "test")):
        shutil.copy(HF / "cifar10" / "plain_text" / f"{split}-00000-of-00001.parquet", repo / "blobs" / f"blob{k}")
        (new / "plain_text" / f"{split}-00000-of-00001.parquet").symlink_to(f"../../../blobs/blob{k}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    for data in (repo, new):
        cat = open_catalog(str(data))
        assert cat.name == "cifar10" and len(cat) == 12 and colours(cat) == want(range(12))
        assert len(open_catalog(str(data), split="test")) == 6
    (repo / "refs" / "main").unlink()  # no ref: the newest snapshot
    os.utime(old, (1, 1))
    assert len(open_catalog(str(repo))) == 12


def _cached(repo: Path, files: dict[str, bytes]) -> Path:
    """A data set's repository in the Hub's cache, as huggingface-cli download leaves it: each file a blob, linked
    from snapshots/<commit>/ by its path in the repository; refs/main names the commit."""
    snap = repo / "snapshots" / ("2" * 40)
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("2" * 40)
    for k, (rel, data) in enumerate(files.items()):
        (repo / "blobs" / f"{k:040x}").write_bytes(data)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).symlink_to(os.path.relpath(repo / "blobs" / f"{k:040x}", (snap / rel).parent))
    return repo


def test_webdataset_and_image_folder_repositories_in_the_hubs_cache(tmp_path, monkeypatch):
    """A repository of WebDataset shards (timm's imagenet-1k-wds) or of class folders, downloaded into the Hub's cache
    (huggingface-cli download's default): as --data they were "class folder blobs holds no images" (Parquet
    repositories alone were read from their snapshot). Now read from the snapshot refs/main names, which is said,
    held-out parts too, and the run named after the repository."""
    import io
    import tarfile

    from PIL import Image

    def png(red: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (8, 8), (red, 0, 0)).save(out, "PNG")
        return out.getvalue()

    def tar(samples: list[tuple[str, int, int]]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tf:
            for key, red, label in samples:
                for ext, data in ((".png", png(red)), (".cls", str(label).encode())):
                    info = tarfile.TarInfo(key + ext)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return out.getvalue()

    wds = _cached(tmp_path / "hub" / "datasets--timm--mini-wds", {
        "mini-train-0000.tar": tar([(f"t{i}", 20 * i, i % 2) for i in range(4)]),
        "mini-train-0001.tar": tar([(f"u{i}", 100 + 20 * i, i % 2) for i in range(2)]),
        "mini-validation-0000.tar": tar([("v0", 200, 0), ("v1", 220, 1)]), "README.md": b"# mini"})  # fmt: skip
    folders = _cached(tmp_path / "hub" / "datasets--someone--cats-and-dogs", {
        **{f"train/{c}/{i}.png": png(30 * k + i) for k, c in enumerate(("cat", "dog")) for i in range(3)},
        **{f"test/{c}/0.png": png(90 + k) for k, c in enumerate(("cat", "dog"))}, ".gitattributes": b""})  # fmt: skip
    for repo, name, n, held, classes in ((wds, "mini-wds", 6, 2, ["0", "1"]),
                                         (folders, "cats-and-dogs", 6, 2, ["cat", "dog"])):  # fmt: skip
        said = []
        cat = open_catalog(str(repo), log=said.append)
        assert cat.name == name and len(cat) == n and cat.class_names == classes
        assert said[0] == (f"--data {repo}: a repository in the Hugging Face Hub's cache: reading snapshots/"
                           f"{'2' * 40}/, the one refs/main names")  # fmt: skip
        assert len(open_catalog(str(repo), split="test")) == held
    assert sorted(colours(open_catalog(str(wds)))) == sorted((r, 0, 0) for r in (0, 20, 40, 60, 100, 120))
    for repo, name in ((wds, "mini-wds"), (folders, "cats-and-dogs")):  # its snapshot given itself: no commit's name
        assert open_catalog(str(repo / "snapshots" / ("2" * 40))).name == name
    (wds / "refs" / "main").unlink()  # no ref: the newest snapshot, said so
    said = []
    assert len(open_catalog(str(wds), log=said.append)) == 6 and said[0].endswith(f"snapshots/{'2' * 40}/, its newest")
    with pytest.raises(DataError, match=rf"--data {tmp_path / 'hub'} is the Hugging Face Hub's cache: give one of its "
                       rf"data sets, --data {folders} \(datasets--someone--cats-and-dogs, datasets--timm--mini-"
                       rf"wds\)$"):  # fmt: skip
        open_catalog(str(tmp_path / "hub"))  # (the cache itself: "class folder ... holds no images")
    (tmp_path / "models" / "models--google--vit-base" / "snapshots").mkdir(parents=True)
    with pytest.raises(DataError, match=r"models is the Hugging Face Hub's cache, and holds no data set \(models--"):
        open_catalog(str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)  # the default --out: runs/<the repository's name>, not the commit's
    assert main([str(a) for a in ["--data", folders, *TINY, "--batch-size", 4, "--steps", 1]]) == 0
    run = tmp_path / "runs" / "cats-and-dogs" / "checkpoints"
    assert ckpt.load_checkpoint(ckpt.list_checkpoints(run)[-1])["classes"] == ["cat", "dog"]


def test_arrow_files_of_save_to_disk_and_load_datasets_cache(tmp_path):
    """save_to_disk's DatasetDict (train/data-00000-of-00001.arrow, test/...: Arrow streams of several record
    batches), load_dataset's cache (cifar10-train.arrow beside a map()'s cache-<fingerprint>.arrow, passed over),
    Arrow's file form. They were refused ("a Hugging Face data set's file, which fastacgan does not read")."""
    saved = HF / "saved"
    for data in (saved, saved / "train", saved / "train" / "data-00000-of-00001.arrow"):
        cat = open_catalog(str(data))
        assert cat.name == "saved" and cat.class_names == CIFAR and len(cat) == 12
        assert cat.labels.tolist() == [i % 3 for i in range(12)] and colours(cat) == want(range(12))
    held = open_catalog(str(saved), split="test")
    assert held.names[0] == str(saved / "test" / "data-00000-of-00001.arrow") + "[0]"
    assert colours(held) == want(range(6))
    cache = HF / "cache" / "uoft-cs___cifar10" / "plain_text" / "0.0.0" / "0123abcd"
    for data in (HF / "cache", cache, cache / "cifar10-train.arrow"):
        cat = open_catalog(str(data))
        assert cat.name == "cifar10" and len(cat) == 12 and colours(cat) == want(range(12))  # (not the map's 2)
        assert open_catalog(str(data), split="test").names[-1] == str(cache / "cifar10-test.arrow") + "[5]"
    form = open_catalog(str(HF / "file_form.arrow"))
    assert form.labels.tolist() == [0, 1, 2, 0, 1] and colours(form) == want(range(5))
    mixed = open_catalog(str(HF / "mixed.arrow"))  # (a list column's buffers before the image's; int32 labels)
    assert mixed.class_names == ["0", "1", "2"] and mixed.labels.tolist() == [2, 0, 1, 2]
    assert colours(mixed) == want(range(4))
    with pytest.raises(DataError, match=r"holes\.arrow: 2 of column img\.bytes's values are missing"):
        open_catalog(str(HF / "holes.arrow"))
    raw = (saved / "train" / "data-00000-of-00001.arrow").read_bytes()
    for name, data, said in (("cut.arrow", raw[: len(raw) // 2], "cannot read an Arrow file"),
                             ("odd.arrow", raw[200:], "cannot read an Arrow file")):  # fmt: skip
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"--data {tmp_path / name}: {said}"):
            open_catalog(str(tmp_path / name))


def test_a_set_larger_than_memory_is_refused_and_reading_shards_is_said(monkeypatch):
    """Its images are held in memory, as a compressed archive's are: a set whose files pass archives.memory_budget
    is refused before they are read, naming what to do; a set of several files says each as it is read."""
    from fastacgan import archives

    said = []
    assert len(open_catalog(str(HF / "food"), log=said.append)) == 12
    assert [m.split(": ", 1)[1].split(", ")[:2] for m in said if m.startswith("reading")] == [
        ["1 of 2 files", "7 images"], ["2 of 2 files", "12 images"]]  # fmt: skip
    monkeypatch.setattr(archives, "memory_budget", lambda: 1000)
    with pytest.raises(
        DataError,
        match=r"food: its 2 file\(s\) hold 0\.0 GiB, and their images are held in memory, "
        r"which may take 0\.0 GiB .*: give fewer of its files, or save its images as an image folder",
    ):
        open_catalog(str(HF / "food"))
