"""--init-from: a new run starts from another run's G and D (fine-tuning), the layers of other shapes afresh."""

import pytest
import torch
from conftest import TINY

from fastacgan import checkpoint as ckpt
from fastacgan.config import parse_args
from fastacgan.train import Trainer, main


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "src"
    assert main(["--data", "builtin:digits:200", *TINY, "--steps", "4", "--g-ema", "0.9", "--out", str(out)]) == 0
    return out, ckpt.load_checkpoint(ckpt.list_checkpoints(out / "checkpoints")[-1])


def trainer(args, lines):
    return Trainer(parse_args(["--data", "builtin:digits:200", *TINY, *args]), log=lines.append)


def test_a_run_of_the_same_model_takes_every_tensor(source, tmp_path):
    src, state = source
    lines = []
    t = trainer(["--init-from", str(src), "--seed", "5", "--g-ema", "0.99", "--out", str(tmp_path / "a")], lines)
    for name, module in (("G", t.gan.G), ("D", t.gan.D)):
        mine = module.state_dict()
        assert mine.keys() == state[name].keys()
        for k, v in state[name].items():
            assert torch.equal(mine[k], v), f"{name}.{k}"
    for k, v in t.gan.g_ema.module.state_dict().items():  # the average starts from the weights taken
        assert torch.equal(v, state["G"][k]), k
    assert t.gan.opt_g.state_dict()["state"] == {} and t.step == 0  # a new run: its optimizers start afresh
    said = [line for line in lines if line.startswith("weights from ")]
    assert said == [f"weights from {ckpt.list_checkpoints(src / 'checkpoints')[-1]} (step 4, 10 classes): every "
                    "tensor of G and D"]  # fmt: skip


def test_another_number_of_classes_starts_the_class_layers_afresh(source, tmp_path):
    src, state = source
    lines = []
    t = trainer(["--init-from", str(src), "--classes", "0,1,2", "--out", str(tmp_path / "b")], lines)
    fresh = trainer(["--classes", "0,1,2", "--out", str(tmp_path / "c")], [])  # the same seed, not initialised
    other = {("G", "embed.weight"), ("D", "cls_head.weight"), ("D", "cls_head.bias")}
    for name, module, unset in (("G", t.gan.G, fresh.gan.G), ("D", t.gan.D, fresh.gan.D)):
        for k, v in module.state_dict().items():
            want = unset.state_dict()[k] if (name, k) in other else state[name][k]
            assert torch.equal(v, want), f"{name}.{k}"
    assert any(line.endswith("; 3 tensors of other shapes start afresh: G.embed.weight, D.cls_head.weight, "
                             "D.cls_head.bias") for line in lines)  # fmt: skip
    # and it trains from there
    assert main(["--data", "builtin:digits:200", *TINY, "--classes", "0,1,2", "--init-from", str(src), "--steps", "3",
                 "--out", str(tmp_path / "d")]) == 0  # fmt: skip


def test_a_resumed_run_continues_its_own_weights(source, tmp_path):
    """--auto-resume --init-from (a requeued job): the first start takes the weights, the next continues its own
    checkpoint, the source is not read again."""
    src, _ = source
    args = [
        "--data",
        "builtin:digits:200",
        *TINY,
        "--init-from",
        str(src),
        "--auto-resume",
        "--out",
        str(tmp_path / "e"),
    ]
    assert main(args + ["--steps", "2"]) == 0
    first = ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path / "e" / "checkpoints")[-1])
    assert first["config"]["init_from"] == str(src)
    lines = []
    t = Trainer(parse_args(args + ["--steps", "4"]), log=lines.append)
    assert t.step == 2 and not any(line.startswith("weights from") for line in lines)
    for k, v in first["G"].items():
        assert torch.equal(t.gan.G.state_dict()[k], v), k


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--width", "0.5"], "its model is not this run's: g_base 8 (this run: 16), g_cap 128 (this run: 256)"),
        (["--image-size", "20"], "its model is not this run's: image_size 16 (this run: 20)"),
    ],
)
def test_another_model_is_refused_naming_what_differs(source, tmp_path, capsys, extra, msg):
    src, _ = source
    args = ["--data", "builtin:digits:200", *TINY, *extra, "--init-from", str(src), "--out", str(tmp_path / "f")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: --init-from {src}: {msg}" in err and "--preset, --image-size" in err


def test_another_preset_or_a_file_that_is_no_checkpoint_is_refused(source, tmp_path, capsys):
    src, _ = source
    args = ["--data", "builtin:digits:200", *TINY, "--out", str(tmp_path / "g")]
    assert main([*args, "--preset", "mnist", "--init-from", str(src)]) == 2
    assert f"error: --init-from {src}: its model is not this run's: preset digits (this run: mnist): " in \
        capsys.readouterr().err  # fmt: skip
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    assert main([*args, "--init-from", str(tmp_path / "x.pt")]) == 2
    assert f"error: --init-from {tmp_path / 'x.pt'}: " in capsys.readouterr().err


def test_a_missing_source_is_refused_before_the_data_is_read(tmp_path, capsys):
    args = ["--data", str(tmp_path / "nothing-here"), "--init-from", str(tmp_path / "none"), "--out", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"error: --init-from {tmp_path / 'none'}: no such file or folder (give a run folder or a checkpoint)\n"
    )
