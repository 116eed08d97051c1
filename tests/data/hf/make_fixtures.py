"""How the Parquet files in this folder were made (with pyarrow 26, which the tests do not need): Hugging Face
data sets as `datasets` writes them, small. Run from this folder: python make_fixtures.py.

Image i of a file is an 8x8 PNG of one colour, (RED[i % 6], 20 * (i // 6), 99) (JPEG in words.parquet), so a test
can check each image's pixels and its label.
"""

import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

RED = (0, 50, 100, 150, 200, 250)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def picture(i: int, kind: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (RED[i % 6], 20 * (i // 6), 99)).save(buf, kind, quality=95)
    return buf.getvalue()


def table(n: int, columns: dict, features: dict) -> pa.Table:
    data = {"img": pa.array([{"bytes": picture(i), "path": None} for i in range(n)], IMAGE)}
    data.update({k: pa.array(v(n), t) for k, (v, t) in columns.items()})
    hf = {"info": {"features": {"img": {"_type": "Image"}, **features}}}
    return pa.table(data).replace_schema_metadata({"huggingface": json.dumps(hf)})


CIFAR = {"label": (lambda n: [i % 3 for i in range(n)], pa.int64())}
NAMES = {"label": {"names": ["airplane", "automobile", "bird"], "_type": "ClassLabel"}}
NEW = {  # datasets 4+: the images neither compressed nor in a dictionary, the rest Snappy
    "compression": {"img.bytes": "none", "img.path": "none", "label": "snappy"},
    "use_dictionary": ["label"],
    "column_encoding": {"img.bytes": "PLAIN", "img.path": "PLAIN"},
}
for d in ("cifar10/plain_text", "food/data", "converted/plain_text/train", "converted/plain_text/test"):
    os.makedirs(d, exist_ok=True)
# uoft-cs/cifar10 as downloaded (older datasets: Snappy and dictionaries everywhere, pages v1)
open("cifar10/README.md", "w").write("---\nlicense: unknown\n---\n# CIFAR-10\n")
open("cifar10/.gitattributes", "w").write("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
pq.write_table(table(12, CIFAR, NAMES), "cifar10/plain_text/train-00000-of-00001.parquet", row_group_size=5)
pq.write_table(table(6, CIFAR, NAMES), "cifar10/plain_text/test-00000-of-00001.parquet")
# a set of two training shards and a validation split, pages v2 and gzip for the latter
shard = table(12, CIFAR, NAMES)
pq.write_table(shard.slice(0, 7), "food/data/train-00000-of-00002.parquet", **NEW)
pq.write_table(shard.slice(7), "food/data/train-00001-of-00002.parquet", **NEW)
pq.write_table(
    table(6, CIFAR, NAMES), "food/data/validation-00000-of-00001.parquet", compression="gzip", data_page_version="2.0"
)
# the Hub's converted form: <config>/<split>/0000.parquet
pq.write_table(table(6, CIFAR, NAMES), "converted/plain_text/train/0000.parquet")
pq.write_table(table(3, CIFAR, NAMES), "converted/plain_text/test/0000.parquet")
# CIFAR-100's two ClassLabels
two = {
    "fine_label": (lambda n: [i % 4 for i in range(n)], pa.int64()),
    "coarse_label": (lambda n: [i % 2 for i in range(n)], pa.int64()),
}
pq.write_table(
    table(
        8,
        two,
        {
            "fine_label": {"names": ["apple", "bed", "cup", "dog"], "_type": "ClassLabel"},
            "coarse_label": {"names": ["fruit", "household"], "_type": "ClassLabel"},
        },
    ),
    "cifar100.parquet",
)
# a binary column of JPEG files and words as labels, no Hugging Face metadata (a Parquet file written by hand)
pq.write_table(
    pa.table(
        {
            "image": pa.array([picture(i, "JPEG") for i in range(6)], pa.binary()),
            "caption": pa.array([f"photo {i}" for i in range(6)]),
            "class": pa.array(["dog", "cat", "dog", "cat", "cat", "dog"]),
        }
    ),
    "words.parquet",
)
# a test split without labels (-1), labels in lists, zstd pages
pq.write_table(table(3, {"label": (lambda n: [-1] * n, pa.int64())}, NAMES), "unlabelled.parquet")
pq.write_table(table(3, {"tags": (lambda n: [[1, 2]] * n, pa.list_(pa.int64()))}, {}), "tags.parquet")
pq.write_table(table(3, CIFAR, NAMES), "zstd.parquet", compression="zstd")


# Arrow: save_to_disk's DatasetDict (a stream a split, written in batches, as datasets' ArrowWriter writes them)
def stream(t: pa.Table, path: str, batch: int = 4) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, t.schema) as w:
        for b in t.to_batches(max_chunksize=batch):
            w.write_batch(b)


for split, n in (("train", 12), ("test", 6)):
    stream(table(n, CIFAR, NAMES), f"saved/{split}/data-00000-of-00001.arrow")
    open(f"saved/{split}/state.json", "w").write('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}')
open("saved/dataset_dict.json", "w").write('{"splits": ["train", "test"]}')
# load_dataset's cache: <builder>-<split>.arrow, and a map()'s output beside them (not the set)
cache = "cache/uoft-cs___cifar10/plain_text/0.0.0/0123abcd"
stream(table(12, CIFAR, NAMES), f"{cache}/cifar10-train.arrow")
stream(table(6, CIFAR, NAMES), f"{cache}/cifar10-test.arrow")
stream(table(2, CIFAR, NAMES), f"{cache}/cache-5f2ab0c1e2d3.arrow")
open(f"{cache}/dataset_info.json", "w").write("{}")
# Arrow's file form (ARROW1 ... ARROW1), and a stream with a missing image
with pa.OSFile("file_form.arrow", "wb") as f, pa.ipc.new_file(f, table(5, CIFAR, NAMES).schema) as w:
    w.write_table(table(5, CIFAR, NAMES))
holes = table(3, CIFAR, NAMES)
holes = holes.set_column(0, "img", pa.array([{"bytes": picture(0), "path": None}, None, None], IMAGE))
stream(holes, "holes.arrow")
# a list column before the image, a string column with a missing value, int32 labels, no Hugging Face metadata
mixed = pa.table(
    {
        "tags": pa.array([[1, 2], [3], [], [4, 5, 6]], pa.list_(pa.int64())),
        "img": pa.array([{"bytes": picture(i), "path": f"{i}.png"} for i in range(4)], IMAGE),
        "note": pa.array(["a", "b", None, "d"]),
        "label": pa.array([2, 0, 1, 2], pa.int32()),
    }
)
stream(mixed, "mixed.arrow", batch=3)
