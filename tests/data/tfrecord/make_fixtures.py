"""Writes the TFRecord files the tests read (python make_fixtures.py, with the `tfrecord` package, which writes
tf.train.Example records with protobuf: `pip install tfrecord`; the tests never import it).

- tfds/cifar10/3.0.2/: TensorFlow Datasets' layout (cifar10-train.tfrecord-0000{0,1}-of-00002, cifar10-test...,
  features.json, label.labels.txt, dataset_info.json); records of "id" (text), "image" (an 8x8 PNG of red = the
  record's number in its split, green = 40 x its label) and "label"; an older version folder, 1.0.0, beside it.
- kaggle/tfrecords-jpeg-192x192/: Kaggle's TPU sets (train/, val/: "image" a JPEG, "class", "id"; test/: no class).
- unlabelled/: a TFDS-named file whose labels are -1."""

import io
import json
import shutil
from pathlib import Path

from PIL import Image
from tfrecord import TFRecordWriter

HERE = Path(__file__).parent


def image(red: int, green: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (red, green, 0)).save(out, fmt, quality=95)
    return out.getvalue()


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = TFRecordWriter(str(path))
    for row in rows:
        w.write(row)
    w.close()


for old in ("tfds", "kaggle", "unlabelled"):
    shutil.rmtree(HERE / old, ignore_errors=True)
tfds = HERE / "tfds" / "cifar10" / "3.0.2"
labels = [0, 2, 1, 0, 1, 2, 2, 0]  # train: 8 records in two shards; test: 3
rows = [
    {"id": (f"train_{i:05d}".encode(), "byte"), "image": (image(i, 40 * c), "byte"), "label": (c, "int")}
    for i, c in enumerate(labels)
]
write(tfds / "cifar10-train.tfrecord-00000-of-00002", rows[:5])
write(tfds / "cifar10-train.tfrecord-00001-of-00002", rows[5:])
write(
    tfds / "cifar10-test.tfrecord-00000-of-00001",
    [
        {"id": (f"test_{i:05d}".encode(), "byte"), "image": (image(200 + i, 40 * c), "byte"), "label": (c, "int")}
        for i, c in enumerate([1, 0, 2])
    ],
)
(tfds / "label.labels.txt").write_text("airplane\nautomobile\nbird\n")
features = {
    "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
    "featuresDict": {
        "features": {
            "id": {"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text", "text": {}},
            "image": {
                "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
                "image": {"shape": {"dimensions": ["32", "32", "3"]}, "dtype": "uint8", "encodingFormat": "png"},
            },
            "label": {
                "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
                "classLabel": {"numClasses": "3"},
            },
        }
    },
}
(tfds / "features.json").write_text(json.dumps(features, indent=2))
(tfds / "dataset_info.json").write_text(
    json.dumps(
        {
            "name": "cifar10",
            "version": "3.0.2",
            "splits": [{"name": "test", "shardLengths": ["3"]}, {"name": "train", "shardLengths": ["5", "3"]}],
        },
        indent=2,
    )
)
write(HERE / "tfds" / "cifar10" / "1.0.0" / "cifar10-train.tfrecord-00000-of-00001", rows[:2])

kaggle = HERE / "kaggle" / "tfrecords-jpeg-192x192"
for part, n in (("train", 6), ("val", 3)):
    write(
        kaggle / part / f"00-192x192-{n}.tfrec",
        [
            {
                "image": (image(30 * i, 40 * (i % 3), "JPEG"), "byte"),
                "class": (i % 3, "int"),
                "id": (f"{part}{i}".encode(), "byte"),
            }
            for i in range(n)
        ],
    )
write(
    kaggle / "test" / "00-192x192-2.tfrec",
    [{"image": (image(9, 9, "JPEG"), "byte"), "id": (f"test{i}".encode(), "byte")} for i in range(2)],
)

write(
    HERE / "unlabelled" / "set-train.tfrecord-00000-of-00001", [{"image": (image(1, 1), "byte"), "label": (-1, "int")}]
)
