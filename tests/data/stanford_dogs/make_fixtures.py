"""Writes tests/data/stanford_dogs/'s lists with scipy.io.savemat (scipy 1.17.1), shaped as Stanford Dogs' own
train_list.mat and test_list.mat: file_list and annotation_list (N x 1 cell arrays of text), labels (N x 1). The
images are written by the tests: Images/<class>/<image>.jpg. Not run by the tests: python make_fixtures.py."""

from pathlib import Path

import numpy as np
import scipy.io as sio

HERE = Path(__file__).parent
CLASSES = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]


def cells(texts: list[str]) -> np.ndarray:
    out = np.empty((len(texts), 1), dtype=object)
    for k, t in enumerate(texts):
        out[k, 0] = np.array([t])
    return out


def main() -> None:
    for name, picks in (("train_list.mat", (0, 1)), ("test_list.mat", (2,))):
        files = [(f"{c}/{c.split('-')[0]}_{i}.jpg", k + 1) for k, c in enumerate(CLASSES) for i in picks]
        lists = {"file_list": cells([f for f, _ in files]), "annotation_list": cells([f[:-4] for f, _ in files])}
        sio.savemat(HERE / name, {**lists, "labels": np.array([[k] for _, k in files], np.uint8)}, do_compression=True)


if __name__ == "__main__":
    main()
