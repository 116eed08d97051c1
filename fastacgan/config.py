"""The one training config, the model spec it resolves to with a preset (presets.py), and the CLI generated from
it (which also reads the reference implementations' option names: fastacgan.reference_options).

Every field of `TrainConfig` carries its help text in `metadata["help"]`; `build_parser` turns the
dataclass into an argparse parser (booleans get --flag / --no-flag), so the CLI and the config never
drift apart. A run writes the resolved config (presets and "auto" values filled in) to config.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .augment import parse_policy
from .models import CONDITIONING, ModelSpec, check_options
from .presets import PRESETS
from .reference_options import REFERENCE_OPTIONS, translate_reference_args


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- data
    data: str = _f(
        "builtin:digits",
        "image folder (PATH/<class>/*.jpg|png...), a .zip/.tar/.tar.gz of one, a folder or archive with a CSV of"
        " file names and labels, torchvision's or Keras' CIFAR/MNIST files (and torchvision's SVHN, STL-10, USPS, "
        "SEMEION, Flowers-102, Oxford-IIIT Pet, Food-101, FGVC-Aircraft, DTD, EMNIST, QMNIST; CUB-200-2011; "
        "Downsampled ImageNet), a CSV of pixel rows (Kaggle's MNIST train.csv; FER2013's fer2013.csv), a folder of "
        ".npy files (Quick, Draw!'s), Hugging Face's Parquet and Arrow files, WebDataset shards, LSUN's LMDB "
        "databases, TFRecord files (TensorFlow Datasets'), or builtin:digits (made on the fly)",
    )
    csv: str = _f(
        "",
        "CSV (or JSON Lines: metadata.jsonl) of image file names and labels: a path, or relative to --data's folder "
        "or beside it (an archive's: beside it); auto-detected when a --data folder holds exactly one *.csv next to "
        "an Images/ folder (the ISIC layout)",
    )
    csv_image_col: str = _f(
        "", "CSV column with the image file names (default: the first column, or the one whose names match images)"
    )
    csv_label_col: str = _f(
        "",
        "CSV column with the labels (default: 'label', 'labels', 'target', 'class', 'category', 'diagnosis', 'dx' "
        "or 'Finding Labels', in any case; else one-hot 0/1 columns; else the last column); of CelebA's -1/1 "
        "attributes, the one to train on (Smiling); several, comma-separated, make their combinations the classes "
        "(Male,Smiling); also a Parquet file's (CIFAR-100's coarse_label)",
    )
    classes: str = _f(
        "",
        "comma-separated subset of class names to train on, or START:END ranges of the sorted classes (10:20 = the "
        "11th to the 20th); default: all",
    )
    max_images: int = _f(
        0,
        "use at most this many images (a seeded random subset; a warning names any class it "
        "leaves without images); 0 = all",
    )
    bad_images: str = _f(
        "skip",
        "what to do with an unreadable or truncated image: skip (warn and count) or error",
        choices=("skip", "error"),
    )
    hflip: bool = _f(False, "random horizontal flips of real images")
    diffaug: str = _f(
        "",
        "DiffAugment for little data: D sees every image, real or generated, randomly transformed, G's gradient "
        "flowing back through it; a comma-separated list of color, translation, cutout, or all; empty = off",
    )
    balance_classes: bool = _f(False, "draw the real images so that every class comes equally often (with "
                               "replacement), as G's classes do: for unbalanced data (HAM10000, ISIC)")  # fmt: skip
    workers: int = _f(-1, "image-decoding worker processes; -1 = one per CPU core this process may use (at most 8)")
    loader: str = _f(
        "auto",
        "auto, resident (decode once, keep on the device), dali (NVIDIA DALI, GPU decoding), "
        "torch (PIL in DataLoader workers); auto: resident if it fits --cache-gb, else dali on a GPU with DALI, "
        "else torch",
        choices=("auto", "resident", "dali", "torch"),
    )
    cache_gb: float = _f(
        4.0,
        "budget for the resident loader: the decoded uint8 set stays on the device when it needs at most this "
        "many GiB (on a GPU, also at most half its free memory)",
    )
    decode_cache: str = _f(
        "",
        "folder where the resident loader keeps the decoded set: the first run saves it there (one file per data "
        "set, resolution and image list), later runs and resumes on the same data load it instead of decoding; "
        "a changed image file (size or time) means a new decode; empty = off",
    )
    # --- model
    preset: str = _f(
        "auto",
        "architecture preset: auto, digits, mnist, cifar10, isic64, isic128, imagenet128 "
        "(auto: digits for the built-in set, else chosen from the image size)",
    )
    image_size: int = _f(0, "training resolution; images are resized (short side) and centre-cropped; 0 = preset's")
    channels: int = _f(0, "1 (greyscale) or 3 (RGB); 0 = from the data")
    nz: int = _f(0, "noise dimension; 0 = preset's")
    conditioning: str = _f("", "how G sees the label: embed-mul, onehot-concat, onehot-replace; empty = preset's")
    width: float = _f(1.0, "multiply every channel width of G and D by this (0.5 = a half-width model)")
    # --- optimisation
    batch_size: int = _f(
        64,
        "images per step per process: with torchrun --nproc_per_node=N the global batch is N times "
        "this; the learning rate is not rescaled",
    )
    epochs: int = _f(0, "passes over the data; 0 = preset's")
    steps: int = _f(0, "total training steps; overrides --epochs when > 0")
    lr_g: float = _f(2e-4, "Adam learning rate of G")
    lr_d: float = _f(2e-4, "Adam learning rate of D")
    beta1: float = _f(0.5, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    cls_weight: float = _f(1.0, "weight of the auxiliary-classifier (cross-entropy) term in both losses")
    real_label: float = _f(1.0, "D's target for real images (0.9 = one-sided label smoothing)")
    fake_label: float = _f(
        0.0, "D's target for generated images (0.1, with --real-label 0.9: the ISIC AC-GAN's two-sided smoothing)"
    )
    g_ema: float = _f(
        0.0,
        "decay of a moving average of G's weights (0.999: about the last 1,000 steps; BigGAN's and StyleGAN's EMA "
        "generator), which the sample grids, fastacgan.sample and fastacgan.evaluate use; 0 = off",
    )
    # --- speed
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    amp: bool = _f(
        False,
        "mixed precision where the device has it: bf16 autocast on GPUs with native bf16 (compute capability 8.0+: "
        "A100, H100, RTX 30xx and later), fp16 with a gradient scaler on older GPUs (T4, V100), bf16 on CPUs with "
        "native bf16 (AVX512-BF16/AMX); on other CPUs fp32 with a notice",
    )
    amp_dtype: str = _f("auto", "auto, bf16, or fp16 (fp16 uses a gradient scaler); bf16 or fp16 implies --amp",
                        choices=("auto", "bf16", "fp16"))  # fmt: skip
    channels_last: bool = _f(True, "channels-last (NHWC) activations on CUDA")
    cudnn_benchmark: bool = _f(
        True,
        "CUDA: cuDNN times its convolution algorithms for each shape on first use and keeps the fastest "
        "(torch.backends.cudnn.benchmark; the step's shapes are fixed); --no-cudnn-benchmark: cuDNN's heuristics",
    )
    compile: bool = _f(True, "torch.compile the step on CUDA (mode reduce-overhead: CUDA graphs); --no-compile: eager")
    graph_step: bool = _f(
        False,
        "CUDA: capture the whole training step (both updates and optimizers) in one CUDA graph after 3 warm-up "
        "steps, so the host launches only the replay; not with several GPUs or fp16; experimental",
    )
    compile_cpu: bool = _f(False, "also torch.compile on a CPU (slow to compile; for testing)")
    compile_backend: str = _f("inductor", "torch.compile backend (inductor; eager or aot_eager to debug)")
    fused_kernels: bool = _f(
        True,
        "the Triton AC-GAN loss and spectral-norm kernels on CUDA; --no-fused-kernels: "
        "PyTorch ops (the CPU always uses PyTorch ops)",
    )
    fast_layers: bool = _f(
        True,
        "G's exact rewrites: upsample + 3x3 conv as one stride-2 transposed conv (2.25x fewer FLOPs), the 1x1 stem "
        "as a matrix product; --no-fast-layers: PyTorch's plain layers (same weights and checkpoints)",
    )
    fast_dropout: bool = _f(
        True,
        "on a CPU, D's dropout masks cut from 32-bit random words, a byte an element (the same distribution, "
        "another random stream; 5x faster there); --no-fast-dropout: nn.Dropout's (CUDA always uses it)",
    )
    malloc_cache: bool = _f(
        True,
        "on a CPU (Linux, glibc's malloc): keep memory that tensors free in the heap for the next step, instead of "
        "returning it to the OS and faulting it in again (15-25%% of a bf16 step on a 2-core CPU); "
        "--no-malloc-cache: malloc as it is",
    )
    sync_bn: bool = _f(False, "with several GPUs (torchrun): synchronised BatchNorm statistics across processes")
    # --- outputs
    out: str = _f("", "output folder; default runs/<data name>")
    resume: bool = _f(
        False, "continue from the newest checkpoint in --out; the options not given are the run's (not --device)"
    )
    auto_resume: bool = _f(
        False,
        "continue from the newest checkpoint in --out if it has one, else start a new run there: one command for a "
        "job that a cluster may stop and requeue",
    )
    init_from: str = _f("", "a run folder or checkpoint whose G and D a new run starts from (fine-tuning); layers of "
                        "other shapes (the classes', for another number of them) start afresh")  # fmt: skip
    seed: int = _f(0, "seed for weights, data order, noise and dropout (0 to 4294967295)")
    log_every: int = _f(
        50, "steps between progress lines and metrics records (metrics are read from the device only then)"
    )
    sample_every: int = _f(0, "steps between sample grids; 0 = about 24 grids per run")
    image_metrics: bool = _f(
        False,
        "with each sample grid, the ISIC AC-GAN's PSNR, SSIM, MS-GMSD, MDSI and HaarPSI between the grid's images "
        "and real.png's, into image_metrics.jsonl (its metrics_report.log)",
    )
    tensorboard: bool = _f(
        True,
        "TensorBoard's event file in --out (events.out.tfevents.fastacgan, written without TensorBoard): the metrics "
        "records and the sample grids, for `tensorboard --logdir runs`",
    )
    ckpt_every: int = _f(0, "steps between checkpoints; 0 = every epoch, at most every 2000 steps")
    ckpt_every_epochs: int = _f(
        0,
        "epochs between checkpoints, instead of --ckpt-every (not with it; the ISIC AC-GAN's --save-model-interval); "
        "0 = off",
    )
    keep_ckpts: int = _f(3, "how many of the newest checkpoints to keep; 0 = all")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SEED_MAX = 2**32 - 1  # the largest --seed (train's and sample's)

# the allowed range of each numeric option: (lowest, highest, lowest included, highest included), None: no bound
_RANGES = {
    "max_images": (0, None, True, True), "workers": (-1, None, True, True), "cache_gb": (0, None, True, True),
    "image_size": (0, None, True, True), "channels": (0, None, True, True), "nz": (0, None, True, True),
    "batch_size": (1, None, True, True), "epochs": (0, None, True, True), "steps": (0, None, True, True),
    "lr_g": (0, None, False, True), "lr_d": (0, None, False, True), "beta1": (0, 1, True, False),
    "beta2": (0, 1, True, False), "cls_weight": (0, None, True, True), "real_label": (0, 1, False, True),
    "fake_label": (0, 1, True, False), "g_ema": (0, 1, True, False),
    "log_every": (1, None, True, True), "sample_every": (0, None, True, True), "ckpt_every": (0, None, True, True),
    "ckpt_every_epochs": (0, None, True, True), "keep_ckpts": (0, None, True, True), "width": (0, None, False, True),
    # numpy's seeds are not negative (--max-images' subset), and a seed past 64 bits overflowed torch's
    "seed": (0, SEED_MAX, True, True),
}  # fmt: skip


def field_help(name: str) -> str:
    """A TrainConfig field's help text, for another command's option of the same meaning (evaluate's --workers)."""
    return TrainConfig.__dataclass_fields__[name].metadata["help"]


def flag(name: str) -> str:
    """A TrainConfig field's command-line option: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def _number(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)  # (an int in full: --seed 4294967295, not 4.29497e+09)


def validate_config(cfg: TrainConfig) -> None:
    """Raise ValueError naming the first option whose value is out of its range (before any work is done)."""
    for name, (lo, hi, lo_in, hi_in) in _RANGES.items():
        v = getattr(cfg, name)
        low_ok = lo is None or (v >= lo if lo_in else v > lo)
        high_ok = hi is None or (v <= hi if hi_in else v < hi)
        if not (low_ok and high_ok) or v != v:  # v != v: NaN
            left = "" if lo is None else f"{'>=' if lo_in else '>'} {_number(lo)}"
            right = "" if hi is None else f"{'<=' if hi_in else '<'} {_number(hi)}"
            want = " and ".join(x for x in (left, right) if x)
            raise ValueError(f"{flag(name)} must be {want}, got {_number(v)}")
    if cfg.fake_label >= cfg.real_label:
        raise ValueError(f"--fake-label {cfg.fake_label:g} must be below --real-label {cfg.real_label:g}: D's target "
                         f"for generated images is the lower one")  # fmt: skip
    parse_policy(cfg.diffaug)
    if cfg.preset != "auto":
        check_preset(cfg.preset)
    # those the models are built with, where given (else the preset's, the data's: checked once those are known)
    check_options(cfg.conditioning or CONDITIONING[0], cfg.image_size or 16, cfg.channels or 1)


def check_preset(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r} is unknown; choose from auto, {', '.join(PRESETS)}")


def check_run(cfg: TrainConfig) -> None:
    """A training run's own checks (sampling from its checkpoint elsewhere reads its config without them)."""
    import torch._dynamo  # (imported with the kernels already: their torch.library registration)

    # listing the backends imports all of them (0.25 s of every start); the default, inductor, is always one
    known = cfg.compile_backend == "inductor" or cfg.compile_backend in torch._dynamo.list_backends(exclude_tags=())
    if not known:  # (a backend of an installed package counts)
        raise ValueError(f"--compile-backend {cfg.compile_backend!r} is not a torch.compile backend: inductor, "
                         "aot_eager or eager (this torch's: torch._dynamo.list_backends(exclude_tags=()))")  # fmt: skip
    if cfg.ckpt_every and cfg.ckpt_every_epochs:
        raise ValueError(f"--ckpt-every {cfg.ckpt_every} and --ckpt-every-epochs {cfg.ckpt_every_epochs}: give one "
                         "of the two (steps or epochs between checkpoints)")  # fmt: skip
    if cfg.init_from and not (cfg.resume or cfg.auto_resume) and not Path(cfg.init_from).expanduser().exists():
        raise ValueError(f"--init-from {cfg.init_from}: no such file or folder (give a run folder or a checkpoint)")
    check_out(cfg.out)


def check_out(out: str) -> None:
    """--out (default runs/<data name> in the working folder) must be a folder this process can write to, or
    a path that can be made into one: said now, before the data is read and the model built."""
    path = Path(out or "runs").expanduser()
    what = f"--out {out}" if out else f"the default output folder ({Path.cwd() / 'runs'}/...)"
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} is a file, not a folder")
    here = path
    while not here.exists():  # the nearest folder that exists is where the output folders will be made
        here = here.parent
    if not here.is_dir():
        raise ValueError(f"{what}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: no permission to write in {here}")


