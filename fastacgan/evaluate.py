"""Conditioning quality: how often a classifier trained on the real images (the judge) puts generated images in
the class they were generated for; the Frechet distance between generated and held-out real images in the
judge's features (FID's recipe without a downloaded network); the discriminator on held-out real images and
generated ones (its class accuracy, D(x), D(G(z)), the loss terms), the "Test" figures the MNIST AC-GAN reports;
and the ISIC AC-GAN's PSNR, SSIM, MS-GMSD, MDSI and HaarPSI between generated and real images (image_metrics.py).
`python -m fastacgan.evaluate RUN_OR_FILE [--data PATH] [--test-data PATH] [--n-per-class 100]`.

Chance is 1/K; a well-conditioned AC-GAN is far above it. The classifier is a small CNN trained from
scratch on the run's data (decoded at the run's resolution), so the figure needs no downloaded weights.
The held-out images are --test-data (its test split where it has one), or else the test split of the run's data
(CIFAR batches, idx files, an .npz with x_test, a folder or archive split into parts, test.tar.gz beside train.tar.gz).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .config import DefaultsHelp, field_help, one_path_each
from .data import DataError, open_catalog
from .decode import decode_all
from .devices import memory_error, memory_error_text, select_device
from .heap import keep_freed_memory
from .hints import ONE_CLASS, not_found_hint
from .image_metrics import seed000_metrics
from .judge import accuracy, classification_accuracy_score, held_out_split, judge_generator, train_classifier
from .kernels import STAT_NAMES, acgan_loss_reference
from .limits import fit_threads
from .loaders import to_model_input
from .models import Discriminator, ModelSpec
from .runlog import echo, echo_quietly, let_go_quietly, plain_warnings, tolerant_console
from .runs import RUNS_DATA, run_path, trained_on
from .sample import (
    add_ckpt_arguments,
    add_ema_argument,
    add_truncation_argument,
    averaged,
    check_truncation,
    ckpt_argument,
    generate,
    generate_batches,
    generator_state,
    truncation_note,
    weights_of,
)
from .splits import listed_part
from .workers import default_workers, lost_worker, workers_note


def discriminator_from(state: dict, device: str | torch.device = "cpu") -> Discriminator:
    """D of a loaded checkpoint, in eval mode on `device`: running BatchNorm statistics, no dropout, the spectral
    norm's stored vectors (no power iteration)."""
    d = Discriminator(ModelSpec(**state["spec"]))
    d.load_state_dict(state["D"])
    return d.to(device).eval()


@torch.no_grad()
def score_discriminator(d: Discriminator, images_u8: torch.Tensor, labels: torch.Tensor, batch: int = 512,
                        g=None, seed: int = 0) -> dict:  # fmt: skip
    """D on real uint8 [N, H, W, C] images: its class accuracy, mean D(x), and the mean BCE (target real) and CE
    terms of its loss, with the training loss's own function. With a generator g, also D on as many generated
    images (random classes, noise from seed): mean D(G(z)), the BCE (target fake) and CE terms, G's BCE (target
    real), and the MNIST AC-GAN's "Test" rows made of them: G GANLoss, G NLLLoss, G Loss, D GANLoss, D NLLLoss,
    D Loss (its D and G losses, each the sum of its BCE and CE terms: G Loss = G GANLoss + G NLLLoss)."""
    dev = next(d.parameters()).device

    def mean_stats(images, targets, classes) -> list[dict]:
        """The mean stats of D's outputs against each target; images(start, end): the batch's model input, asked
        for once per batch, in order."""
        total = torch.zeros(len(targets), len(STAT_NAMES), dtype=torch.float64)
        for i in range(0, len(classes), batch):
            src, cls = d(images(i, min(i + batch, len(classes))).to(dev))
            for k, target in enumerate(targets):
                _, stats = acgan_loss_reference(src.float(), cls.float(), target, classes[i : i + batch].to(dev))
                total[k] += stats.double().cpu() * len(src)
        return [dict(zip(STAT_NAMES, (t / len(classes)).tolist())) for t in total]

    (real,) = mean_stats(lambda a, b: to_model_input(images_u8[a:b].to(dev), channels_last=False), [1.0], labels)
    out = {"images": len(labels), "class_accuracy": real["acc"], "d_real": real["d_prob"],
           "bce_real": real["bce"], "ce_real": real["ce"]}  # fmt: skip
    if g is None:
        return out
    c = torch.randint(d.spec.num_classes, (len(labels),), generator=torch.Generator().manual_seed(seed))
    fakes = generate_batches(g, c, seed, batch)
    fake, as_real = mean_stats(lambda a, b: next(fakes)[1], [0.0, 1.0], c)
    out.update({"class_accuracy_fake": fake["acc"], "d_fake": fake["d_prob"], "bce_fake": fake["bce"],
                "ce_fake": fake["ce"], "bce_g": as_real["bce"]})  # fmt: skip
    rows = {"g_gan_loss": as_real["bce"], "g_nll_loss": fake["ce"], "d_gan_loss": real["bce"] + fake["bce"],
            "d_nll_loss": real["ce"] + fake["ce"]}  # fmt: skip
    rows |= {"g_loss": rows["g_gan_loss"] + rows["g_nll_loss"], "d_loss": rows["d_gan_loss"] + rows["d_nll_loss"]}
    out["mnist_acgan_test_rows"] = rows
    return out


