"""The MAT reader: what MATLAB's `save` (and scipy's `savemat`) writes in the version 5 format, compressed or not.
read_mat: numeric matrices by name, each read in the class it was saved as (MATLAB stores a double array of whole
numbers in the smallest integer type that holds them); read_mat(..., values=True): also text, cell arrays and struct
arrays (Stanford Cars' annotations, Stanford Dogs' lists). MATLAB 7.3 files are HDF5 and are refused by name.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .data import DataError

_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}  # data types
_MX = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}  # classes
_MI_MATRIX, _MI_COMPRESSED, _COMPLEX = 14, 15, 0x800


def _element(buf, pos: int, order: str) -> tuple[int, int, int, int]:
    """(type, size in bytes, where its data starts, where the next element starts) of the data element at pos.
    A small element (at most 4 bytes) keeps its size in the tag's upper 16 bits and its data in the tag's second
    word; the data of the others is padded to 8 bytes."""
    (word,) = struct.unpack_from(order + "I", buf, pos)
    if word >> 16:
        return word & 0xFFFF, word >> 16, pos + 4, pos + 8
    typ, size = struct.unpack_from(order + "II", buf, pos)
    return typ, size, pos + 8, pos + 8 + size + (-size % 8)


def _matrix(buf, order: str, where: str) -> tuple[str, np.ndarray | None]:
    """(name, array) of the miMATRIX element at the start of buf; the array is None for what is not a real
    numeric matrix (a cell, a struct, text, a sparse or complex matrix)."""
    typ, size, pos, _ = _element(buf, 0, order)
    if typ != _MI_MATRIX:
        raise DataError(f"{where}: a variable of data type {typ}, not a matrix: not a MATLAB 5 file as saved")
    _, _, at, pos = _element(buf, pos, order)  # array flags: the class in the low byte
    (flags,) = struct.unpack_from(order + "I", buf, at)
    typ, n, at, pos = _element(buf, pos, order)  # dimensions
    dims = struct.unpack_from(f"{order}{n // 4}i", buf, at)
    _, n, at, pos = _element(buf, pos, order)  # the name
    name = bytes(buf[at : at + n]).decode("ascii", "replace")
    cls = flags & 0xFF
    if cls not in _MX or flags & _COMPLEX:
        return name, None
    typ, n, at, _ = _element(buf, pos, order)  # the real part, stored as `typ`, read as its class
    if typ not in _MI:
        raise DataError(f"{where}: variable {name!r} is stored as data type {typ}, which MATLAB 5 files do not use")
    data = np.frombuffer(buf, order + _MI[typ], count=n // np.dtype(_MI[typ]).itemsize, offset=at)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{where}: variable {name!r} holds {data.size} values for its size {list(dims)}: damaged")
    return name, data.astype(_MX[cls], copy=False).reshape(dims, order="F")


_CELL, _STRUCT, _CHAR = 1, 2, 4  # the array classes of cell arrays, struct arrays and text
_TEXT = {1: "latin-1", 2: "latin-1", 3: "utf-16", 4: "utf-16", 16: "utf-8", 17: "utf-16", 18: "utf-32"}  # by data type


def _value(buf, order: str, where: str) -> tuple[str, object]:
    """(name, value) of the miMATRIX element at the start of buf: a real numeric matrix as _matrix reads it; text (a
    char array) as a str, or a list of its rows; a cell array as a list of its cells' values; a struct array as a
    list of dicts (field -> value); both in MATLAB's order (column by column). None for an empty element and for
    what is none of these (a sparse or complex matrix, an object)."""
    typ, size, pos, _ = _element(buf, 0, order)
    if typ != _MI_MATRIX:
        raise DataError(f"{where}: a variable of data type {typ}, not a matrix: not a MATLAB 5 file as saved")
    if size == 0:  # (an empty cell or field)
        return "", None
    _, _, at, pos = _element(buf, pos, order)  # array flags: the class in the low byte
    cls = struct.unpack_from(order + "I", buf, at)[0] & 0xFF
    if cls not in (_CELL, _STRUCT, _CHAR):
        return _matrix(buf, order, where)
    _, n, at, pos = _element(buf, pos, order)  # dimensions
    dims = struct.unpack_from(f"{order}{n // 4}i", buf, at)
    _, n, at, pos = _element(buf, pos, order)  # the name
    name, count = bytes(buf[at : at + n]).decode("ascii", "replace"), int(np.prod(dims))
    if cls == _CHAR:
        typ, n, at, _ = _element(buf, pos, order)
        codec = _TEXT.get(typ, "latin-1") + ("" if typ not in (3, 4, 17, 18) else "-le" if order == "<" else "-be")
        text = bytes(buf[at : at + n]).decode(codec, "replace")
        rows = dims[0] if len(dims) == 2 and len(text) == count else 1  # (stored column by column)
        lines = ["".join(text[i + rows * j] for j in range(count // rows)) for i in range(rows)] if rows > 1 else [text]
        return name, lines[0] if len(lines) == 1 else lines
    fields = [None]
    if cls == _STRUCT:
        _, _, at, pos = _element(buf, pos, order)  # the length of a field name (padded with NULs)
        width = struct.unpack_from(order + "i", buf, at)[0]
        _, n, at, pos = _element(buf, pos, order)
        raw = bytes(buf[at : at + n])
        fields = [raw[k : k + width].split(b"\0")[0].decode("ascii", "replace") for k in range(0, n, width)]
    if count > len(buf):  # (each element takes 8 bytes or more: damaged dimensions would loop for long)
        raise DataError(f"{where}: variable {name!r} has {count} elements in {len(buf)} bytes: damaged")
    items = []
    for _ in range(count):  # each cell, or each element's fields in turn
        row = {}
        for f in fields:
            nxt = _element(buf, pos, order)[3]
            row[f] = _value(buf[pos:nxt], order, where)[1]
            pos = nxt
        items.append(row if cls == _STRUCT else row[None])
    return name, items


def read_mat(path: Path, names: tuple[str, ...], values: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """The numeric matrices of a MATLAB 5 .mat file that are named in `names` (the others are not decompressed
    further than their names), as numpy arrays of their MATLAB shapes; and the names of the variables it read
    (all of the file's where one of `names` is missing). values: any variable as _value reads it (text, cell and
    struct arrays: Stanford Cars' annotations)."""
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise DataError(f"--data {path}: cannot read ({e})") from e
    return _read_mat(memoryview(blob), names, str(path), _value if values else _matrix)


def _read_mat(buf: memoryview, names: tuple[str, ...], where: str, decode=_matrix) -> tuple[dict, list[str]]:
    head = bytes(buf[:128])
    if head.startswith(b"MATLAB 7.3"):
        raise DataError(f"--data {where}: a MATLAB 7.3 (HDF5) file, which is not read here; in MATLAB, save it again "
                        "with save(..., '-v7')")  # fmt: skip
    if len(head) < 128 or not head.startswith(b"MATLAB") or head[126:128] not in (b"IM", b"MI"):
        raise DataError(f"--data {where}: not a MATLAB 5 .mat file (its first bytes: {head[:20]!r})")
    order = "<" if head[126:128] == b"IM" else ">"
    out, seen, pos = {}, [], 128
    try:
        while pos + 8 <= len(buf) and len(out) < len(names):
            typ, size, start, _ = _element(buf, pos, order)
            body = buf[start : start + size]
            if typ == _MI_COMPRESSED:  # its tag, flags, dimensions and name come first: 256 bytes hold them
                name = _matrix_name(zlib.decompressobj().decompress(body[:65536], 256), order)  # (no copy of the rest)
                if name in names:
                    body = memoryview(zlib.decompress(body))
            else:
                body = buf[pos : start + size]
                name = _matrix_name(body, order)
            seen.append(name)
            if name in names:
                name, array = decode(body, order, where)
                if array is None:
                    what = "a real numeric matrix" if decode is _matrix else "a matrix, text, a cell or struct array"
                    raise DataError(f"--data {where}: variable {name!r} is not {what}")
                out[name] = array
            pos = start + size + (0 if typ == _MI_COMPRESSED else -size % 8)
    except DataError:
        raise
    except (struct.error, zlib.error, ValueError) as e:  # ValueError: numpy, on data cut short
        raise DataError(f"--data {where}: cut short or damaged ({type(e).__name__}: {e})") from e
    return out, seen


def _matrix_name(buf, order: str) -> str:
    """The name of the miMATRIX element at the start of buf (its tag, flags, dimensions, then the name); "" for an
    element of another type."""
    typ, _, pos, _ = _element(buf, 0, order)
    if typ != _MI_MATRIX:
        return ""
    for _ in range(2):  # past the flags and the dimensions
        pos = _element(buf, pos, order)[3]
    _, n, at, _ = _element(buf, pos, order)
    return bytes(buf[at : at + n]).decode("ascii", "replace")
