"""What a --data that is not one of the forms most likely meant, said in the error: a URL, an unexpanded pattern,
a data set's name, a zstd tar, a labels CSV, one image, a Hugging Face file; and the line that says which files a
listing passed over, with what to do with those that hold images in a form not read here (DICOM, AVIF); and the
notes at a run's start on what its data is for an AC-GAN (enlarged images, one class, unbalanced classes)."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import numpy as np

from .augment import parse_policy
from .data import TEST_SPLITS, TRAIN_SPLITS, extension, hidden, is_image
from .splits import split_word

# data sets by the names their users call them, which are not paths here: what to give instead
_KNOWN_SETS = {
    **dict.fromkeys(("cifar10", "cifar100"),
                    "torchvision's download folder (its root), the cifar-*-python.tar.gz or an image folder of it"),
    **dict.fromkeys(("mnist", "fashionmnist", "kmnist", "qmnist"),
                    "torchvision's download folder (its root), Keras' .npz, idx files or Kaggle's CSV"),
    "emnist": "the images file of one of its splits, EMNIST/raw/emnist-balanced-train-images-idx3-ubyte.gz",
    **dict.fromkeys(("imagenet32", "imagenet64", "imagenet16", "imagenet8", "downsampledimagenet"),
                    "its authors' Imagenet32_train folder (train_data_batch_1 ...) or one batch file"),
    "svhn": "torchvision's download folder (its root) or its train_32x32.mat",
    "usps": "torchvision's download folder (its root, which holds usps.bz2) or its usps.bz2",
    "semeion": "torchvision's download folder (its root, which holds semeion.data) or its semeion.data",
    "stl10": "torchvision's download folder (its root) or its stl10_binary folder",
    **dict.fromkeys(("flowers102", "oxfordflowers", "oxford102flowers"),
                    "torchvision's download folder (its root) or its flowers-102 folder"),
    **dict.fromkeys(("oxfordiiitpet", "oxfordpet", "oxfordpets"),
                    "torchvision's download folder (its root) or its oxford-iiit-pet folder"),
    "food101": "torchvision's download folder (its root) or its food-101 folder",
    **dict.fromkeys(("fgvcaircraft", "aircraft"),
                    "torchvision's download folder (its root) or its fgvc-aircraft-2013b folder"),
    **dict.fromkeys(("cub", "cub200", "cub2002011", "birds"), "its CUB_200_2011 folder (or the folder holding it)"),
    "dtd": "torchvision's download folder (its root) or its dtd folder",
    "lsun": "its folder of LMDB databases (bedroom_train_lmdb ...) or one of them",
    **dict.fromkeys(("imagenet", "tinyimagenet", "isic", "celeba"),
                    "an image folder or an archive of it"),
}  # fmt: skip


def not_found_hint(data: str) -> str:
    """What a --data that is not there most likely meant: a URL, a pattern the shell did not expand, a data set's
    name."""
    if "://" in data:
        return "; fastacgan reads local files and downloads nothing: download it, then give the file or folder"
    if any(c in data for c in "*?["):
        return "; a pattern is not expanded here: give the folder that holds the images (or an archive)"
    known = _KNOWN_SETS.get(re.sub(r"[-_ ]", "", data.lower()))
    if known:
        return (
            f"; fastacgan downloads nothing: {data} is read from a downloaded copy, {known} (the README's "
            '"Training on your data"); builtin:digits is the built-in set'
        )
    return ""


# LSUN's form (data.mdb, lock.mdb) where it is not read: zipped, or in folders not named as LSUN names them
LMDB = (" (data.mdb is an LMDB database, as LSUN ships its images: read unzipped, its folder as --data, or the folder "
        "of several named as LSUN's are, bedroom_train_lmdb, church_outdoor_train_lmdb ...)")  # fmt: skip


TF_RECORDS = ("TFRecord files (TensorFlow Datasets', Kaggle's TPU sets), read unpacked: give the folder that holds "
              "them, a TensorFlow Datasets set's (~/tensorflow_datasets/cifar10), or one of them")  # fmt: skip


def file_hint(path: Path) -> str:
    """What a --data file that is none of the forms most likely meant: a zstd tar, a RAR or 7z archive, the labels'
    CSV, an LMDB database, HDF5, an .npy, one image."""
    name = path.name.lower()
    if name.endswith((".zst", ".tzst")):
        return f" (a zstd-compressed tar: `zstd -d {path.name}` gives the .tar)"
    if name.endswith((".rar", ".7z")):  # (Kaggle and Google Drive shares come so)
        kind, unpack = ("RAR", "unrar x") if name.endswith(".rar") else ("7-Zip", "7z x")
        return f" (a {kind} archive, which is not read here: `{unpack} {path.name}` unpacks it; give the folder)"
    if name.endswith((".csv", ".tsv", ".jsonl")):
        return f" (a CSV of labels goes to --csv: --data {path.parent} --csv {path.name})"
    if extension(name) == ".array_record":  # (TensorFlow Datasets' other format; its TFRecord files are read)
        return kinds_hint(Counter([".array_record"]))
    if name.endswith(".mdb"):
        return LMDB
    if name.endswith((".h5", ".hdf5", ".he5")):  # Galaxy10 DECals, PatchCamelyon
        return (" (an HDF5 file, which fastacgan does not read: save its images and labels with h5py as an .npz, "
                "np.savez('set.npz', x_train=f['images'][:], y_train=f['labels'][:]), and give that)")  # fmt: skip
    if name.endswith((".pkl", ".pickle")):  # (Mini-ImageNet's mini-imagenet-cache-train.pkl)
        return (" (a Python pickle, which fastacgan does not load (unpickling a file can run code it holds): save "
                "its images and labels as an .npz, np.savez('set.npz', x_train=images, y_train=labels), and give "
                "that)")  # fmt: skip
    if name.endswith(".npy"):  # Quick, Draw!'s cat.npy: one class
        return (f" (an .npy file is read in its folder: --data {path.parent}, where each .npy holds a class's images, "
                "or x_train.npy and y_train.npy the images and their labels)")  # fmt: skip
    if is_image(path.name):
        where = f"{path.parent.parent}, if {path.parent.name}/ is one"
        return f" (one image: --data takes the folder of the class folders: {where})"
    return ""


def file_kinds(counts: Counter, most: int = 8) -> str:
    """Files counted by extension, the most common first: ".txt (3), .json (1)"."""
    return ", ".join(f"{ext or 'no extension'} ({n})" for ext, n in counts.most_common(most))


def others_note(data, others: Counter) -> str:
    """The line that says what a listing passed over (a phone's .heic photos beside its .jpg ones), "" if nothing."""
    if not others:
        return ""
    kinds = file_kinds(others)
    return (f"--data {data}: passed over {others.total()} file(s) of kinds it does not read as images: {kinds}"
            f"{' ...' if len(others) > 8 else ''}{kinds_hint(others)}")  # fmt: skip


def kinds_hint(others: Counter) -> str:
    """What to do with files that hold images, but not in a form read here: AVIF (a newer Pillow reads it), DICOM,
    NIfTI, MetaImage and NRRD (medical scans and volumes), HEIF (phone photos), SVG, Hugging Face's data files."""
    volumes = ("{}, which fastacgan does not read: save their slices as PNG first (SimpleITK's "
               "sitk.GetArrayFromImage(sitk.ReadImage(f)) gives a volume's array, slices first)")  # fmt: skip
    hints = {
        ".avif": "Pillow 11.3 or newer reads it, `pip install -U pillow`",
        ".dcm": "DICOM, which fastacgan does not read: save them as PNG first (pydicom's dcmread(f).pixel_array)",
        ".nii.gz": volumes.format("NIfTI volumes (MRI, CT)"),
        ".nii": volumes.format("NIfTI volumes (MRI, CT)"),
        ".mha": volumes.format("MetaImage volumes"),
        ".mhd": volumes.format("MetaImage volumes"),
        ".nrrd": volumes.format("NRRD volumes"),
        ".svg": "vector drawings, which fastacgan does not read: render them as PNG first, e.g. "
        "`magick mogrify -format png *.svg`, or `rsvg-convert` from librsvg",
        ".heic": "HEIF, as iPhones save photos, which Pillow does not read: convert them to JPEG first, e.g. "
        "`magick mogrify -format jpg *.heic`, or `heif-convert` from libheif",
        ".mdb": LMDB[2:-1],
        ".tfrecord": TF_RECORDS,
        ".array_record": "ArrayRecord files (TensorFlow Datasets' file_format='array_record'), which fastacgan does "
        "not read: prepare the set as TFRecord files (tfds.builder(name, file_format='tfrecord').download_and_prepare"
        "()) and give its folder",
        ".tfrec": TF_RECORDS,
    }
    said: dict[str, list[str]] = {}  # hint -> the extensions it is for (.nii.gz, .nii)
    for ext in (e for e in hints if e in others):
        said.setdefault(hints[ext], []).append(ext)
    return "".join(f" ({', '.join(exts)}: {hint})" for hint, exts in said.items())


def _kind(name: str) -> int:
    """1 where a name names a training split (trainLabels, Training_set), -1 a held-out one, else 0."""
    split = split_word(re.sub(r"([a-z])([A-Z])", r"\1_\2", name))
    return (split in TRAIN_SPLITS) - (split in TEST_SPLITS)


def rank_lists(folder: str, found: list[tuple[str, str]]) -> list[str]:
    """Of lists in a folder of images (and no class folders) or beside it, found as (file name, what to give back),
    those that may label its images, most likely first: a CSV named as the folder first (GTSRB's Test.csv for Test/),
    then one of its split (Training_set.csv for train/, Kaggle's trainLabels.csv), then the others; a .txt or .tsv
    list only where its name holds the folder's (a README or a licence is not a list); never a Kaggle submission's
    template (sample_submission.csv: the test images' IDs, each with the same placeholder) nor one named as the other
    split (trainLabels.csv for test/)."""
    stems = {n: Path(n).stem for n, _ in found}
    ok = {(stems[n].lower() != folder.lower(), _kind(stems[n]) != _kind(folder), key) for n, key in found
          if (n.lower().endswith((".csv", ".jsonl")) or folder.lower() in stems[n].lower())
          and "submission" not in n.lower() and _kind(stems[n]) * _kind(folder) >= 0}  # fmt: skip
    return list(dict.fromkeys(key for *_, key in sorted(ok)))


def labels_beside(root: Path) -> list[str]:
    """The lists that may label a folder of images and no class folders (rank_lists), each named as --csv finds it
    from the folder: the labels CSV beside them (ISIC 2020's train/ and train.csv; ISIC 2018's in a folder beside,
    ISIC2018_Task3_Training_GroundTruth/; a list named after the folder, MNIST-M's mnist_m_train_labels.txt), else
    a CSV of its split a folder further up (SIIM-ISIC's jpeg/train/ and train.csv: ../train.csv)."""
    found = [(p.name, p.name) for d in (root, root.parent) for x in ("*.csv", "*.jsonl", "*.txt", "*.tsv")
             for p in d.glob(x)]  # fmt: skip
    if ranked := rank_lists(root.name, found):
        return ranked
    words = lambda n: {w for w in re.split(r"[^a-z0-9]+", n.lower()) if len(w) >= 4}  # noqa: E731
    beside = [p for x in ("*/*.csv", "*/*.jsonl") for p in root.parent.glob(x)  # (a folder of its set's)
              if not hidden(p.parent.name) and words(p.parent.name) & words(root.name)]  # fmt: skip
    if ranked := rank_lists(root.name, [(p.name, f"{p.parent.name}/{p.name}") for p in beside]):
        return ranked
    up = [p for p in root.parent.parent.glob("*.csv") if _kind(p.stem) == _kind(root.name) != 0]  # (ISIC 2020's
    return rank_lists(root.name, [(p.name, f"../{p.name}") for p in up])  # jpeg/train/ two below train.csv)


def unsorted_hint(root: Path, loose: list[str], alone: bool = False) -> str:
    """What to do with a folder of images and no class folders: the labels beside them (labels_beside), or the
    classes their names begin with (Kaggle's Dogs vs. Cats: cat.0.jpg, dog.0.jpg); with `alone` (the folder given
    as --data), else how to read them as one class."""
    csvs = labels_beside(root)
    if csvs:
        return (
            f". If {'a list' if csvs[0].lower().endswith(('.txt', '.tsv')) else 'a CSV'} labels them, give it: "
            f"--data {root} --csv {csvs[0]}"
        )
    if found := class_heads(loose):
        heads, shown = found
        hint = (f". Their names begin with what look like classes, {shown}: put each class's images in a folder of "
                f"its own ({root}/{heads.most_common(1)[0][0]}/...)")  # fmt: skip
        if len(heads) > 20 or not all(re.fullmatch(r"[A-Za-z0-9]+", h) for h in heads):  # (cat_toy would take cat's)
            return hint
        return (f'{hint}, e.g.: cd {shlex.quote(str(root))} && for c in {" ".join(sorted(heads))}; do mkdir -p "$c" '
                '&& find . -maxdepth 1 -type f -name "$c[ ._-]*" -exec mv -t "$c" {} +; done')  # fmt: skip
    return one_class_hint(root) if alone else ""


def class_heads(loose: list[str]) -> tuple[Counter, str] | None:
    """What the names of images alone begin with, where that looks like their classes (cat.0.jpg, dog.0.jpg,
    `dog (2).jpg`; 2 to 200 heads, each of 2 images or more): (the heads counted, "cat (3), dog (3)"), else None."""
    heads = Counter(re.sub(r"[ ._-]*\(?\d+\)?$", "", Path(n).stem) for n in loose)
    if not (2 <= len(heads) <= 200 and min(heads.values()) >= 2):
        return None
    return heads, ", ".join(f"{h} ({n})" for h, n in heads.most_common(5)) + (" ..." if len(heads) > 5 else "")


ONE_CLASS = ". To train on them as one class (an unconditional GAN), give"  # (not said of held-out images)


def one_class_hint(root: Path) -> str:
    """How to train on a folder of images alone as one class (an unconditional GAN: anime faces, FFHQ): give a
    folder that holds it alone (its parent, where that holds no other folder; else one made with a link to it)."""
    try:
        alone = [p for p in root.parent.iterdir() if p.is_dir() and not hidden(p.name)] == [root]
    except OSError:
        alone = False
    if alone:
        return f"{ONE_CLASS} the folder that holds it: --data {root.parent}"
    one, target = shlex.quote(f"{root.name}_one_class"), shlex.quote(str(root.resolve()))
    return f"{ONE_CLASS} a folder that holds it alone, e.g. {one}: mkdir {one} && ln -s {target} {one}/"


def loose_note(data, names: list[str]) -> str:
    """The line that says which images an image folder or archive passed over for lying beside its class folders
    (a preview.jpg next to cat/ and dog/): in no class folder, they have no class."""
    shown = ", ".join(n.replace("\\", "/").rsplit("/", 1)[-1] for n in names[:3]) + (" ..." if len(names) > 3 else "")
    return (f"--data {data}: passed over {len(names)} image(s) beside the class folders ({shown}): an image's class "
            "is the folder it is in")  # fmt: skip


FEW_FOR_A_GAN = 5000  # fewer images than this: the start says what --diffaug is for


def data_notes(cat, native: int, size: int, balanced: bool = False, diffaug: str = "") -> list[str]:
    """The notes at a run's start on its Catalog: images enlarged 2x or more to the model (--preset isic128 on
    CIFAR-10), one class (an unconditional GAN), classes unbalanced 10 to 1 or more (HAM10000's nv 6,705 images to
    df's 115; G draws its classes evenly, as the reference AC-GANs do; not said where --balance-classes draws the
    real images evenly too), fewer than FEW_FOR_A_GAN images without --diffaug."""
    class_names, labels = cat.class_names, cat.labels
    notes, k = [], len(class_names)
    if size >= 2 * native:
        notes.append(f"note: the images are {native} pixels on their short side (the first one read) and are enlarged "
                     f"{size / native:.1f}x to the model's {size}x{size}: G learns the enlargement's blur; a smaller "
                     "--image-size (or --preset) trains nearer their own size")  # fmt: skip
    if k == 1:
        notes.append(f"note: one class ({class_names[0]}): the auxiliary classifier has nothing to tell apart, and "
                     "the run trains an unconditional GAN; an image folder's classes are its sub-folders")  # fmt: skip
    counts = np.bincount(labels, minlength=k)
    few, many = int(counts.argmin()), int(counts.argmax())
    if k > 1 and counts[many] >= 10 * max(counts[few], 1) and not balanced:
        notes.append(f"note: the classes are unbalanced, {class_names[few]} {counts[few]:,} images to "
                     f"{class_names[many]}'s {counts[many]:,}: G draws every class equally often, so D sees "
                     f"{len(labels) / k / max(counts[few], 1):.0f}x as many fakes of {class_names[few]} as real ones "
                     "(--balance-classes draws the real images evenly too; --classes leaves classes out)")  # fmt: skip
    if len(labels) < FEW_FOR_A_GAN and not parse_policy(diffaug):
        notes.append(f"note: {len(labels):,} images are few for a GAN: its D learns them by heart as the run goes on; "
                     "--diffaug all (DiffAugment) shows D each image, real or generated, transformed anew; "
                     "--init-from RUN starts G and D from a run on a larger set")  # fmt: skip
    return notes


MANY_CLASSES, FEW_IMAGES = 1000, 5  # more classes than a class-conditional GAN learns, of so few images


def class_warnings(data, class_names: list[str], labels: np.ndarray) -> list[str]:
    """What the class names say is likely wrong with the labels: lists of findings, each combination a class (NIH
    ChestX-ray14's `Atelectasis|Effusion`); names that differ only in case or spaces (Cat beside cat, `dog ` beside
    dog, as folders merged from two sources are named), read as different classes; a letter's cases are two
    classes (EMNIST's byclass: a and A); thousands of classes of a few images each (folders of a patient each)."""
    said = []
    counts = np.bincount(labels, minlength=len(class_names))
    if lists := [c for c in class_names if "|" in c and set(c.split("|")) & set(class_names)]:
        one = sorted((c for c in class_names if "|" not in c), key=lambda c: -counts[class_names.index(c)])
        said.append(f"--data {data}: its labels are lists ({lists[0]}): each combination is a class of its own "
                    f"({len(lists)} of the {len(class_names)} classes); --classes picks the ones to train on, e.g. "
                    f"--classes {','.join(one[:4])!r}")  # fmt: skip
    alike: dict[str, list[str]] = {}
    for c in (c for c in class_names if len(c.strip()) > 1):
        alike.setdefault(" ".join(c.split()).casefold(), []).append(c)
    if same := [" and ".join(map(repr, v)) for v in alike.values() if len(v) > 1]:
        said.append(f"--data {data}: classes {'; '.join(same[:3])}{' ...' if len(same) > 3 else ''} differ only in "
                    "case or spaces and are read as different classes; if each is one class, merge their folders "
                    "(or labels)")  # fmt: skip
    held = counts[counts > 0]  # (a set's fixed list of classes may name some that a part of it lacks)
    if len(held) >= MANY_CLASSES and (half := int(np.median(held))) <= FEW_IMAGES:
        said.append(f"--data {data}: {len(held):,} classes ({', '.join(class_names[:2])} ...), half of them of "
                    f"{half} image{'s' * (half != 1)} or fewer: an AC-GAN learns each class from its images; if these "
                    "are no classes (CheXpert's train/patient00001/: a folder a patient), give the labels with --csv "
                    "(and the column with --csv-label-col)")  # fmt: skip
    return said