def resolve_spec(cfg: TrainConfig, preset_name: str, channels: int, num_classes: int) -> ModelSpec:
    check_preset(preset_name)
    p = PRESETS[preset_name]
    arch = dict(p.arch)
    validate_config(cfg)
    for key in ("g_base", "d_base", "g_cap", "d_cap"):
        arch[key] = max(4, int(round(arch[key] * cfg.width)))
    return ModelSpec(
        image_size=cfg.image_size or p.image_size,
        channels=channels,
        num_classes=num_classes,
        nz=cfg.nz or p.nz,
        conditioning=cfg.conditioning or p.conditioning,
        **arch,
    )


class DefaultsHelp(argparse.HelpFormatter):
    """--help with each option's default, where it has one that says something: not for required options, flags
    that are off, empty strings, or where the help text already gives it (the tools' parsers; train's is built
    from TrainConfig's fields)."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if action.required or d is None or d is False or d == "" or d == argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: {d})"


def build_parser(prog: str = "python -m fastacgan.train", defaults: bool = True) -> argparse.ArgumentParser:
    """The training command's parser; defaults=False: one whose result holds only the options given."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train an AC-GAN (fastacgan). Every option is a field of "
        "TrainConfig (fastacgan/config.py); a run writes the resolved set to config.json.",
        epilog="The reference implementations' option names work too, each read as fastacgan's: "
        + ", ".join(f"{k} ({v})" for k, v in REFERENCE_OPTIONS.items())
        + ", --lr (--lr-g and --lr-d), --cuda, --gpu/--gpu_id N (--device cuda:N), --dataset "
        + "cifar10|imagenet|mnist (--preset), --load-model True|False (--resume), and every option with '_' for "
        + "'-' (--batch_size).",
    )
    for f in dataclasses.fields(TrainConfig):
        option = flag(f.name)
        text = f.metadata["help"]
        if f.default not in ("", None) and "default" not in text:
            text += f" (default: {'on' if f.default is True else 'off' if f.default is False else f.default})"
        kw = {"default": f.default if defaults else argparse.SUPPRESS, "help": text, "dest": f.name}
        if f.type in ("bool", bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, **kw)
        else:
            typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(option, type=typ, choices=f.metadata.get("choices"), **kw)
    return parser


