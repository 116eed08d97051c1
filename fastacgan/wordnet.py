"""The words of classes named by WordNet ids (ImageNet and its subsets: n01440764 is a tench), from the list an
ImageNet download keeps beside its images: Tiny ImageNet's `words.txt` (`n01440764<TAB>tench, Tinca tinca`),
Kaggle's `LOC_synset_mapping.txt` and Caffe's `synset_words.txt` (`n01440764 tench, Tinca tinca`), the devkit's
`map_clsloc.txt` (`n01440764 449 tench`), ImageNet-100's `Labels.json` and Keras' `imagenet_class_index.json`. A
class is shown with the first of its words, and `fastacgan.sample --label tench` picks it; its name stays the id.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

WNID = re.compile(r"n\d{8}")
LISTS = ("words.txt", "LOC_synset_mapping.txt", "synset_words.txt", "map_clsloc.txt", "Labels.json",
         "imagenet_class_index.json")  # fmt: skip


def _words(path: Path) -> dict[str, str]:
    """id -> its first word, from one of LISTS."""
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        pairs = [v if isinstance(v, list) else (k, v) for k, v in data.items()]  # (Keras: "0": [id, word])
    else:
        pairs = [line.split(None, 1) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        pairs = [(p[0], re.sub(r"^\d+\s+", "", p[1]).replace("_", " ")) for p in pairs if len(p) == 2]  # (map_clsloc)
    return {str(k): str(v).split(",")[0].strip() for k, v in pairs if WNID.fullmatch(str(k))}


def class_words(data: Path, class_names: list[str]) -> list[str] | None:
    """The first word of each class, where every class is named by a WordNet id and a list in --data's folder (or a
    folder up to four above it) gives them all; else None."""
    if not class_names or not all(WNID.fullmatch(c) for c in class_names):
        return None
    here = data if data.is_dir() else data.parent
    for d in (here, *list(here.parents)[:4]):
        for name in LISTS:
            try:
                words = _words(d / name) if (d / name).is_file() else {}
            except (OSError, ValueError, AttributeError, IndexError):  # (a file of that name in another form)
                continue
            if words and all(c in words for c in class_names):
                return [words[c] for c in class_names]
    return None
