"""Writes the MATLAB files of tests/data/stanford_cars/ with scipy.io.savemat (scipy 1.17.1), shaped as Stanford
Cars' own (struct arrays of annotations, a cell array of class names; scipy.io.loadmat reads them as torchvision's
StanfordCars does). The images are written by the tests. Not run by the tests: python make_fixtures.py."""

from pathlib import Path

import numpy as np
import scipy.io as sio

HERE = Path(__file__).parent
NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def annotations(rows: list[dict]) -> np.ndarray:
    """A 1 x N struct array, each field a value as MATLAB saves it: numbers as 1x1 matrices, text as char rows."""
    fields = list(rows[0])
    out = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, r in enumerate(rows):
        out[0, i] = tuple(np.array([r[f]]) if isinstance(r[f], str) else np.array([[r[f]]], np.uint16) for f in fields)
    return out


def box(i: int) -> dict:
    return {"bbox_x1": 1 + i, "bbox_y1": 2, "bbox_x2": 300 + i, "bbox_y2": 200}


def main() -> None:
    names = np.empty((1, 3), dtype=object)
    names[0, :] = [np.array([n]) for n in NAMES]
    train, test = [1, 2, 3, 1], [3, 2, 1]
    (HERE / "torchvision" / "devkit").mkdir(parents=True, exist_ok=True)
    sio.savemat(HERE / "torchvision" / "devkit" / "cars_meta.mat", {"class_names": names}, do_compression=True)
    sio.savemat(
        HERE / "torchvision" / "devkit" / "cars_train_annos.mat",
        {
            "annotations": annotations(
                [{**box(i), "class": c, "fname": f"{i + 1:05d}.jpg"} for i, c in enumerate(train)]
            )
        },
        do_compression=True,
    )
    sio.savemat(
        HERE / "torchvision" / "devkit" / "cars_test_annos.mat",
        {"annotations": annotations([{**box(i), "fname": f"{i + 1:05d}.jpg"} for i in range(len(test))])},
    )
    sio.savemat(
        HERE / "torchvision" / "cars_test_annos_withlabels.mat",
        {"annotations": annotations([{**box(i), "class": c, "fname": f"{i + 1:05d}.jpg"} for i, c in enumerate(test)])},
    )
    (HERE / "release").mkdir(exist_ok=True)
    rows = [
        {"relative_im_path": f"car_ims/{i + 1:06d}.jpg", **box(i), "class": c, "test": int(i >= 3)}
        for i, c in enumerate([2, 3, 1, 1, 3])
    ]
    sio.savemat(
        HERE / "release" / "cars_annos.mat",
        {"annotations": annotations(rows), "class_names": names},
        do_compression=True,
    )


if __name__ == "__main__":
    main()
