"""The classes a user names: --classes (names, START:END ranges, a class named by synonyms by its first) and
`sample --label`; a name typed in another Unicode form or a letter off is found or named."""

from __future__ import annotations

import difflib
import unicodedata

from .data import DataError


def picked_classes(classes: str, names: list[str]) -> list[str]:
    """The data's classes (names) that --classes names, in its order."""
    return known_classes(wanted_classes(classes, names), names)


def wanted_classes(classes: str, names: list[str]) -> list[str]:
    """--classes: comma-separated class names, or START:END ranges of positions in the sorted class list (END
    excluded: the ImageNet ACGAN's classes_idx=(10, 20) is 10:20); a class named like a range is taken by name."""
    wanted = []
    for c in (c.strip() for c in classes.split(",")):
        a, colon, b = c.partition(":")
        if colon and c not in names and a.isdigit() and b.isdigit():
            if not int(a) < int(b) <= len(names):
                raise DataError(f"--classes {c}: a range START:END needs START < END <= {len(names)} (the classes)")
            wanted += names[int(a) : int(b)]
        elif c:
            wanted.append(c)
    if not wanted:  # (`--classes ,`: "no images found" followed, as if the data had none)
        raise DataError(f"--classes {classes!r} names no class (comma-separated names, or START:END)")
    if len(set(wanted)) != len(wanted):
        raise DataError(f"--classes {classes}: a class is named twice")
    return wanted


def known_classes(wanted: list[str], names: list[str]) -> list[str]:
    """The data's names of the classes --classes names: a name typed `café` (composed, NFC) is the class folder
    that macOS named decomposed (NFD), and the other way round; a class named by synonyms, by its first."""
    from .words import first_name  # (`--classes tench` for Hugging Face's ImageNet's `tench, Tinca tinca`)

    found = [c if c in names else same_text(c, names) or first_name(c, names) for c in wanted]
    unknown = [c for c, f in zip(wanted, found) if f is None]
    if unknown:
        shown = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
        hint = near_misses(unknown, names)
        raise DataError(f"--classes: {', '.join(unknown)} not in the data (classes: {shown}){hint}")
    return found


def near_misses(typed: list[str], names: list[str]) -> str:
    """The end of an error line naming the classes close to what was typed (a letter off, another case): "; did you
    mean X?", or "" where none is."""
    close = [m for t in typed for m in difflib.get_close_matches(t, names, n=2, cutoff=0.8) if m != t]
    close += [n for t in typed for n in names if n.lower() == t.lower() and n != t]
    return f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""


def same_text(name: str, names: list[str]) -> str | None:
    """The one of `names` that is `name` in another Unicode form (NFC / NFD), or None."""
    form = unicodedata.normalize("NFC", name)
    return next((n for n in names if unicodedata.normalize("NFC", n) == form), None)
