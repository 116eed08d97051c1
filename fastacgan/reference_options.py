"""The reference implementations' command lines, read as fastacgan's: their option names (../shared/seeds: the
PyTorch ACGAN's main.py, the ImageNet/CIFAR ACGAN's main.py, the ISIC AC-GAN's main.py), fastacgan's own spelt with
'_' for '-', and for the options that have no equivalent here, what to use instead."""

from __future__ import annotations

import dataclasses

# the option names of the reference implementations (../shared/seeds: the PyTorch ACGAN's main.py, the
# ImageNet/CIFAR ACGAN's main.py, the ISIC AC-GAN's main.py), so their users' commands run unchanged; a name
# here is also taken with '-' and '_' swapped (--n_epochs)
REFERENCE_OPTIONS = {
    "--root_dir": "--data", "--dataroot": "--data", "--path": "--data", "--batchSize": "--batch-size",
    "--imageSize": "--image-size", "--num_epochs": "--epochs", "--niter": "--epochs", "--outdir": "--out",
    "--outf": "--out", "--manualSeed": "--seed", "--num_workers": "--workers",
    # the ISIC AC-GAN (its README: `python main.py -h`)
    "--n-epochs": "--epochs", "--b1": "--beta1", "--b2": "--beta2", "--latent-dim": "--nz",
    "--img-size": "--image-size", "--n-cpu": "--workers", "--sample-interval": "--sample-every",
    "--print-interval": "--log-every", "--save-model-interval": "--ckpt-every-epochs",
}  # fmt: skip
# options that also switch on what the reference does with them: the ISIC AC-GAN computes its image metrics with
# each sample (into metrics_report.log)
REFERENCE_ALSO = {"--sample-interval": "--image-metrics"}
REFERENCE_DATASETS = {"cifar10": "cifar10", "imagenet": "imagenet128", "mnist": "mnist"}  # --dataset -> --preset
REFERENCE_WITHOUT_EQUIVALENT = {
    "--netG": "fastacgan resumes its own checkpoints (--resume); it does not load a reference's saved netG/netD",
    "--netD": "fastacgan resumes its own checkpoints (--resume); it does not load a reference's saved netG/netD",
    "--ngf": "channel widths come from the preset; --width multiplies them (0.5 = half)",
    "--ndf": "channel widths come from the preset; --width multiplies them (0.5 = half)",
    "--num_classes": "the classes come from the data (one per class folder or label); --classes picks a subset",
    "--n-classes": "the classes come from the data (one per class folder or label); --classes picks a subset",
    "--eval": "images from a trained run: python -m fastacgan.sample --ckpt RUN (see the README, Generating images)",
}


def translate_reference_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv with the reference implementations' option names and fastacgan's with '_' for '-' (--batch_size)
    rewritten to fastacgan's, "OLD as NEW" for each rewrite). Raises ValueError for a reference option that has no
    equivalent, saying what to use instead."""
    from .config import PRESETS, TrainConfig, flag  # (config's parser names these options: a cycle at the top)

    fields = dataclasses.fields(TrainConfig)
    ours = {flag(f.name) for f in fields}
    takes_value = {flag(f.name) for f in fields if f.type not in ("bool", bool)}
    ours |= {"--no-" + o[2:] for o in ours}
    out, notes, i = [], [], 0
    has_data = any(a.split("=", 1)[0] in ("--data", *[k for k, v in REFERENCE_OPTIONS.items() if v == "--data"])
                   for a in argv)  # fmt: skip
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":  # everything after it is positional
            out += argv[i - 1 :]
            break
        name, eq, value = arg.partition("=")
        if eq and not name.startswith("-"):  # a Hydra-style override (the MNIST AC-GAN: experiment=mnist_ACGAN.yaml)
            option = flag(name)
            if option not in ours:
                hint = ("; its experiments are presets here: --preset mnist --data <the MNIST folder>"
                        if name == "experiment" else "")  # fmt: skip
                raise ValueError(f"{arg}: fastacgan takes options (--name value), and {name} is not one{hint}")
            out += [option, value]
            notes.append(f"{name}= as {option}")
            continue
        if not name.startswith("--"):
            out.append(arg)
            continue
        # fastacgan's own option, a reference's name for one, or one of ours spelt with '_' for '-'
        dashed = name.replace("_", "-")
        swapped = name[:2] + name[2:].translate(str.maketrans("-_", "_-"))
        new = (name if name in ours else REFERENCE_OPTIONS.get(name) or REFERENCE_OPTIONS.get(swapped)
               or (dashed if dashed in ours else None))  # fmt: skip
        if new:
            out.append(new + eq + value)
            if new in takes_value and not eq and i < len(argv):  # its value, whatever it looks like
                out.append(argv[i])
                i += 1
            also = REFERENCE_ALSO.get(name) or REFERENCE_ALSO.get(swapped)
            if also:
                out.append(also)
            if new != name:
                notes.append(f"{name} as {new}" + (f" (with {also})" if also else ""))
            continue

        def take_value() -> str:  # the option's value: after '=' or the next argument
            nonlocal i
            if eq:
                return value
            if i >= len(argv):
                raise ValueError(f"{name}: expected a value")
            i += 1
            return argv[i - 1]

        known = name if name in REFERENCE_WITHOUT_EQUIVALENT else swapped
        if known in REFERENCE_WITHOUT_EQUIVALENT:
            raise ValueError(f"{name} (a reference implementation's option) has no equivalent here: "
                             f"{REFERENCE_WITHOUT_EQUIVALENT[known]}")  # fmt: skip
        if name == "--lr":
            v = take_value()
            out += ["--lr-g", v, "--lr-d", v]
            new = "--lr-g and --lr-d"
        elif name in ("--load-model", "--load_model"):  # the ISIC AC-GAN's: continue from its newest checkpoint
            v = take_value() if eq or (i < len(argv) and not argv[i].startswith("-")) else "true"
            yes = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(v.lower())
            if yes is None:
                raise ValueError(f"{name} {v}: expected True or False")
            out.append("--resume" if yes else "--no-resume")
            new = out[-1]
        elif name == "--cuda" and not eq:
            out += ["--device", "cuda"]
            new = "--device cuda"
        elif name in ("--gpu", "--gpu_id"):
            out += ["--device", f"cuda:{take_value()}"]
            new = "--device cuda:N"
        elif name == "--ngpu":
            n = take_value()
            if n.strip() not in ("0", "1"):
                raise ValueError(f"--ngpu {n}: several GPUs train with torchrun --nproc_per_node={n} -m "
                                 f"fastacgan.train ... (see the README, Multi-GPU)")  # fmt: skip
            new = "nothing (one GPU per process)"
        elif name == "--dataset":
            v = take_value()
            if v.lower() not in REFERENCE_DATASETS:
                raise ValueError(f"--dataset {v}: choose the architecture with --preset "
                                 f"(auto, {', '.join(PRESETS)}) and the images with --data")  # fmt: skip
            if not has_data:
                raise ValueError(f"--dataset {v}: fastacgan downloads nothing; give the images with --data (or "
                                 f"--dataroot): torchvision's download folder, the python-version archive, an image "
                                 f"folder or a tar of one")  # fmt: skip
            out += ["--preset", REFERENCE_DATASETS[v.lower()]]
            new = f"--preset {REFERENCE_DATASETS[v.lower()]}"
        else:
            out.append(arg)
            continue
        notes.append(f"{name} as {new}")
    return out, notes
