"""The quality check of the race: does the fast path learn what the reference learns?

    python benchmarks/quality.py [--data ../shared/data/cifar10-jpeg/train.tar.gz] [--steps 5000] [--out DIR]

Trains the same preset on the same data for the same number of steps twice: with fastacgan's trainer as a
user runs it (`python -m fastacgan.train --amp`: on a GPU torch.compile with CUDA graphs, bf16, channels-last,
the fused kernels, the resident loader) and with the plain eager reference of benchmarks/reference.py (fp32,
NCHW, PyTorch's spectral norm, separate loss modules). Then a small CNN is trained on the real images
(fastacgan.evaluate) and judges both generators: the generated-image class accuracy, overall and per class,
beside chance (1/K). Writes to --out: quality.json, quality.md (a table for benchmarks/RESULTS.md), and one
sample grid per implementation (a row per class, the same noise for both), plus fastacgan's run folder.

Both see the same decoded images (resized and centre-cropped once, as fastacgan does), without flips, in the
same batches and order (the reference is fed by fastacgan's resident loader with the same seed). The figures
vary from seed to seed by a few points: compare them with that in mind, and use --steps and --seed to look
closer.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import ReferenceACGAN  # noqa: E402

from fastacgan.data import open_catalog  # noqa: E402
from fastacgan.decode import decode_all  # noqa: E402
from fastacgan.devices import select_device  # noqa: E402
from fastacgan.imaging import make_grid, save_png, to_uint8  # noqa: E402
from fastacgan.judge import judge_generator, train_classifier  # noqa: E402
from fastacgan.loaders import MemoryLoader, to_model_input  # noqa: E402
from fastacgan.outputs import fmt_time  # noqa: E402
from fastacgan.sample import generate, load_generator  # noqa: E402
from fastacgan.train import main as train_main  # noqa: E402
from fastacgan.workers import default_workers  # noqa: E402

DATA = Path(os.environ.get("FASTACGAN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SHARED = DATA / "cifar10-jpeg" / "train.tar.gz"  # ../shared/data beside the checkout, or $FASTACGAN_DATA


def log(msg: str) -> None:
    print(f"[quality] {msg}", flush=True)


class TrainFailed(Exception):
    """fastacgan.train exited with an error (it has printed why)."""


def train_reference(spec, images, labels, steps, batch_size, device, cfg: dict, seed) -> tuple[nn.Module, float]:
    """The reference's loop over the decoded uint8 images, served by fastacgan's resident loader (so in the
    batches and order fastacgan's run saw), with the optimizer settings of fastacgan's resolved config `cfg`;
    -> (G in eval mode, seconds)."""
    torch.manual_seed(seed)
    ref = ReferenceACGAN(spec, device, lr=cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
    for group in ref.opt_d.param_groups:
        group["lr"] = cfg["lr_d"]
    loader = MemoryLoader(images, labels, batch_size, seed, device, hflip=False)  # fastacgan's batches and order
    step, t0, last = 0, time.time(), time.time()
    for epoch in range(-(-steps // loader.steps_per_epoch)):
        for x_u8, y in loader.epoch(epoch):
            loss_d, loss_g = ref.step(to_model_input(x_u8, channels_last=False), y)
            step += 1
            if time.time() - last > 10 or step == steps:
                last = time.time()
                log(f"reference step {step}/{steps}: loss D {loss_d:.3f} G {loss_g:.3f}, "
                    f"{step * batch_size / (last - t0):,.0f} images/s")  # fmt: skip
            if step == steps:
                break
    return ref.G.eval(), time.time() - t0


def sample_grid(g, num_classes: int, seed: int, path: Path) -> None:
    """One row of 10 per class (the first 10 classes), noise from `seed`: the same for every generator."""
    rows = min(10, num_classes)
    x = generate(g, torch.arange(rows).repeat_interleave(10), seed)
    save_png(path, make_grid(to_uint8(x), 10))


def markdown(res: dict) -> str:
    out = [f"{res['steps']} steps of `{res['preset']}` at batch {res['batch_size']} (width {res['width']:g}) on "
           f"{res['data']} ({res['images']} images, {res['num_classes']} classes), {res['device']}; judge: a CNN "
           f"with {res['classifier_real_accuracy']:.3f} accuracy on held-out real images; chance "
           f"{res['chance']:.3f}; {res['n_per_class']} generated images per class.", "",
           "| implementation | training time | generated-image class accuracy | worst class | judge's Frechet "
           "distance (real vs real) | sample grid |",
           "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in res["implementations"].items():
        worst = min(r["per_class"], key=r["per_class"].get)
        out.append(f"| {name} | {fmt_time(r['seconds'])} | **{r['generated_class_accuracy']:.3f}** | "
                   f"{worst} {r['per_class'][worst]:.2f} | {r.get('judge_frechet_distance')} "
                   f"({r.get('judge_frechet_real_vs_real')}) | {r['grid']} |")  # fmt: skip
    out += ["", "Training time: fastacgan's whole run as the user sees it (decoding, compilation, samples and "
            "checkpoints included); the reference's training loop alone."]  # fmt: skip
    return "\n".join(out) + "\n"


# fastacgan's options that would train another GAN than the reference's loop here does: refused in --fast-args
NOT_IN_THE_REFERENCE = {"cls_weight": 1.0, "real_label": 1.0, "fake_label": 0.0, "g_ema": 0.0, "diffaug": "",
                        "hflip": False, "balance_classes": False, "init_from": ""}  # fmt: skip


def check_fast_args(fast_args: str) -> None:
    """Refuse, before anything trains, --fast-args that change what fastacgan learns against the reference."""
    from fastacgan.config import flag, parse_args

    cfg = parse_args(["--data", "x", *shlex.split(fast_args)])
    if named := [flag(k) for k, neutral in NOT_IN_THE_REFERENCE.items() if getattr(cfg, k) != neutral]:
        raise ValueError(f"--fast-args: {', '.join(named)} would train fastacgan otherwise than the reference (which "
                         f"has no {', '.join(flag(k) for k in NOT_IN_THE_REFERENCE)}); leave them")  # fmt: skip


def run(a: argparse.Namespace) -> dict:
    out = Path(a.out)
    check_fast_args(a.fast_args)
    if (out / "quality.json").exists() or (out / "fastacgan").exists():
        raise ValueError(f"--out {out} already holds a quality run; choose another --out")
    device = select_device(a.device)
    out.mkdir(parents=True, exist_ok=True)

    # 1. fastacgan, as a user runs it
    argv = ["--data", a.data, "--preset", a.preset, "--steps", str(a.steps), "--batch-size", str(a.batch_size),
            "--width", str(a.width), "--image-size", str(a.image_size), "--max-images", str(a.max_images),
            "--seed", str(a.seed), "--device", str(device), "--out", str(out / "fastacgan"), "--amp",
            "--log-every", str(max(1, a.steps // 20)), *shlex.split(a.fast_args)]  # fmt: skip
    log("fastacgan: python -m fastacgan.train " + " ".join(shlex.quote(x) for x in argv))
    t0 = time.time()
    rc = train_main(argv)
    fast_seconds = time.time() - t0
    if rc != 0:
        raise TrainFailed(rc)
    g_fast, classes, _ = load_generator(str(out / "fastacgan"), device)
    spec = g_fast.spec
    cfg = json.loads((out / "fastacgan" / "config.json").read_text())["config"]

    # 2. the real images, decoded once: the reference's training data and the judge's
    cat = open_catalog(a.data, max_images=a.max_images, seed=a.seed, image_size=spec.image_size)
    if cat.class_names != classes:
        raise ValueError(f"--data {a.data}: classes {cat.class_names[:10]} differ from the run's {classes[:10]}")
    images, labels = decode_all(cat, spec.image_size, spec.channels, default_workers(-1), "skip", log=log)

    # 3. the reference, same spec, steps, batch and optimizer settings (on a CPU with the malloc cache that
    # fastacgan.train set: a setting of the process, fastacgan/heap.py)
    log(f"reference: {a.steps} steps, eager fp32 NCHW{', PyTorch spectral norm' if spec.d_sn else ''}, on {device}")
    g_ref, ref_seconds = train_reference(spec, images, labels, a.steps, a.batch_size, device, cfg, a.seed)

    # 4. the judge, then both generators
    log(f"classifier: {a.classifier_epochs} epochs on {len(labels)} real images")
    clf, real_acc = train_classifier(images, labels, len(classes), a.classifier_epochs, seed=a.seed, log=log,
                                     device=device)  # fmt: skip
    res = {"data": a.data, "preset": a.preset, "steps": a.steps, "batch_size": a.batch_size, "width": a.width,
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "images": len(labels), "num_classes": len(classes), "chance": 1 / len(classes),
           "n_per_class": a.n_per_class, "classifier_real_accuracy": real_acc, "spec": spec.to_dict(),
           "implementations": {}}  # fmt: skip
    for name, g, seconds in (("fastacgan", g_fast, fast_seconds), ("reference", g_ref, ref_seconds)):
        judged = judge_generator(g, clf, images, labels, len(classes), a.n_per_class, a.seed + 7, a.seed)
        grid = f"{name}_samples.png"
        sample_grid(g, len(classes), a.seed + 9, out / grid)
        per_class = dict(zip(classes, judged["per_class"]))
        res["implementations"][name] = {**judged, "seconds": seconds, "per_class": per_class, "grid": grid}
        log(f"{name}: generated-image class accuracy {judged['generated_class_accuracy']:.3f} (chance "
            f"{1 / len(classes):.3f}), judge's Frechet distance {judged['judge_frechet_distance']}, trained in "
            f"{fmt_time(seconds)}")  # fmt: skip
    (out / "quality.json").write_text(json.dumps(res, indent=2))
    (out / "quality.md").write_text(markdown(res))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python benchmarks/quality.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    ap.add_argument("--data", default=str(SHARED), help="image folder or .tar(.gz) of one, as fastacgan.train takes")
    ap.add_argument("--preset", default="cifar10", help="the architecture preset both train")
    ap.add_argument("--steps", type=int, default=5000, help="training steps of each implementation")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=float, default=1.0, help="channel-width multiplier of both models")
    ap.add_argument("--image-size", type=int, default=0, help="0 = the preset's")
    ap.add_argument("--max-images", type=int, default=0, help="a seeded random subset of the data; 0 = all")
    ap.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    ap.add_argument("--n-per-class", type=int, default=200, help="generated images per class for the accuracy")
    ap.add_argument("--classifier-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast-args", default="", help="more fastacgan.train options, e.g. '--no-compile'")
    ap.add_argument("--out", default="runs/quality", help="output folder (must not hold an earlier quality run)")
    a = ap.parse_args(argv)
    for name in ("steps", "batch_size", "n_per_class", "classifier_epochs"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    try:
        res = run(a)
    except TrainFailed as e:
        print(f"error: fastacgan.train exited with {e.args[0]} (its message is above)", file=sys.stderr)
        return e.args[0]
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
