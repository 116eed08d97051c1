"""The quality bar: generated images are recognisably conditioned on their label."""

import torch

from fastacgan.data import open_catalog
from fastacgan.evaluate import conditioning_accuracy, train_classifier
from fastacgan.sample import load_generator
from fastacgan.train import main


def test_generated_digits_are_classified_as_their_label(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "q"
    args = [
        "--data",
        "builtin:digits:3000",
        "--image-size",
        "16",
        "--width",
        "0.5",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--steps",
        "800",
        "--log-every",
        "200",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    real = open_catalog("builtin:digits:3000", image_size=16)
    clf, real_acc = train_classifier(real.images, torch.as_tensor(real.labels), 10, epochs=3)
    assert real_acc > 0.9  # the judge itself must be good
    g, _, _ = load_generator(str(out))
    acc, per_class = conditioning_accuracy(g, clf, 10, n_per_class=50)
    print(f"generated-image class accuracy {acc:.3f} (chance 0.1), per class {per_class}")
    assert acc > 0.5, per_class  # chance is 0.1
