import json

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

from fastacgan.evaluate import main as evaluate_main
from fastacgan.sample import load_generator
from fastacgan.sample import main as sample_main
from fastacgan.train import main as train_main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "run"
    args = ["--data", "builtin:digits:200", *TINY, "--steps", "3", "--out", str(out)]
    assert train_main(args) == 0
    return out


def test_grid_for_one_label(run_dir, tmp_path):
    out = tmp_path / "result.png"
    assert sample_main(["--ckpt", str(run_dir), "--label", "7", "--n", "64", "--out", str(out)]) == 0
    im = np.array(Image.open(out))
    assert im.shape == (8 * 18 + 2, 8 * 18 + 2)  # 8x8 grid of 16x16 greyscale images, 2-pixel padding


def test_grid_with_one_row_per_class(run_dir, tmp_path):
    out = tmp_path / "all.png"
    assert sample_main(["--ckpt", str(run_dir), "--per-class", "3", "--out", str(out)]) == 0
    assert np.array(Image.open(out)).shape == (10 * 18 + 2, 3 * 18 + 2)


def test_one_file_per_image_and_label_by_name(run_dir, tmp_path):
    ckpt_file = sorted((run_dir / "checkpoints").glob("*.pt"))[-1]
    assert sample_main(["--ckpt", str(ckpt_file), "--label", "3", "--n", "5", "--out", str(tmp_path / "imgs")]) == 0
    files = sorted(p.name for p in (tmp_path / "imgs").iterdir())
    assert files == [f"3_{i:05d}.png" for i in range(5)]


def test_same_seed_same_images(run_dir, tmp_path):
    a, b, c = (tmp_path / f"{n}.png" for n in "abc")
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        sample_main(["--ckpt", str(run_dir), "--label", "1", "--n", "4", "--seed", str(seed), "--out", str(path)])
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_generator_loads_on_cpu_in_eval_mode(run_dir):
    g, classes, _ = load_generator(str(run_dir))
    assert not g.training and classes == [str(i) for i in range(10)]
    assert next(g.parameters()).device == torch.device("cpu")


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--label", "12"], "--label '12': not a class name or an index in 0..9"),
        (["--label", "cat"], "--label 'cat'"),
        (["--n", "0"], "--n and --per-class"),
        (["--out", "grid.gif"], "--out grid.gif: a grid is written as .png or .jpg"),
        (["--out", "/proc/no/grid.png"], "--out /proc/no/grid.png: cannot write the images"),
    ],
)
def test_bad_arguments(run_dir, tmp_path, capsys, args, msg):
    assert sample_main(["--ckpt", str(run_dir), "--out", str(tmp_path / "x.png")] + args) == 2  # the last --out wins
    assert msg in capsys.readouterr().err


def test_missing_checkpoint(tmp_path, capsys):
    assert sample_main(["--ckpt", str(tmp_path / "none.pt")]) == 2
    assert "none.pt: no such file" in capsys.readouterr().err
    assert sample_main(["--ckpt", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_checkpoint_samples_on_cpu(tmp_path):
    out = tmp_path / "gpu"
    args = ["--data", "builtin:digits:200", *TINY, "--steps", "2", "--device", "cuda", "--amp", "--out", str(out)]
    assert train_main(args) == 0
    assert sample_main(["--ckpt", str(out), "--label", "2", "--n", "4", "--out", str(tmp_path / "s.png")]) == 0


def test_evaluate_cli(run_dir, capsys):
    """python -m fastacgan.evaluate: a classifier trained on the run's real images judges the generator."""
    args = ["--ckpt", str(run_dir), "--epochs", "1", "--n-per-class", "3", "--max-images", "200"]
    assert evaluate_main([*args, "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["chance"] == 0.1 and list(res["per_class"]) == [str(i) for i in range(10)]
    assert 0 <= res["generated_class_accuracy"] <= 1 and 0 <= res["classifier_real_accuracy"] <= 1
    assert all(v * 3 == pytest.approx(round(v * 3)) for v in res["per_class"].values())  # 3 images per class
    assert evaluate_main([*args, "--device", "gpu0"]) == 2
    assert "--device 'gpu0': not a device" in capsys.readouterr().err
