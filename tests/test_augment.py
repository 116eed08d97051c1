"""--diffaug: DiffAugment's color, translation and cutout, checked image by image, their gradients, and in training."""

import pytest
import torch
from conftest import TINY, DeviceWork

from fastacgan import augment as A
from fastacgan import checkpoint as ckpt
from fastacgan.train import main


def run(args):
    return main([str(a) for a in args])


def test_the_policies_parse_in_their_order_and_a_wrong_name_is_refused():
    assert A.parse_policy("") == () and A.parse_policy(" ") == ()
    assert A.parse_policy("all") == A.POLICIES == ("color", "translation", "cutout")
    assert A.parse_policy("cutout, Color") == ("color", "cutout")  # (applied in DiffAugment's order)
    assert A.parse_policy("ALL") == A.parse_policy("all,cutout") == A.parse_policy(",all,") == A.POLICIES
    with pytest.raises(ValueError, match=r"--diffaug 'colour,flip': colour, flip is not a policy; give a comma"):
        A.parse_policy("colour,flip")


def _images(b=64, c=3, h=16, w=12, seed=0):
    return 1 + torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))  # no zero pixel


def test_translation_shifts_each_image_by_whole_pixels_within_an_eighth():
    x = _images()
    torch.manual_seed(1)
    out = A.translation(x)
    sy, sx = 2, 2  # 16 / 8, 12 / 8 rounded
    seen = set()
    for k in range(len(x)):
        found = None
        for dy in range(-sy, sy + 1):
            for dx in range(-sx, sx + 1):
                want = torch.zeros_like(x[k])
                ys, xs = slice(max(dy, 0), 16 + min(dy, 0)), slice(max(dx, 0), 12 + min(dx, 0))
                want[:, ys, xs] = x[k][:, max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 12 - max(dx, 0)]
                if torch.equal(out[k], want):
                    found = (dy, dx)
        assert found is not None, f"image {k} is not a shift of its input"
        seen.add(found)
    assert len(seen) > 10  # the 25 shifts are drawn image by image
    torch.manual_seed(1)  # channels-last in: the same values; each in its input's memory format (a channels-last
    last = A.translation(x.contiguous(memory_format=torch.channels_last))  # batch into a CPU's convs: 20% slower)
    assert torch.equal(last, out) and last.is_contiguous(memory_format=torch.channels_last) and out.is_contiguous()


def test_cutout_zeroes_one_rectangle_of_half_the_side_cut_by_the_edges():
    x = _images(h=16, w=10)
    torch.manual_seed(2)
    out = A.cutout(x)
    whole = 0
    for k in range(len(x)):
        zero = (out[k] == 0).all(dim=0)
        assert torch.equal(out[k][:, ~zero], x[k][:, ~zero])  # the rest untouched
        rows, cols = zero.any(dim=1).nonzero().flatten(), zero.any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols), f"image {k}: nothing cut out"
        block = zero[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert block.all() and zero.sum() == block.numel()  # one solid rectangle
        assert 4 <= len(rows) <= 8 and 3 <= len(cols) <= 5  # half of 16 and of 10, at least its half inside
        whole += len(rows) == 8 and len(cols) == 5
    assert 0 < whole < len(x)  # some squares whole, some cut by an edge


def test_color_is_brightness_saturation_and_contrast_with_their_ranges():
    x = _images(b=256, c=3) - 1.5
    torch.manual_seed(3)
    out = A.color(x)
    torch.manual_seed(3)
    r = torch.rand(256, 3, 1, 1, 1).double()  # (the same draws as the op's, in float32)
    want = x.double() + (r[:, 0] - 0.5)
    m = want.mean(dim=1, keepdim=True)
    want = (want - m) * 2 * r[:, 1] + m
    m = want.mean(dim=(1, 2, 3), keepdim=True)
    want = (want - m) * (r[:, 2] + 0.5) + m
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    # a grey image: brightness and contrast only, an affine map of each image with its scale in [0.5, 1.5]
    g = _images(b=256, c=1)
    torch.manual_seed(4)
    og = A.color(g)
    scale = (og - og.mean(dim=(1, 2, 3), keepdim=True)).flatten(1).norm(dim=1) / (
        (g - g.mean(dim=(1, 2, 3), keepdim=True)).flatten(1).norm(dim=1)
    )
    assert 0.5 <= scale.min() < 0.6 and 1.4 < scale.max() <= 1.5
    shift = og.mean(dim=(1, 2, 3)) - g.mean(dim=(1, 2, 3))
    assert -0.5 <= shift.min() < -0.4 and 0.4 < shift.max() <= 0.5


@pytest.mark.parametrize("name", ["color", "translation", "cutout", "all"])
def test_the_gradient_flows_through_each_policy(name):
    """gradcheck in float64, the random draws fixed by reseeding before each call."""
    policies = A.parse_policy(name)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, requires_grad=True)

    def f(t):
        torch.manual_seed(5)
        return A.diff_augment(t, policies)

    assert torch.autograd.gradcheck(f, (x,))


