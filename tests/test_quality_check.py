"""benchmarks/quality.py: fastacgan and the eager reference trained alike, judged by the same classifier."""

import json

import numpy as np
import pytest
from conftest import load_benchmark_module, make_folder
from PIL import Image

quality = load_benchmark_module("quality")

SMALL = "--steps 6 --batch-size 8 --width 0.125 --n-per-class 4 --classifier-epochs 1 --device cpu".split()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("q") / "shapes", n_per_class=12, size=(32, 32))


def test_both_implementations_trained_and_judged(tmp_path, shapes, capsys):
    out = tmp_path / "q"
    assert quality.main(["--data", str(shapes), "--out", str(out), *SMALL]) == 0
    res = json.loads((out / "quality.json").read_text())
    assert set(res["implementations"]) == {"fastacgan", "reference"}
    assert res["images"] == 36 and res["num_classes"] == 3 and res["chance"] == pytest.approx(1 / 3)
    assert 0 <= res["classifier_real_accuracy"] <= 1
    # the reference trained the architecture the fast run trained (its spec, read back from the checkpoint)
    fast_cfg = json.loads((out / "fastacgan" / "config.json").read_text())
    assert res["spec"] == fast_cfg["spec"] and fast_cfg["total_steps"] == 6
    for name, r in res["implementations"].items():
        per_class = list(r["per_class"].values())
        assert list(r["per_class"]) == ["circle", "square", "stripes"]
        # 4 images per class: each class's accuracy is a multiple of 1/4, the overall one their mean
        assert all(v * 4 == pytest.approx(round(v * 4)) for v in per_class)
        assert r["generated_class_accuracy"] == pytest.approx(np.mean(per_class))
        # the judge holds out 3 of the 36 real images: all 3 against the 12 generated, too few for the floor
        assert r["judge_frechet_images"] == [3, 12] and r["judge_frechet_distance"] > 0
        assert r["judge_frechet_real_vs_real"] is None
        grid = np.asarray(Image.open(out / r["grid"]))
        assert grid.shape == (3 * 34 + 2, 10 * 34 + 2, 3), name  # a row of 10 per class, 32 px + 2 px padding
        assert grid.std() > 0
    md = (out / "quality.md").read_text()
    assert md in capsys.readouterr().out
    assert "| fastacgan |" in md and "| reference |" in md and "6 steps of `cifar10`" in md


def test_refuses_to_overwrite_and_names_bad_options(tmp_path, shapes, capsys):
    out = tmp_path / "q"
    (out / "fastacgan").mkdir(parents=True)
    assert quality.main(["--data", str(shapes), "--out", str(out), *SMALL]) == 2
    assert f"--out {out} already holds a quality run" in capsys.readouterr().err
    assert quality.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "q2"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "no such file" in err
    with pytest.raises(SystemExit):
        quality.main(["--data", str(shapes), "--steps", "0"])
    assert "--steps must be at least 1" in capsys.readouterr().err
    # refused before anything trains
    for fast in ("--g-ema 0.999", "--diffaug all --hflip", "--real-label 0.9", f"--init-from {tmp_path}"):
        assert quality.main(["--data", str(shapes), "--out", str(tmp_path / "q4"), *SMALL, "--fast-args", fast]) == 2
        err = capsys.readouterr().err
        assert f"--fast-args: {fast.split()[0]}" in err and "would train fastacgan otherwise than the reference" in err
        assert not (tmp_path / "q4").exists()
    big = ["--batch-size", "64", "--data", str(shapes), "--out", str(tmp_path / "q3"), "--steps", "1"]
    assert quality.main([*big, "--device", "cpu", "--width", "0.125"]) == 2  # the trainer's own error, passed on
    err = capsys.readouterr().err
    assert "--batch-size 64 is larger than the data set" in err and "fastacgan.train exited with 2" in err
