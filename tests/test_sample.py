import importlib
import json
import math
import os
import shutil
import signal

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

from fastacgan.evaluate import main as evaluate_main
from fastacgan.imaging import to_uint8
from fastacgan.sample import load_generator
from fastacgan.sample import main as sample_main
from fastacgan.train import main as train_main

sample_mod = importlib.import_module("fastacgan.sample")


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


@pytest.mark.parametrize("args,unused,shape", [
    (["--n", "4"], "--n is not used without --label (--per-class counts each class's images)", (182, 182)),
    (["--label", "7", "--per-class", "4"], "--per-class is not used with --label (--n counts that class's images)",
     (8 * 18 + 2, 8 * 18 + 2))])  # fmt: skip
def test_a_count_for_the_other_form_is_said_to_be_unused(run_dir, tmp_path, capsys, args, unused, shape):
    """--n 4 without --label wrote the grid of 10 images of each class, and said nothing of --n (nor did
    --per-class with --label)."""
    out = tmp_path / "g.png"
    assert sample_main(["--ckpt", str(run_dir), *args, "--out", str(out)]) == 0
    assert f"note: {unused}\n" in capsys.readouterr().err
    assert np.array(Image.open(out)).shape == shape  # the defaults: 10 of each class; 64 of the one


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


def test_truncated_noise_is_the_truncated_normal():
    """--truncation T: the normal truncated to [-T, T], its variance 1 - 2 T phi(T) / (2 Phi(T) - 1); T = 0 the
    untruncated draws of before, bit for bit."""
    for t in (0.01, 0.5, 1.0, 2.5):
        z = sample_mod.noise(100_000, 4, torch.Generator().manual_seed(1), t)
        assert z.dtype == torch.float32 and z.abs().max() <= t and z.abs().max() > 0.99 * t
        phi, cdf = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), math.erf(t / math.sqrt(2))
        assert z.var().item() == pytest.approx(1 - 2 * t * phi / cdf, rel=0.02)
        assert abs(z.mean().item()) < 0.01 * t
        assert (z.abs() < t / 2).float().mean().item() == pytest.approx(math.erf(t / 2 / math.sqrt(2)) / cdf, abs=0.01)
    same = sample_mod.noise(5, 3, torch.Generator().manual_seed(2))
    assert torch.equal(same, torch.randn(5, 3, generator=torch.Generator().manual_seed(2)))


def test_sample_with_truncation(run_dir, tmp_path, capsys):
    """The grid of --truncation T is G's images of the truncated noise; a tiny T makes a class's images alike."""
    args = ["--ckpt", str(run_dir), "--label", "3", "--n", "16", "--seed", "4"]
    outs = {t: tmp_path / f"t{t}.png" for t in ("0", "0.02")}
    for t, out in outs.items():
        assert sample_main([*args, "--truncation", t, "--out", str(out)]) == 0
    assert capsys.readouterr().out.endswith(f", noise truncated at 0.02 to {outs['0.02']}\n")
    g, _, _ = load_generator(str(run_dir))
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        want = to_uint8(g(sample_mod.noise(16, g.spec.nz, gen, 0.02), torch.full((16,), 3)))
    tiles = lambda path: np.array(Image.open(path))[:72, :72].reshape(4, 18, 4, 18)[:, 2:, :, 2:].transpose(0, 2, 1, 3)  # noqa: E731
    assert np.array_equal(tiles(outs["0.02"]).reshape(16, 16, 16), want[..., 0])
    spread = {t: tiles(out).reshape(16, -1).astype(float).std(0).mean() for t, out in outs.items()}
    assert spread["0.02"] < spread["0"] / 5