def image_metrics(g, images_u8: torch.Tensor, num_classes: int, pairs: int, seed: int = 0) -> dict:
    """The ISIC AC-GAN's report (image_metrics.seed000_metrics) for `pairs` generated images (random classes,
    noise from seed) against as many real images uint8 [N, H, W, C] drawn at random; and, as "real_vs_real", the
    same figures between those real images and as many others: what a generator of perfect images would score,
    since the pairs are unpaired. pairs is at most N / 2, so that no real image is drawn twice."""
    rng = torch.Generator().manual_seed(seed)
    pairs = min(pairs, max(1, len(images_u8) // 2))
    labels = torch.randint(num_classes, (pairs,), generator=rng)
    real = images_u8[torch.randperm(len(images_u8), generator=rng)[: 2 * pairs]].permute(0, 3, 1, 2).float()

    floor = seed000_metrics(real[pairs:], real[:pairs]) if len(real) == 2 * pairs else None
    return _rounded({"pairs": pairs, **seed000_metrics(generate(g, labels, seed), real[:pairs]), "real_vs_real": floor})


def _rounded(report):
    """The floats of a report (nested dicts too) to 4 decimals, for printing."""
    if isinstance(report, dict):
        return {k: _rounded(v) for k, v in report.items()}
    return round(report, 4) if isinstance(report, float) else report


@plain_warnings
def main(argv: list[str] | None = None) -> int:
    tolerant_console()
    doc = __doc__.split("\n\n")[0]
    p = argparse.ArgumentParser(prog="python -m fastacgan.evaluate", description=doc, formatter_class=DefaultsHelp)
    add_ckpt_arguments(p)
    p.add_argument("--data", default="", help="real data for the classifier (default: the run's --data)")
    p.add_argument(
        "--test-data",
        default="",
        help="held-out real images to score D on, any --data form; of a set that has a test split, that split "
        "(default: the test split of the run's data when it has one: CIFAR batches, idx files, .npz, a folder or "
        "archive split into train/ and test/ or val/, test.tar.gz beside a train.tar.gz, the built-in digits)",
    )
    p.add_argument("--test-csv", default="", help="the labels CSV of --test-data, as --csv is to --data")
    p.add_argument("--n-per-class", type=int, default=100, help="generated images per class")
    p.add_argument("--cas", action="store_true", help="also the Classification Accuracy Score: a classifier trained on "
                   "generated images only, scored on held-out real ones (as long again as the judge)")  # fmt: skip
    p.add_argument("--cas-per-class", type=int, default=0,
                   help="generated images per class for --cas; 0 = as many as the real set has per class")  # fmt: skip
    p.add_argument("--image-metrics", type=int, default=256, metavar="PAIRS", help="image pairs (generated, real; "
                   "at most half the real images) for the ISIC AC-GAN's PSNR, SSIM, MS-GMSD, MDSI and HaarPSI; "
                   "0 = none")  # fmt: skip
    p.add_argument("--epochs", type=int, default=3, help="classifier training epochs")
    p.add_argument("--max-images", type=int, default=20000, help="real images for the classifier (0 = all)")
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, default=-1, help=field_help("workers"))
    add_ema_argument(p)
    add_truncation_argument(p)
    a = p.parse_args(one_path_each(p, argv, ("--data", "--test-data", "--test-csv")))
    a.ckpt = ckpt_argument(p, a)
    say = lambda msg: echo_quietly(msg, sys.stderr)  # noqa: E731 - progress; stdout is the JSON report
    t0 = time.perf_counter()
    try:
        check_truncation(a.truncation)
        if a.image_metrics < 0:
            raise ValueError(f"--image-metrics {a.image_metrics}: give a number of image pairs, or 0 for none")
        for opt, least in (("epochs", 1), ("n_per_class", 1), ("max_images", 0), ("cas_per_class", 0), ("workers", -1)):
            if getattr(a, opt) < least:  # (else torch's or numpy's words, or a traceback, after the data is read)
                raise ValueError(f"--{opt.replace('_', '-')} must be >= {least}, got {getattr(a, opt)}")
        for opt, where in (("--data", a.data), ("--test-data", a.test_data)):  # (not after the other is decoded)
            if where and not where.startswith("builtin:") and not Path(where).expanduser().exists():
                raise DataError(f"{opt} {where}: no such file or folder{not_found_hint(where)}")
        device = select_device(a.device)
        fit_threads(say)  # (a container's --cpus: torch's threads to its CPU limit)
        a.workers = default_workers(a.workers)  # (-1: one a core)
        if note := workers_note(a.workers):
            say(note)
        if device.type == "cpu":
            keep_freed_memory()  # the judge trains faster, the same (see fastacgan/heap.py)
        g, state, file = generator_state(a.ckpt, device, a.ema, a.truncation)
        classes = list(state["classes"])
        cfg, data = state["config"], a.data or run_path(state["config"]["data"], state)

        origin = {}  # (where, split) -> the set read in its place (the held-out set beside a training set)

        def real(where: str, opt: str, split: str = "train", csv: str = "", held_out: bool = False):
            named = lambda m: say(re.sub(r"--data(?![-\w])", opt, m))  # (the data forms' lines name --data)
            try:
                cat = open_catalog(where, csv, cfg["csv_image_col"], cfg["csv_label_col"], cfg["classes"],
                                   a.max_images, 0, g.spec.image_size, named, split)  # fmt: skip
            except DataError as e:  # the data forms name --data: here it may be --test-data
                hint = f" {RUNS_DATA}" if where == data and not a.data and split == "train" else ""
                why = str(e).split(ONE_CLASS)[0]  # (the run's classes, not one: no hint to train on them so)
                hint += listed_part(where) if opt == "--test-data" and "--csv" not in why else ""  # (Kaggle's ImageNet)
                raise type(e)(re.sub(r"--data(?![-\w])", opt, why) + hint) from e
            origin[where, split] = cat.origin
            if held_out and set(cat.class_names) < set(classes):  # a held-out set that lacks a class or two
                cat.labels = np.array([classes.index(c) for c in cat.class_names], dtype=np.int64)[cat.labels]
                cat.class_names = classes
            if cat.class_names != classes:  # (a held-out part of other folders, Tiny ImageNet test/images/: not fatal)
                raise DataError(f"{opt} {where}: classes {cat.class_names[:10]} differ from the checkpoint's "
                                f"{classes[:10]}{listed_part(where) if opt == '--test-data' else ''}")  # fmt: skip
            say(f"{opt} {cat.origin or where}: {len(cat)} images{' (held out)' if held_out else ''}")
            return decode_all(cat, g.spec.image_size, g.spec.channels, a.workers, "skip", log=say)

        from_average = averaged(state, a.ema)  # (the generated images are its)
        say(f"evaluating {file}{' (G: its moving average, --g-ema)' if from_average else ''}{truncation_note(g)}")
        images, labels = real(data, "--data", csv=run_path(cfg["csv"], state) if not a.data else "")
        if a.test_data:
            held = real(a.test_data, "--test-data", "held", csv=a.test_csv, held_out=True)  # (a set's test split)
            held_name = origin[a.test_data, "held"] or a.test_data
            if held_name == a.test_data and trained_on(state, a.test_data, a.test_csv):
                say(f"note: --test-data {a.test_data} is the run's own data: D is scored on the images it trained on")
        else:
            try:
                held, beside = real(data, "--data", "test", held_out=True), origin.get((data, "test"))
                held_name = f"{beside} (the held-out set beside {data})" if beside else f"{data} (its test split)"
            except DataError as e:  # no test split, or a damaged or missing test file: said, not fatal
                why = re.sub(r"give it: --data (.+) --csv ", r"give it: --test-data \1 --test-csv ", str(e))
                listed = "" if "--test-csv" in why else listed_part(data)  # (Tiny ImageNet's val_annotations.txt)
                held, d_score = None, f"no held-out images ({why}); give them with --test-data{listed}"
        say(f"training the judge (a classifier) on the {len(labels)} --data images: {a.epochs} epoch(s)")
        clf, real_acc = train_classifier(images, labels, len(classes), a.epochs, log=say, device=device)
        say(f"judging {a.n_per_class * len(classes)} generated images")
        judged = judge_generator(g, clf, images, labels, len(classes), a.n_per_class)
        if a.image_metrics > 0:
            say("image metrics (PSNR, SSIM, MS-GMSD, MDSI, HaarPSI) between generated and real images")
        pictures = image_metrics(g, images, len(classes), a.image_metrics) if a.image_metrics > 0 else None
        if held is not None:
            say(f"scoring the discriminator on {held_name}")
            d_score = {"data": held_name, **score_discriminator(discriminator_from(state, device), *held, g=g)}
            d_score = _rounded(d_score)
        cas = None
        if a.cas:  # scored on the held-out images, else on the real images the judge held out
            if held is not None:
                test, test_name = held, held_name
                on_real = accuracy(clf, to_model_input(held[0], channels_last=False), held[1])
            else:
                val = held_out_split(len(labels), torch.Generator().manual_seed(0))[1]
                test, test_name, on_real = (images[val], labels[val]), "the real images the judge held out", real_acc
            per_class = a.cas_per_class or max(1, len(labels) // len(classes))
            say(f"classification accuracy score: a classifier trained on {per_class * len(classes)} generated "
                f"images, scored on {test_name}")  # fmt: skip
            on_fake = classification_accuracy_score(g, len(classes), per_class, *test, a.epochs, device)
            cas = {"test": test_name, "images": len(test[1]), "generated_per_class": per_class,
                   "accuracy_trained_on_generated": round(on_fake, 4),
                   "accuracy_trained_on_real": round(on_real, 4)}  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        echo_quietly(f"error: {e}", sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the rest goes on as a traceback
        lost = lost_worker(e, default_workers(a.workers))
        if lost is None and not memory_error(e):
            raise
        bounds = f"--max-images (now {a.max_images}) and --n-per-class (now {a.n_per_class}) bound the images it holds"
        echo_quietly(f"error: {lost or f'out of memory: {memory_error_text(e)}; {bounds}'}", sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        let_go_quietly(e)  # (the decoding workers, shut down here: a second Ctrl-C there is not a traceback)
        say("interrupted: no report")
        return 130
    say(f"done in {time.perf_counter() - t0:.0f} s")
    report = {
        "checkpoint": str(file),
        "generator": weights_of(state, a.ema),
        "truncation": a.truncation or None,
        "classifier_real_accuracy": round(real_acc, 4),
        "generated_class_accuracy": round(judged["generated_class_accuracy"], 4),
        "chance": round(1 / len(classes), 4),
        "per_class": {c: round(v, 3) for c, v in zip(classes, judged["per_class"])},
        **({"class_words": dict(zip(classes, state["class_words"]))} if state.get("class_words") else {}),  # (tench)
        **{k: judged[k] for k in ("judge_frechet_distance", "judge_frechet_images", "judge_frechet_real_vs_real")},
        "discriminator_held_out": d_score,
        **({"classification_accuracy_score": cas} if cas else {}),
        **({"image_metrics": pictures} if pictures else {}),
    }
    try:
        echo(json.dumps(report, indent=2))
    except BrokenPipeError:  # `| head` that has its lines: ended as other commands end then, without a traceback
        return 128 + getattr(signal, "SIGPIPE", 13)
    except OSError as e:  # `> report.json` on a full disk
        echo_quietly(f"error: writing the report failed ({e.strerror or e})", sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