def one_path_each(parser: argparse.ArgumentParser, argv: list[str] | None, opts: tuple[str, ...]) -> list[str]:
    """argv (sys.argv's when None), after refusing an option of `opts` followed by more paths: `--data imgs/*.jpg`
    unquoted, which the shell expands into every file (argparse said "unrecognized arguments: imgs/b.jpg ...")."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = parser.parse_known_args(argv)[1]
    for opt in opts:
        at = argv.index(opt) + 2 if opt in argv[:-1] else -1
        if at > 0 and extra and argv[at : at + len(extra)][:1] == extra[:1] and not extra[0].startswith("-"):
            n = next((k for k, a in enumerate(argv[at:], start=1) if a.startswith("-")), len(argv) - at + 1)
            parser.error(f"{opt} takes one path, got {n:,} ({argv[at - 1]}, {argv[at]} ...): a pattern the shell "
                         f"expanded? give the folder that holds them")  # fmt: skip
    return argv


def parse_args(
    argv: list[str] | None = None, notes: list[str] | None = None, given: set[str] | None = None
) -> TrainConfig:
    """The TrainConfig of a command line (sys.argv's when None). The reference implementations' option names are
    accepted; when any was used, one line in `notes` says how each was read. `given` receives the names of the
    options the command line set (TrainConfig's field names), for a resume to take the others from its run."""
    parser = build_parser()
    try:
        argv, said = translate_reference_args(list(sys.argv[1:] if argv is None else argv))
    except ValueError as e:
        parser.error(str(e))
    if notes is not None and said:
        notes.append(f"options read as fastacgan's: {', '.join(said)}")
    cfg = TrainConfig(**vars(parser.parse_args(one_path_each(parser, argv, ("--data", "--csv")))))
    if given is not None:
        given.update(vars(build_parser(defaults=False).parse_args(argv)))
    return cfg


def save_json(path, obj) -> None:
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