def test_augmentation_never_reads_a_device_value_and_compiles_without_a_graph_break():
    x = torch.randn(4, 3, 16, 16)
    with DeviceWork() as work:
        A.diff_augment(x, A.POLICIES)
    assert work.ops["rand"] == 1 and work.ops["randint"] == 4
    assert not {"_local_scalar_dense", "item", "nonzero", "is_nonzero"} & set(work.ops), work.ops
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: A.diff_augment(t, A.POLICIES), backend="eager", fullgraph=True)
    assert compiled(x).shape == x.shape


def test_d_sees_augmented_images_and_g_learns_through_them():
    """In the step, each image D sees (the real batch, the fakes in the D step, the fakes in the G step) is
    augmented, with its own draw; G's gradient comes back through the augmentation."""
    from fastacgan.config import TrainConfig, resolve_spec
    from fastacgan.step import ACGANStep

    spec = resolve_spec(TrainConfig(width=0.25, image_size=16), "cifar10", 1, 4)
    torch.manual_seed(0)
    gan = ACGANStep(spec, torch.device("cpu"), diffaug="translation,cutout")
    seen = []
    gan.D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    x = torch.rand(8, 1, 16, 16) + 1  # no zero pixel: a zero is the augmentation's
    gan(x, torch.randint(4, (8,)))
    assert len(seen) == 3
    assert all((s == 0).any() for s in seen)  # every one cut out (cutout: always part of a square inside)
    assert not torch.equal(seen[0], x) and (seen[0][seen[0] != 0] >= 1).all()  # the real images, moved
    assert not torch.equal(seen[1] == 0, seen[2] == 0)  # the fakes drawn anew for the G step
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.G.parameters() if p.requires_grad)


def test_a_run_with_diffaug_resumes_as_it_would_have_gone_on(tmp_path, capsys):
    """The draws come from torch's generator, which checkpoints keep: stopped at 7 and resumed to 20, the same
    weights as a run never stopped; the run says what D sees."""
    args = lambda name: ["--data", "builtin:digits:400", *TINY, "--out", tmp_path / name, "--diffaug", "all"]  # noqa: E731
    assert run(args("a") + ["--steps", "20"]) == 0
    assert "D sees DiffAugment's color, translation, cutout" in capsys.readouterr().out
    assert run(args("b") + ["--steps", "7"]) == 0
    assert run(["--out", tmp_path / "b", "--resume", "--steps", "20"]) == 0
    a, b = (ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path / n / "checkpoints")[-1]) for n in "ab")
    assert b["config"]["diffaug"] == "all"
    for part in ("G", "D"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k}"


def test_a_wrong_policy_is_refused_before_anything_is_written(tmp_path, capsys):
    args = ["--data", "builtin:digits:400", *TINY, "--out", tmp_path / "run", "--diffaug", "color,rotate"]
    assert run(args) == 2
    assert "--diffaug 'color,rotate': rotate is not a policy" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_small_set_is_told_what_diffaug_is_for(tmp_path, capsys):
    from types import SimpleNamespace

    import numpy as np

    from fastacgan.hints import FEW_FOR_A_GAN, data_notes

    def notes(n, diffaug=""):
        cat = SimpleNamespace(class_names=["a", "b"], labels=np.arange(n) % 2)
        return [x for x in data_notes(cat, 32, 32, diffaug=diffaug) if "--diffaug" in x]

    assert notes(FEW_FOR_A_GAN - 1) == [
        "note: 4,999 images are few for a GAN: its D learns them by heart as the run goes on; --diffaug all "
        "(DiffAugment) shows D each image, real or generated, transformed anew; --init-from RUN starts G and D "
        "from a run on a larger set"
    ]
    assert notes(FEW_FOR_A_GAN) == [] and notes(400, "cutout") == []
    assert run(["--data", "builtin:digits:400", *TINY, "--out", tmp_path / "run", "--steps", "1"]) == 0
    assert "note: 400 images are few for a GAN" in capsys.readouterr().out