def test_same_noise_gives_each_column_one_noise_across_the_classes(run_dir, tmp_path, capsys):
    """--same-noise: row k (class k), column j is G(z_j, k) for the --per-class noise vectors z_j of --seed; a folder
    --out writes the same images; with --label it is said to be unused."""
    grid, folder = tmp_path / "g.png", tmp_path / "each"
    for out in (grid, folder):
        args = ["--ckpt", str(run_dir), "--per-class", "3", "--same-noise", "--seed", "5", "--out", str(out)]
        assert sample_main(args) == 0
    g, _, _ = load_generator(str(run_dir))
    z = sample_mod.noise(3, g.spec.nz, torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = to_uint8(g(z.repeat(10, 1), torch.arange(10).repeat_interleave(3)))[..., 0].reshape(10, 3, 16, 16)
    got = np.array(Image.open(grid))[:180, :54].reshape(10, 18, 3, 18)[:, 2:, :, 2:].transpose(0, 2, 1, 3)
    assert np.array_equal(got, want)
    assert np.array_equal(np.array(Image.open(folder / "4_00013.png")), want[4, 1])  # image 13: class 4, column 1
    assert sample_main(["--ckpt", str(run_dir), "--label", "2", "--n", "2", "--same-noise", "--out", str(grid)]) == 0
    assert (
        "note: --same-noise is not used with --label (one class: its images' noise differs)\n"
        in capsys.readouterr().err
    )


def test_interpolation_walks_in_straight_lines_between_drawn_noise(run_dir, tmp_path, capsys):
    """--interpolate K: each row is K images of one class whose noise goes from one drawn vector to another in a
    straight line, both ends included (the ends: the draws of --seed); --n rows of a --label class, else a row per
    class (with --same-noise, one walk for all)."""
    g, _, _ = load_generator(str(run_dir))
    z = sample_mod.latents(g, 3 * 5, seed=7, steps=5).view(3, 5, -1)
    ends = sample_mod.noise(6, g.spec.nz, torch.Generator().manual_seed(7)).view(2, 3, -1)
    assert torch.equal(z[:, 0], ends[0]) and torch.equal(z[:, -1], ends[1])
    for j in range(5):
        torch.testing.assert_close(z[:, j], ends[0] + j / 4 * (ends[1] - ends[0]), atol=1e-6, rtol=0)
    out = tmp_path / "walk.png"
    assert sample_main(["--ckpt", str(run_dir), "--label", "2", "--n", "3", "--interpolate", "5", "--seed", "7",
                        "--out", str(out)]) == 0  # fmt: skip
    with torch.no_grad():
        want = to_uint8(g(z.reshape(15, -1), torch.full((15,), 2)))[..., 0].reshape(3, 5, 16, 16)
    got = np.array(Image.open(out))[:54, :90].reshape(3, 18, 5, 18)[:, 2:, :, 2:].transpose(0, 2, 1, 3)
    assert np.array_equal(got, want)
    # a row per class; with --same-noise each class walks the same noise
    args = ["--ckpt", str(run_dir), "--interpolate", "4", "--same-noise", "--per-class", "3", "--out", str(out)]
    assert sample_main(args) == 0
    assert "note: --per-class is not used with --interpolate (a row of K images per class)" in capsys.readouterr().err
    z = sample_mod.latents(g, 40, seed=0, period=4, steps=4).view(10, 4, -1)
    assert all(torch.equal(z[k], z[0]) for k in range(10)) and not torch.equal(z[0, 0], z[0, 1])
    assert np.array(Image.open(out)).shape == (10 * 18 + 2, 4 * 18 + 2)
    assert sample_main(["--ckpt", str(run_dir), "--interpolate", "1", "--out", str(out)]) == 2
    assert "--interpolate must be at least 2 (a walk's images, its two ends included)" in capsys.readouterr().err


def test_classes_picks_the_rows(run_dir, tmp_path, capsys):
    """--classes: the grid's rows (or the folder's classes) are those named, in their order; names and START:END
    ranges as training's --classes takes them."""
    out, folder = tmp_path / "rows.png", tmp_path / "synth"
    assert sample_main(["--ckpt", str(run_dir), "--classes", "7,2:4", "--per-class", "2", "--out", str(out)]) == 0
    g, _, _ = load_generator(str(run_dir))
    labels = torch.tensor([7, 7, 2, 2, 3, 3])
    with torch.no_grad():
        want = to_uint8(g(sample_mod.latents(g, 6, 0), labels))[..., 0]
    got = np.array(Image.open(out))[:54, :36].reshape(3, 18, 2, 18)[:, 2:, :, 2:].transpose(0, 2, 1, 3)
    assert np.array_equal(got.reshape(6, 16, 16), want)
    args = ["--ckpt", str(run_dir), "--classes", "9,1", "--per-class", "2", "--out", str(folder), "--image-folder"]
    assert sample_main(args) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["1", "9"] and len(list((folder / "9").iterdir())) == 2
    for classes, msg in (("12", "--classes '12': not a class name or an index in 0..9"),
                         ("3,3", "--classes 3,3: a class is named twice"),
                         ("4:11", "--classes 4:11: a range START:END needs START < END <= 10")):  # fmt: skip
        assert sample_main(["--ckpt", str(run_dir), "--classes", classes, "--out", str(out)]) == 2
        assert msg in capsys.readouterr().err
    assert sample_main(["--ckpt", str(run_dir), "--classes", "3", "--label", "4", "--out", str(out)]) == 2
    assert "--label 4 and --classes 3: give one" in capsys.readouterr().err


def test_generator_loads_on_cpu_in_eval_mode(run_dir):
    g, classes, _ = load_generator(str(run_dir))
    assert not g.training and classes == [str(i) for i in range(10)]
    assert next(g.parameters()).device == torch.device("cpu")


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--label", "12"], "--label '12': not a class name or an index in 0..9"),
        (["--label", "cat"], "--label 'cat'"),
        (["--label", "1", "--n", "0"], "--n must be at least 1, got 0"),
        (["--per-class", "-2"], "--per-class must be at least 1, got -2"),  # (it said "--n and --per-class must be")
        (["--n", "0"], "--n must be at least 1, got 0"),  # (given unused: said, and refused)
        (["--seed", str(2**64)], f"--seed must be >= 0 and <= 4294967295, got {2**64}"),  # torch: "Overflow when ..."
        (["--truncation", "-0.5"], "--truncation must be >= 0 (0 = off), got -0.5"),
        (["--truncation", "nan"], "--truncation must be >= 0 (0 = off), got nan"),
        (["--out", "grid.gif"], "--out grid.gif: a grid is written as .png or .jpg"),
        (["--out", "/proc/no/grid.png"], "--out /proc/no/grid.png: cannot write the images"),
        (["--device", "gpu0"], "--device 'gpu0': not a device"),
        (["-d", "mps"], "--device mps: fastacgan runs on cpu or cuda"),  # seed 002's help lists mps: a traceback
        *([(["--device", "cuda"], "--device cuda: CUDA is not available")] if not torch.cuda.is_available() else []),
    ],
)
def test_bad_arguments(run_dir, tmp_path, capsys, args, msg):
    assert sample_main(["--ckpt", str(run_dir), "--out", str(tmp_path / "x.png")] + args) == 2  # the last --out wins
    assert msg in capsys.readouterr().err


def test_a_label_near_a_class_name_names_it():
    """--label names a class by its name: a letter off or in another case, the error names the class meant."""
    from fastacgan.sample import parse_label

    classes = ["cat", "dog", "melanoma", "nevus"]
    assert parse_label("dog", classes) == 1 and parse_label("3", classes) == 3
    for typed, meant in (("Cat", "cat"), ("melanomma", "melanoma"), ("NEVUS", "nevus")):
        with pytest.raises(ValueError) as e:
            parse_label(typed, classes)
        assert str(e.value).endswith(f"(classes: cat, dog, melanoma, nevus); did you mean {meant}?")
    with pytest.raises(ValueError) as e:
        parse_label("horse", classes)
    assert str(e.value).endswith("(classes: cat, dog, melanoma, nevus)")


def test_a_label_is_the_first_of_a_class_s_names():
    """Hugging Face's ImageNet names its classes by their synonyms, `tench, Tinca tinca`: --label tench was refused
    (not a class name); now it is the class whose first name it is (a first name two classes share is refused,
    naming both)."""
    from fastacgan.sample import parse_label

    classes = ["tench, Tinca tinca", "goldfish, Carassius auratus", "crane", "crane, derrick", "great white shark"]
    assert parse_label("goldfish", classes) == 1 and parse_label("Tench", classes) == 0
    assert parse_label("goldfish, Carassius auratus", classes) == 1 and parse_label("great white shark", classes) == 4
    assert parse_label("crane", classes) == 2  # (a class of that name: itself)
    with pytest.raises(ValueError, match=r"--label 'crane' is the word of crane, bird; crane, derrick: give one of"):
        parse_label("crane", ["crane, bird", "crane, derrick"])


