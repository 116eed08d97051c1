"""The words of classes named by ids, from a list the download keeps beside its images:
- WordNet ids (ImageNet and its subsets: n01440764 is a tench): Tiny ImageNet's `words.txt` (`n01440764<TAB>tench,
  Tinca tinca`), Kaggle's `LOC_synset_mapping.txt` and Caffe's `synset_words.txt` (`n01440764 tench, Tinca
  tinca`), the devkit's `map_clsloc.txt` (`n01440764 449 tench`), ImageNet-100's `Labels.json`, Keras'
  `imagenet_class_index.json` and torchvision's ImageNet's `meta.bin` (a torch.save of {wnid: its names});
- WordNet ids with their words (Stanford Dogs' `Images/n02085620-Chihuahua/`): the words, no list needed;
- numbers (Udacity's flowers, `train/1/` ... `train/102/`; Cassava's labels 0-4): a JSON object of a name for each,
  named as such a list (`cat_to_name.json`, `label_num_to_disease_map.json`).
A class is shown with the first of its words, and `fastacgan.sample --label tench` picks it; its name stays the id.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

WNID = re.compile(r"n\d{8}")
WNID_NAMED = re.compile(r"n\d{8}-(.+)")  # Stanford Dogs' Images/n02085620-Chihuahua/: the id and its word
LISTS = ("words.txt", "LOC_synset_mapping.txt", "synset_words.txt", "map_clsloc.txt", "Labels.json",
         "imagenet_class_index.json", "meta.bin")  # fmt: skip
NAMED = re.compile(r".*(name|label|class|map).*\.json", re.I)  # a JSON of numbers' names: cat_to_name.json


def _words(path: Path) -> dict[str, str]:
    """id -> its first word, from one of LISTS or a JSON object of names."""
    if path.suffix == ".bin":  # torchvision's ImageNet: torch.save((wnid -> its names, the val images' wnids))
        import torch

        return {str(k): str(v[0]) for k, v in torch.load(path, weights_only=True)[0].items() if v}
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        pairs = [v if isinstance(v, list) else (k, v) for k, v in data.items()]  # (Keras: "0": [id, word])
    else:
        pairs = [line.split(None, 1) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        pairs = [(p[0], re.sub(r"^\d+\s+", "", p[1]).replace("_", " ")) for p in pairs if len(p) == 2]  # (map_clsloc)
    return {str(k): str(v).split(",")[0].strip() for k, v in pairs if isinstance(v, str) and str(v).strip()}


def class_words(data: str | Path, class_names: list[str]) -> list[str] | None:
    """The first word of each class, where every class is named by a WordNet id, or by a number, and a list in
    --data's folder (or a folder up to four above it) gives them all, or by an id and its word; else None (the
    built-in digits: None)."""
    if class_names and all(m := [WNID_NAMED.fullmatch(c) for c in class_names]):  # (Stanford Dogs' own folders)
        return [x[1].replace("_", " ") for x in m]
    ids = bool(class_names) and all(WNID.fullmatch(c) for c in class_names)
    if str(data).startswith("builtin:") or not ids and not (class_names and all(c.isdigit() for c in class_names)):
        return None
    data = Path(data).expanduser()
    here = data if data.is_dir() else data.parent
    for d in (here, *list(here.parents)[:4]):
        try:
            found = [d / n for n in LISTS] if ids else sorted(p for p in d.glob("*.json") if NAMED.fullmatch(p.name))
            found = [p for p in found if p.is_file() and p.stat().st_size < 4 << 20]
        except OSError:  # (a folder above that this user may not list)
            continue
        for path in found:
            try:
                words = _words(path)
            except (OSError, ValueError, AttributeError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError):
                continue  # (a file of that name in another form)
            if all(c in words for c in class_names):
                return [words[c] for c in class_names]
    return None


def first_names(names: list[str]) -> list[str] | None:
    """Each class's first name, where classes are named by their synonyms (Hugging Face's ImageNet: `tench, Tinca
    tinca` is tench); else None."""
    return [n.split(",")[0].strip() for n in names] if any(", " in n for n in names) else None


def first_name(name: str, names: list[str]) -> str | None:
    """The one class of `names` named by synonyms whose first is `name`, in any case; None where none is, or two
    are."""
    heads = first_names(names) or []
    hits = [n for n, h in zip(names, heads) if ", " in n and h.casefold() == name.strip().casefold()]
    return hits[0] if len(hits) == 1 else None