def test_an_empty_out_is_refused(run_dir, tmp_path, capsys, monkeypatch):
    """`--out "$DIR"` with DIR unset: the images were written into the working folder (with --image-folder, a folder
    per class there), as --data "" once listed it."""
    monkeypatch.chdir(tmp_path)
    for out, more in (("", []), ("", ["--image-folder"]), (" ", ["--label", "3"])):
        assert sample_main([str(run_dir), "--out", out, *more]) == 2
        assert "error: --out is empty: give a .png or .jpg grid, or a folder for one PNG per image" in (
            capsys.readouterr().err
        )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "name,args,msg",
    [
        ("g.png", ["--label", "1", "--n", "600000"],
         "a grid of 600,000 16x16 images would be 13,952 x 13,952 pixels (195 megapixels: more than PIL"),
        ("g.jpg", ["--per-class", "3700"],
         "a grid of 37,000 16x16 images would be 66,602 x 182 pixels (more than JPEG's 65,500 per side)"),
    ],
)  # fmt: skip
def test_a_grid_too_large_to_open_is_refused_before_any_image_is_made(
    run_dir, tmp_path, capsys, monkeypatch, name, args, msg
):
    """A grid that PIL would refuse to open (a decompression bomb to it), or that JPEG cannot hold: refused at once
    with the folder --out that takes any number. It was generated whole first (100,000 128x128 images: 20 GB), then
    written, or failed as "cannot write the images (broken data stream when writing image file)" after 27 s."""
    monkeypatch.setattr(sample_mod, "generate_batches", lambda *a, **k: pytest.fail("images were generated"))
    out = tmp_path / name
    assert sample_main(["--ckpt", str(run_dir), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: {msg}" in err and "give a folder as --out for one PNG per image" in err
    assert not out.exists()


def test_missing_checkpoint(tmp_path, capsys):
    assert sample_main(["--ckpt", str(tmp_path / "none.pt")]) == 2
    assert "none.pt: no such file" in capsys.readouterr().err
    assert sample_main(["--ckpt", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_the_run_may_be_given_without_ckpt(run_dir, tmp_path, capsys):
    # as fastacgan.plots takes it: `python -m fastacgan.sample runs/digits` was refused ("required: --ckpt")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert sample_main([str(run_dir), "--label", "1", "--n", "4", "--out", str(a)]) == 0
    assert sample_main(["--ckpt", str(run_dir), "--label", "1", "--n", "4", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert sample_main([str(run_dir), "--ckpt", str(run_dir), "--out", str(tmp_path / "c.png")]) == 0  # the same
    for cli in (sample_main, evaluate_main):
        with pytest.raises(SystemExit) as e:
            cli(["--device", "cpu"])
        assert e.value.code == 2 and "give the checkpoint: a run folder" in capsys.readouterr().err
        with pytest.raises(SystemExit) as e:
            cli([str(run_dir), "--ckpt", str(tmp_path / "other")])
        assert e.value.code == 2 and f"two checkpoints: {run_dir} and --ckpt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # `--test-data imgs/*.png` unquoted: argparse's "unrecognized arguments"
        evaluate_main([str(run_dir), "--test-data", "imgs/a.png", "imgs/b.png", "--epochs", "1"])
    assert e.value.code == 2 and "--test-data takes one path, got 2 (imgs/a.png, imgs/b.png ...): a pattern the " \
        "shell expanded? give the folder that holds them" in capsys.readouterr().err  # fmt: skip
    args = ["--epochs", "1", "--n-per-class", "2", "--max-images", "100", "--image-metrics", "0", "--device", "cpu"]
    assert evaluate_main([str(run_dir), *args]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"].startswith(str(run_dir))


def test_a_tilde_after_an_equals_sign_is_the_home_folder(run_dir, tmp_path, monkeypatch):
    """`--ckpt=~/runs/x` (the seeds' `--opt=value` style): the shell expands a ~ only at a word's start, so the
    path came as `~/...` and was "no such file or folder" (train's --data and --out took it already)."""
    from fastacgan.plots import main as plots_main

    monkeypatch.setenv("HOME", str(run_dir.parent))
    monkeypatch.chdir(tmp_path)
    assert sample_main([f"--ckpt=~/{run_dir.name}", "--label", "1", "--n", "4", f"--out=~/{tmp_path.name}.png"]) == 0
    assert (run_dir.parent / f"{tmp_path.name}.png").is_file() and not (tmp_path / "~").exists()
    assert plots_main([f"~/{run_dir.name}", f"--out=~/{tmp_path.name}-curves.png"]) == 0
    assert (run_dir.parent / f"{tmp_path.name}-curves.png").is_file()


def test_a_reader_that_ends_first_costs_no_traceback(run_dir, tmp_path):
    """`python -m fastacgan.evaluate RUN | head` (the JSON report's first lines), `sample ... | head`: the reader has
    ended when the command prints. They ended with a BrokenPipeError traceback (sample's after writing every image,
    its progress line stopped the images with "cannot write the images (Broken pipe)"). Now evaluate ends as other
    commands do then (status 141, SIGPIPE's), and sample and plots, whose work is done, with 0."""
    import subprocess
    import sys

    args = ["--epochs", "1", "--n-per-class", "2", "--max-images", "100", "--image-metrics", "0", "--device", "cpu"]
    for module, argv, status in [
        ("evaluate", [str(run_dir), *args], 141),
        ("sample", [str(run_dir), "--per-class", "2", "--out", str(tmp_path / "images")], 0),
        ("plots", [str(run_dir), "--out", str(tmp_path / "curves.png")], 0),
    ]:
        read, write = os.pipe()
        os.close(read)  # `head` has its lines
        try:
            done = subprocess.run([sys.executable, "-m", f"fastacgan.{module}", *argv], stdout=write,
                                  stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
        finally:
            os.close(write)
        assert done.returncode == status, (module, done.stderr)
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, (module, done.stderr)
    assert len(list((tmp_path / "images").rglob("*.png"))) == 20 and (tmp_path / "curves.png").is_file()


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
    printed = capsys.readouterr()
    res = json.loads(printed.out)  # the report alone on stdout; what it is doing on stderr, as it goes
    for line in ("evaluating ", "builtin:digits:200: 200 images\n",
                 "training the judge (a classifier) on the 200 --data images: 1 ep", "judging 30 generated images\n",
                 "scoring the discriminator on builtin:digits:200 (its test split)", "done in "):  # fmt: skip
        assert line in printed.err, line
    assert res["chance"] == 0.1 and list(res["per_class"]) == [str(i) for i in range(10)]
    assert 0 <= res["generated_class_accuracy"] <= 1 and 0 <= res["classifier_real_accuracy"] <= 1
    assert all(v * 3 == pytest.approx(round(v * 3)) for v in res["per_class"].values())  # 3 images per class
    # 200 real images: the judge holds out 20, all used against the 30 generated; too few for the real-real floor
    assert res["judge_frechet_images"] == [20, 30] and res["judge_frechet_distance"] > 0
    assert res["judge_frechet_real_vs_real"] is None
    # the ISIC AC-GAN's figures, for 256 pairs by default: what image_metrics computes from the run's images
    from fastacgan.data import open_catalog
    from fastacgan.decode import decode_all
    from fastacgan.evaluate import image_metrics

    g, _, _ = load_generator(str(run_dir))
    real, _ = decode_all(open_catalog("builtin:digits:200", image_size=16), 16, 1, 0, "skip", log=lambda m: None)
    want = image_metrics(g, real, 10, 256)  # 256 by default, at most half the images: 100 pairs
    names = ["psnr", "ssim", "ms_gmsd", "mdsi", "haarpsi"]
    assert res["image_metrics"] == want and want["pairs"] == 100 and list(want) == ["pairs", *names, "real_vs_real"]
    assert 0 < want["ssim"] < 1 and want["psnr"] > 0 and list(want["real_vs_real"]) == names
    # digits against other digits are closer than 3 steps of training's images are to digits
    assert want["real_vs_real"]["ssim"] > want["ssim"] and want["real_vs_real"]["ms_gmsd"] < want["ms_gmsd"]
    assert image_metrics(g, real[:1], 10, 8)["real_vs_real"] is None  # one real image: nothing to compare it to
    assert evaluate_main([*args, "--device", "cpu", "--image-metrics", "0"]) == 0
    assert "image_metrics" not in json.loads(capsys.readouterr().out)
    assert evaluate_main([*args, "--device", "cpu", "--image-metrics", "-1"]) == 2
    assert "--image-metrics -1: give a number of image pairs, or 0 for none" in capsys.readouterr().err
    # --cas: scored on the held-out images (the built-in digits' test split)
    assert evaluate_main([*args, "--device", "cpu", "--cas", "--cas-per-class", "2"]) == 0
    cas = json.loads(capsys.readouterr().out)["classification_accuracy_score"]
    assert cas["test"] == "builtin:digits:200 (its test split)" and cas["images"] == 40
    assert cas["generated_per_class"] == 2 and 0 <= cas["accuracy_trained_on_generated"] <= 1
    assert evaluate_main([*args, "--device", "gpu0"]) == 2
    assert "--device 'gpu0': not a device" in capsys.readouterr().err


def test_evaluate_judges_the_truncated_noise_s_images(run_dir, capsys, monkeypatch):
    """--truncation T: every image evaluate generates (the judge's, D's, CAS's) is of the truncated noise; the
    report says T."""
    drawn = []
    noise = sample_mod.noise
    monkeypatch.setattr(sample_mod, "noise", lambda n, nz, gen, t=0.0: drawn.append(t) or noise(n, nz, gen, t))
    args = [str(run_dir), "--device", "cpu", "--epochs", "1", "--n-per-class", "2", "--image-metrics", "4", "--cas"]
    assert evaluate_main([*args, "--truncation", "0.5"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["truncation"] == 0.5 and ", noise truncated at 0.5\n" in printed.err
    assert drawn == [0.5] * 4  # the judge's images, the image metrics', D's, CAS's
    drawn.clear()
    assert evaluate_main(args) == 0
    assert json.loads(capsys.readouterr().out)["truncation"] is None and drawn == [0.0] * 4
    assert evaluate_main([*args, "--truncation", "-1"]) == 2
    assert capsys.readouterr().err == "error: --truncation must be >= 0 (0 = off), got -1.0\n"


@pytest.mark.parametrize(
    "opt,value,least",
    [
        ("--epochs", 0, 1),
        ("--n-per-class", 0, 1),
        ("--max-images", -1, 0),
        ("--cas-per-class", -2, 0),
        ("--workers", -2, -1),
    ],  # fmt: skip
)
def test_evaluate_refuses_counts_out_of_range_by_name(run_dir, capsys, opt, value, least):
    """Were taken, and failed after the data was read: "Expected positive integer total_steps, but got 0" (the
    learning-rate schedule's words), "torch.cat(): expected a non-empty list of Tensors", "negative dimensions are
    not allowed", a traceback for --cas-per-class."""
    args = [str(run_dir), "--device", "cpu", "--image-metrics", "0", "--cas", opt, str(value)]
    assert evaluate_main(args) == 2
    printed = capsys.readouterr()
    assert printed.err == f"error: {opt} must be >= {least}, got {value}\n" and printed.out == ""


def test_evaluate_interrupted_says_so(run_dir, capsys, monkeypatch):
    """Ctrl-C during the judge's training: a line and the shell's status for it, not a traceback."""
    import fastacgan.evaluate as evaluate_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_mod, "train_classifier", interrupted)
    assert evaluate_main(["--ckpt", str(run_dir), "--epochs", "1", "--max-images", "100", "--device", "cpu"]) == 130
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.endswith("interrupted: no report\n")


def test_class_names_alike_as_file_names_keep_their_own_folders(tmp_path):
    """Class names that would be one folder (`a b` and `a_b`; `Cat` and `cat` where file names ignore case): each
    keeps its own (before, --image-folder merged them, and the set read back had one class fewer)."""
    from fastacgan.sample import image_paths

    classes = ["a b", "a_b", "Cat", "cat", "T-shirt/top"]
    paths = image_paths(tmp_path, classes, torch.arange(5).repeat(2), image_folder=True)
    assert [p.parent.name for p in paths[:5]] == ["a_b_0", "a_b_1", "Cat_2", "cat_3", "T-shirt_top"]
    assert [p.name for p in paths[5:]] == ["a_b_0_00001.png", "a_b_1_00001.png", "Cat_2_00001.png",
                                           "cat_3_00001.png", "T-shirt_top_00001.png"]  # fmt: skip


def test_out_of_memory_says_so_and_what_bounds_it(run_dir, tmp_path, capsys, monkeypatch):
    """The allocator's error (the real one: more than the machine has), not a traceback: for a grid, that a folder
    is written batch by batch; for evaluate, the options that bound what it holds."""
    import fastacgan.evaluate as evaluate_mod
    import fastacgan.sample as sample_mod

    def too_much(*a, **k):
        return torch.empty(1 << 55)  # 128 PiB: more than any address space

    monkeypatch.setattr(sample_mod, "make_grid", too_much)
    assert sample_main([str(run_dir), "--label", "1", "--n", "400", "--out", str(tmp_path / "grid.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory: DefaultCPUAllocator: can't allocate memory: you tried to allocate")
    assert "a grid (400 images) is made whole in memory, a folder (--out DIR) is written batch by batch" in err
    monkeypatch.setattr(evaluate_mod, "train_classifier", too_much)
    assert evaluate_main([str(run_dir), "--epochs", "1", "--max-images", "100", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "error: out of memory: DefaultCPUAllocator" in err and "Traceback" not in err
    assert "--max-images (now 100) and --n-per-class (now 100) bound the images it holds" in err


def test_evaluate_explains_a_decoding_worker_that_dies(image_folder, tmp_path, capsys, monkeypatch):
    """evaluate decodes the real images with --workers processes: one killed (the out-of-memory killer) is said
    so, with what to change, as in training; not a traceback."""
    import fastacgan.decode as decode_mod

    out = tmp_path / "run"
    assert train_main(["--data", str(image_folder), *TINY, "--steps", "2", "--out", str(out)]) == 0
    parent, real_decode = os.getpid(), decode_mod.decode_image

    def decode(*args):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_decode(*args)

    monkeypatch.setattr(decode_mod, "decode_image", decode)
    capsys.readouterr()
    assert evaluate_main([str(out), "--epochs", "1", "--device", "cpu", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "error: a decoding worker process stopped (DataLoader worker (pid" in err and "--workers 2)" in err
    assert "out-of-memory killer" in err and "Traceback" not in err


def test_discriminator_score_matches_its_definition(run_dir):
    """score_discriminator in batches = D in eval mode on all the images at once, scored with torch's own ops."""
    import torch.nn.functional as F

    from fastacgan import checkpoint as ckpt
    from fastacgan.data import open_catalog
    from fastacgan.decode import decode_all
    from fastacgan.evaluate import discriminator_from, score_discriminator
    from fastacgan.loaders import to_model_input
    from fastacgan.sample import resolve_ckpt

    d = discriminator_from(ckpt.load_checkpoint(resolve_ckpt(str(run_dir))))
    assert not d.training
    images, labels = decode_all(open_catalog("builtin:digits:37", image_size=16), 16, 1, 0)
    got = score_discriminator(d, images, labels, batch=10)  # 4 batches, the last of 7
    with torch.no_grad():
        src, cls = d(to_model_input(images, channels_last=False))
    want = {
        "images": 37,
        "class_accuracy": (cls.argmax(1) == labels).float().mean().item(),
        "d_real": torch.sigmoid(src).mean().item(),
        "bce_real": F.binary_cross_entropy_with_logits(src, torch.ones_like(src)).item(),
        "ce_real": F.cross_entropy(cls, labels).item(),
    }
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)

    # with G: D on as many generated images, and the MNIST AC-GAN's "Test" rows made of the terms
    from fastacgan.sample import generate

    g, _, _ = load_generator(str(run_dir))
    both = score_discriminator(d, images, labels, batch=10, g=g, seed=5)
    c = torch.randint(10, (37,), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        src_f, cls_f = d(generate(g, c, 5))
    bce_f = F.binary_cross_entropy_with_logits(src_f, torch.zeros_like(src_f)).item()
    bce_g = F.binary_cross_entropy_with_logits(src_f, torch.ones_like(src_f)).item()
    ce_f = F.cross_entropy(cls_f, c).item()
    want |= {"class_accuracy_fake": (cls_f.argmax(1) == c).float().mean().item(), "bce_fake": bce_f, "ce_fake": ce_f,
             "d_fake": torch.sigmoid(src_f).mean().item(), "bce_g": bce_g}  # fmt: skip
    rows = both.pop("mnist_acgan_test_rows")
    assert both == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert rows == pytest.approx({"g_gan_loss": bce_g, "g_nll_loss": ce_f, "g_loss": bce_g + ce_f,
                                  "d_gan_loss": want["bce_real"] + bce_f, "d_nll_loss": want["ce_real"] + ce_f,
                                  "d_loss": want["bce_real"] + bce_f + want["ce_real"] + ce_f}, rel=1e-5)  # fmt: skip


def test_evaluate_scores_d_on_held_out_images(run_dir, tmp_path, capsys, monkeypatch):
    """--test-data (any --data form) or the test split of the run's data; without either, a note says so."""
    from test_datasets import write_idx_set

    from fastacgan.data import open_catalog

    args = ["--ckpt", str(run_dir), "--epochs", "1", "--n-per-class", "2", "--max-images", "100", "--device", "cpu"]
    # the built-in digits' test split: 40 digits (a fifth of the run's 200) that training never saw
    assert evaluate_main(args) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held["data"] == "builtin:digits:200 (its test split)" and held["images"] == 40
    assert 0 <= held["class_accuracy"] <= 1 and 0 < held["d_real"] < 1
    digits = open_catalog("builtin:digits:100", image_size=16)
    for i, (img, label) in enumerate(zip(digits.images[..., 0].numpy(), digits.labels)):
        (tmp_path / "flat" / str(label)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "flat" / str(label) / f"{i}.png").write_bytes(_png(img))
    assert evaluate_main([*args, "--data", str(tmp_path / "flat")]) == 0  # an image folder in one part
    note = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert note.startswith(f"no held-out images (--data {tmp_path / 'flat'}: only CIFAR batches")
    assert note.endswith("give them with --test-data")
    # a held-out part of images alone, labelled by a CSV beside it (GTSRB's Test/ and Test.csv): read so, said (a
    # note named --test-data and --test-csv, the options that read it; before, --data and --csv)
    shutil.copytree(tmp_path / "flat", tmp_path / "gtsrb" / "Train")
    (tmp_path / "gtsrb" / "Test").mkdir()
    for i, img in enumerate(digits.images[:10, ..., 0].numpy()):
        (tmp_path / "gtsrb" / "Test" / f"{i:05d}.png").write_bytes(_png(img))
    (tmp_path / "gtsrb" / "Test.csv").write_text("Path,ClassId\n" + "".join(f"Test/{i:05d}.png,{digits.labels[i]}\n"
                                                                             for i in range(10)))  # fmt: skip
    assert evaluate_main([*args, "--data", str(tmp_path / "gtsrb")]) == 0
    out, err = capsys.readouterr()
    held = json.loads(out)["discriminator_held_out"]
    assert held["data"] == f"{tmp_path / 'gtsrb'} (its test split)" and held["images"] == 10
    assert (
        f"--data {tmp_path / 'gtsrb'}: split into Test, Train; held out: Test/, its images labelled by "
        f"{tmp_path / 'gtsrb' / 'Test.csv'}\n"
    ) in err
    gt_test = tmp_path / "gtsrb" / "Test"
    assert evaluate_main([*args, "--data", str(tmp_path / "gtsrb"), "--test-data", str(gt_test), "--test-csv",
                          "Test.csv"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["discriminator_held_out"]["images"] == 10
    # --cas without held-out data: scored on the judge's held-out real images, beside the judge's own accuracy
    assert evaluate_main([*args, "--data", str(tmp_path / "flat"), "--cas", "--cas-per-class", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    cas = res["classification_accuracy_score"]
    assert cas["test"] == "the real images the judge held out" and cas["images"] == 10
    assert cas["accuracy_trained_on_real"] == res["classifier_real_accuracy"] and cas["generated_per_class"] == 2

    assert evaluate_main([*args, "--test-data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err  # (said before the checkpoint is read and the training images decoded)
    assert f"error: --test-data {tmp_path / 'nowhere'}: no such file or folder" in err and "evaluating" not in err
    assert evaluate_main([*args, "--data", "cifar10"]) == 2  # (a data set's name: fastacgan downloads nothing)
    err = capsys.readouterr().err
    assert "error: --data cifar10: no such file or folder; fastacgan downloads nothing" in err and "evaluat" not in err
    write_idx_set(tmp_path / "MNIST" / "raw", n=20)  # 28x28 digits: resized to the run's 16x16
    assert evaluate_main([*args, "--test-data", str(tmp_path / "MNIST")]) == 0  # one split: all of it
    assert json.loads(capsys.readouterr().out)["discriminator_held_out"]["images"] == 20
    write_idx_set(tmp_path / "MNIST" / "raw", n=9, prefix="t10k")  # a set's test split, not its training images
    assert evaluate_main([*args, "--test-data", str(tmp_path / "MNIST")]) == 0
    out = capsys.readouterr()
    assert f"--test-data {tmp_path / 'MNIST'} (its test split): 9 images (held out)" in out.err
    held = json.loads(out.out)["discriminator_held_out"]
    assert held["data"] == f"{tmp_path / 'MNIST'} (its test split)" and held["images"] == 9
    assert 0 <= held["class_accuracy"] <= 1 and 0 < held["d_real"] < 1 and held["bce_real"] > 0 and held["ce_real"] > 0
    rows = held["mnist_acgan_test_rows"]  # G's images scored beside the held-out ones, as G Loss / D Loss rows
    assert rows["g_loss"] == pytest.approx(rows["g_gan_loss"] + rows["g_nll_loss"], abs=2e-4)
    assert rows["d_gan_loss"] == pytest.approx(held["bce_real"] + held["bce_fake"], abs=2e-4)

    # an archive of flat files labelled by a CSV: --test-csv, as --csv is to --data
    import zipfile

    digits = open_catalog("builtin:digits:10", image_size=16)
    with zipfile.ZipFile(tmp_path / "held.zip", "w") as zf:
        for i in range(10):
            zf.writestr(f"img{i}.png", _png(digits.images[i, :, :, 0].numpy()))
    (tmp_path / "held.csv").write_text("file,label\n" + "".join(f"img{i},{digits.labels[i]}\n" for i in range(10)))
    cli = [*args, "--test-data", str(tmp_path / "held.zip"), "--test-csv", str(tmp_path / "held.csv")]
    assert evaluate_main(cli) == 0
    assert json.loads(capsys.readouterr().out)["discriminator_held_out"]["images"] == 10

    # a run on a data set with a test split: scored there without being asked
    out = tmp_path / "mnist_run"
    assert train_main(["--data", str(tmp_path / "MNIST"), *TINY, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert evaluate_main([*args[:1], str(out), *args[2:]]) == 0
    res = json.loads(capsys.readouterr().out)
    held = res["discriminator_held_out"]
    assert held["data"] == f"{tmp_path / 'MNIST'} (its test split)" and held["images"] == 9
    assert "classification_accuracy_score" not in res  # only with --cas
    assert evaluate_main([*args[:1], str(out), *args[2:], "--cas", "--cas-per-class", "4"]) == 0
    cas = json.loads(capsys.readouterr().out)["classification_accuracy_score"]
    assert cas["test"] == held["data"] and cas["images"] == 9 and cas["generated_per_class"] == 4
    assert 0 <= cas["accuracy_trained_on_generated"] <= 1 and 0 <= cas["accuracy_trained_on_real"] <= 1
    # the run's own data given as --test-data (a folder of one part): scored, and said to be what D trained on
    flat_run = tmp_path / "flat_run"
    assert train_main(["--data", str(tmp_path / "flat"), *TINY, "--steps", "2", "--out", str(flat_run)]) == 0
    capsys.readouterr()
    assert evaluate_main([*args[:1], str(flat_run), *args[2:], "--test-data", str(tmp_path / "flat")]) == 0
    out_err = capsys.readouterr()
    assert json.loads(out_err.out)["discriminator_held_out"]["data"] == str(tmp_path / "flat")
    assert (f"note: --test-data {tmp_path / 'flat'} is the run's own data: D is scored on the images it trained "
            "on") in out_err.err  # fmt: skip
    assert evaluate_main([*args[:1], str(flat_run), *args[2:], "--test-data", str(tmp_path / "gtsrb" / "Train")]) == 0
    assert "is the run's own data" not in capsys.readouterr().err  # (a copy elsewhere: not known to be)
    split_run = tmp_path / "gtsrb_run"  # a run on a set split into parts: its training part given
    assert train_main(["--data", str(tmp_path / "gtsrb"), *TINY, "--steps", "2", "--out", str(split_run)]) == 0
    capsys.readouterr()
    assert evaluate_main([*args[:1], str(split_run), *args[2:], "--test-data", str(tmp_path / "gtsrb" / "Train")]) == 0
    assert f"note: --test-data {tmp_path / 'gtsrb' / 'Train'} is the run's own data" in capsys.readouterr().err

    # a folder split into train/ and test/: the judge learns from train/, D is scored on test/ without being asked;
    # a test part that lacks classes is scored with the checkpoint's class numbers (here 3 and 7, not 0 and 1)
    import fastacgan.evaluate as evaluate_mod

    digits = open_catalog("builtin:digits:60", image_size=16)
    for i, (img, label) in enumerate(zip(digits.images[..., 0].numpy(), digits.labels)):
        part = "test" if i % 3 == 0 else "train"
        if part == "test" and label not in (3, 7):
            continue
        (tmp_path / "split" / part / str(label)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "split" / part / str(label) / f"{i}.png").write_bytes(_png(img))
    seen = []
    real_score = evaluate_mod.score_discriminator
    monkeypatch.setattr(evaluate_mod, "score_discriminator", lambda d, x, y, **kw: seen.append(y) or real_score(
        d, x, y, **kw))  # fmt: skip
    assert evaluate_main([*args, "--data", str(tmp_path / "split")]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    want = sorted(int(v) for i, v in enumerate(digits.labels) if i % 3 == 0 and v in (3, 7))
    assert held["data"] == f"{tmp_path / 'split'} (its test split)" and held["images"] == len(want)
    assert sorted(seen[0].tolist()) == want
    # a training set with a held-out set beside it, named like it: sets/train beside sets/val
    shutil.copytree(tmp_path / "split" / "train", tmp_path / "sets" / "train")
    shutil.copytree(tmp_path / "split" / "test", tmp_path / "sets" / "val")
    assert evaluate_main([*args, "--data", str(tmp_path / "sets" / "train")]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held["data"] == f"{tmp_path / 'sets' / 'val'} (the held-out set beside {tmp_path / 'sets' / 'train'})"
    assert held["images"] == len(want)

    # an unlabelled test/ (Kaggle's test/*.png) beside a labelled val/: D is scored on val/ (it was an error: test/
    # held "no class folders"); where no part has the run's classes (Tiny ImageNet: test/images/, val/images/, the
    # labels in val_annotations.txt), on none, said, not fatal (it was a stop, after the judge had trained)
    kaggle, tiny = tmp_path / "kaggle", tmp_path / "tiny"
    shutil.copytree(tmp_path / "split" / "train", kaggle / "train")
    shutil.copytree(tmp_path / "split" / "test", kaggle / "val")
    for k, p in enumerate(sorted((tmp_path / "split" / "test").rglob("*.png"))):
        for where in (kaggle / "test", tiny / "test" / "images", tiny / "val" / "images"):
            where.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, where / f"val_{k}.png")
    assert evaluate_main([*args, "--data", str(kaggle)]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held["data"] == f"{kaggle} (its test split)" and held["images"] == len(want)
    for c in (tmp_path / "split" / "train").iterdir():
        shutil.copytree(c, tiny / "train" / c.name / "images")
    assert evaluate_main([*args, "--data", str(tiny)]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held.startswith(f"no held-out images (--data {tiny}: classes ['images'] differ from the checkpoint's")
    assert held.endswith("give them with --test-data")  # (no list of labels yet)
    (tiny / "val" / "val_annotations.txt").write_text("".join(  # no header, tab-separated: name, label, box
        f"val_{k}.png\t{p.parent.name}\t0\t0\t8\t8\n"
        for k, p in enumerate(sorted((tmp_path / "split" / "test").rglob("*.png")))))  # fmt: skip
    monkeypatch.setattr(evaluate_mod, "score_discriminator", lambda d, x, y, **kw: seen.append(y) or real_score(
        d, x, y, **kw))  # fmt: skip
    listed = tiny / "val" / "val_annotations.txt"
    for test_data in ([], ["--test-data", str(tiny)]):  # val/ read labelled by it, said (it was the note below, naming
        seen.clear()  # the options that read it; and --test-data tiny: "classes ['images'] differ", test/images/)
        assert evaluate_main([*args, "--data", str(tiny), *test_data]) == 0
        out, err = capsys.readouterr()
        held = json.loads(out)["discriminator_held_out"]
        assert held["images"] == len(want) and sorted(seen[0].tolist()) == want
        assert held["data"] == f"{tiny} (its test split)"  # (the line names the option: it said --data)
        opt = "--test-data" if test_data else "--data"
        assert f"{opt} {tiny}: split into test, train, val; held out: val/, its images labelled by {listed}\n" in err
    cls_loc = tmp_path / "kimg" / "ILSVRC" / "Data" / "CLS-LOC"  # Kaggle's ImageNet: val/ and test/ flat, the list
    shutil.copytree(tiny / "val" / "images", cls_loc / "val")  # three folders up (flat: no hint to train on them)
    shutil.copytree(tiny / "test" / "images", cls_loc / "test")
    shutil.copytree(tmp_path / "split" / "train", cls_loc / "train")
    (tmp_path / "kimg" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    assert evaluate_main([*args, "--data", str(cls_loc), "--test-data", str(cls_loc)]) == 2
    err = capsys.readouterr().err
    assert "no class folders found" in err and "To train on them" not in err
    assert err.endswith(f"; val/ may be labelled by LOC_val_solution.csv: --test-data {cls_loc / 'val'} --test-csv "
                        f"{tmp_path / 'kimg' / 'LOC_val_solution.csv'}\n")  # fmt: skip
    cli = ["--data", str(tiny), "--test-data", str(tiny / "val"), "--test-csv", str(listed)]
    seen.clear()
    assert evaluate_main([*args, *cli]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held["images"] == len(want) and sorted(seen[0].tolist()) == want
    (tmp_path / "kimg" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(  # the list's rows:
        f"val_{k},{p.parent.name} 0 0 8 8\n"  # read so, the class the first word of each box
        for k, p in enumerate(sorted((tmp_path / "split" / "test").rglob("*.png")))))  # fmt: skip
    seen.clear()
    assert evaluate_main([*args, "--data", str(cls_loc)]) == 0
    held = json.loads(capsys.readouterr().out)["discriminator_held_out"]
    assert held["images"] == len(want) and sorted(seen[0].tolist()) == want

    # classes that differ from the checkpoint's are refused, naming the option, before the judge trains
    np.savez(tmp_path / "letters.npz", x_train=np.zeros((3, 8, 8), np.uint8), y_train=np.array([20, 21, 22]))
    assert evaluate_main([*args, "--test-data", str(tmp_path / "letters.npz")]) == 2
    err = capsys.readouterr().err
    assert f"--test-data {tmp_path / 'letters.npz'}: classes ['20', '21', '22'] differ" in err
    assert "training the judge" not in err


def test_a_synthetic_image_folder_reads_back_as_data(run_dir, tmp_path, capsys):
    """--image-folder: OUT/<class>/*.png, which --data reads as a data set with the checkpoint's classes; an image's
    noise does not depend on the batching; nothing is overwritten."""
    from fastacgan.data import open_catalog
    from fastacgan.decode import decode_all
    from fastacgan.sample import generate, generate_batches, load_generator

    out = tmp_path / "synth"
    assert sample_main(["--ckpt", str(run_dir), "--per-class", "3", "--out", str(out), "--image-folder"]) == 0
    assert "wrote 30 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "7").iterdir()) == ["7_00000.png", "7_00001.png", "7_00002.png"]
    cat = open_catalog(str(out))
    assert cat.class_names == [str(d) for d in range(10)] and np.bincount(cat.labels).tolist() == [3] * 10
    x, _ = decode_all(cat, 16, 1, 0, log=lambda m: None)
    g, _, _ = load_generator(str(run_dir))
    labels = torch.arange(10).repeat_interleave(3)
    want = to_uint8(generate(g, labels, 0))
    assert np.array_equal(x.numpy(), want[np.argsort(labels.numpy(), kind="stable")])
    in_sevens = torch.cat([b for _, b in generate_batches(g, labels, 0, batch=7)])
    assert torch.allclose(in_sevens, generate(g, labels, 0), rtol=0, atol=1e-5)  # only the float rounding differs

    assert sample_main(["--ckpt", str(run_dir), "--per-class", "3", "--out", str(out), "--image-folder"]) == 2
    assert "0_00000.png exists (30 of the 30 images would be overwritten)" in capsys.readouterr().err
    assert sample_main(["--ckpt", str(run_dir), "--out", str(tmp_path / "g.png"), "--image-folder"]) == 2
    assert "is a grid file" in capsys.readouterr().err


def test_an_interrupted_image_folder_says_what_it_wrote(run_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the PNGs are written: how many were, where, and what to do, instead of a traceback; the files
    written are whole (each is written to a temporary name, then renamed)."""
    import fastacgan.sample as sample_mod

    real_save, saved = sample_mod.save_png, []

    def save(path, im, durable=True):
        if len(saved) == 7:
            raise KeyboardInterrupt
        real_save(path, im, durable)
        saved.append(path)

    monkeypatch.setattr(sample_mod, "save_png", save)
    out = tmp_path / "synth"
    assert sample_main(["--ckpt", str(run_dir), "--per-class", "3", "--out", str(out), "--image-folder"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted: wrote 7 of 30 image(s) into {out}: remove them, or choose another --out" in err
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(saved)
    assert all(Image.open(p).size == (16, 16) for p in saved)


def _png(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def help_text(tool, capsys) -> str:
    with pytest.raises(SystemExit):
        tool(["--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_defaults_that_say_something(capsys):
    """Each option's default where it has one (0 included); none for the checkpoint (RUN or --ckpt), empty strings
    or flags that are off, and none twice where the help text gives it already."""
    for tool in (sample_main, evaluate_main):
        text = help_text(tool, capsys)
        assert "(default: )" not in text and "(default: None)" not in text and "(default: False)" not in text
    text = help_text(sample_main, capsys)
    assert "noise seed (default: 0)" in text and "images per class without --label (default: 10)" in text
    text = help_text(evaluate_main, capsys)
    assert "as many as the real set has per class (default: 0)" in text and "(default: 100)" in text
    assert "(default: the run's --data) --test-data" in text  # the help's own default, and nothing after it


def test_classes_named_by_ids_are_shown_and_sampled_by_their_words(tmp_path, capsys):
    """ImageNet's classes are WordNet ids (n01440764): where a list beside the images gives their words (Tiny
    ImageNet's words.txt, Kaggle's LOC_synset_mapping.txt, the devkit's map_clsloc.txt, ImageNet-100's Labels.json,
    Keras' imagenet_class_index.json, torchvision's meta.bin), the run shows them and `sample --label tench` picks
    the class; the ids stay the names. So for numbered classes and a JSON of their names (Udacity's flowers'
    cat_to_name.json). Without such a list, or where a class is missing from it, nothing changes."""
    from fastacgan.words import class_words

    ids = ["n01440764", "n01443537", "n02012849", "n03126707"]
    root = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "train"
    for k, wnid in enumerate(ids):
        (root / wnid).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (60 * k, 40 * i, 0)).save(root / wnid / f"{wnid}_{i}.JPEG")
    assert class_words(root, ids) is None  # no list
    lists = {"LOC_synset_mapping.txt": "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
             "n02012849 crane\nn03126707 crane\n",
             "words.txt": "n01440764\ttench, Tinca tinca\nn01443537\tgoldfish\nn02012849\tcrane\nn03126707\tcrane\n",
             "map_clsloc.txt": "n01440764 449 tench\nn01443537 1 goldfish\nn02012849 2 crane\nn03126707 3 crane\n",
             "Labels.json": json.dumps({"n01440764": "tench, Tinca tinca", "n01443537": "goldfish",
                                        "n02012849": "crane", "n03126707": "crane"}),
             "imagenet_class_index.json": json.dumps({str(k): [i, w] for k, (i, w) in enumerate(zip(
                 ids, ["tench", "goldfish", "crane", "crane"]))})}  # fmt: skip
    for name, text in lists.items():
        (tmp_path / name).write_text(text)  # four folders above train/
        assert class_words(root, ids) == ["tench", "goldfish", "crane", "crane"], name
        assert class_words(root, [*ids, "n09999999"]) is None  # a class it lacks: none
        (tmp_path / name).unlink()
    names = dict(zip(ids, [("tench", "Tinca tinca"), ("goldfish", "Carassius auratus"), ("crane",), ("crane",)]))
    torch.save((names, ["n01440764"] * 3), tmp_path / "meta.bin")  # torchvision's ImageNet's root (it was not read)
    assert class_words(root, ids) == ["tench", "goldfish", "crane", "crane"]
    (tmp_path / "meta.bin").write_bytes(b"not torch's")  # (another file of that name: none)
    assert class_words(root, ids) is None
    (tmp_path / "meta.bin").unlink()
    assert class_words(root, ["cat", "dog"]) is None
    dogs = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]  # Stanford Dogs' Images/: the id, then its word
    assert class_words(tmp_path, dogs) == ["Chihuahua", "Japanese spaniel"]  # (no list needed; it had none)
    assert class_words(tmp_path, [*dogs, "n02085936"]) is None
    flowers = tmp_path / "flower_data" / "train"  # Udacity's: numbered folders, cat_to_name.json beside them
    (flowers / "21").mkdir(parents=True)
    (flowers / "3").mkdir()
    (tmp_path / "flower_data" / "cat_to_name.json").write_text(json.dumps({"21": "fire lily", "3": "canterbury bells",
                                                                           "1": "pink primrose"}))  # fmt: skip
    (tmp_path / "flower_data" / "stats.json").write_text(json.dumps({"21": "x", "3": "y"}))  # (not named as names)
    assert class_words(flowers, ["21", "3"]) == ["fire lily", "canterbury bells"]
    assert class_words(flowers, ["21", "4"]) is None
    (tmp_path / "LOC_synset_mapping.txt").write_text(lists["LOC_synset_mapping.txt"])

    out = tmp_path / "run"
    assert train_main(["--data", str(root), *TINY, "--steps", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "4 classes (n01440764 (tench), n01443537 (goldfish), n02012849 (crane), n03126707 (crane))" in said
    assert sample_main([str(out), "--label", "Goldfish", "--n", "2", "--out", str(tmp_path / "fish")]) == 0
    assert sorted(p.name for p in (tmp_path / "fish").iterdir()) == ["n01443537_00000.png", "n01443537_00001.png"]
    assert sample_main([str(out), "--label", "crane", "--out", str(tmp_path / "x.png")]) == 2
    assert "--label 'crane' is the word of n02012849, n03126707: give one of those" in capsys.readouterr().err
    assert sample_main([str(out), "--label", "goldfsh", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "(classes: n01440764 (tench), n01443537 (goldfish)" in err and "did you mean goldfish?" in err
    cli = [str(out), "--epochs", "1", "--n-per-class", "2", "--image-metrics", "0", "--device", "cpu"]
    assert evaluate_main(cli) == 0  # the report names the ids' words beside the per-class figures
    report = json.loads(capsys.readouterr().out)
    assert report["class_words"] == dict(zip(ids, ["tench", "goldfish", "crane", "crane"]))
    assert list(report["per_class"]) == ids
