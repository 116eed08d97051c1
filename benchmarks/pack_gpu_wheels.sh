#!/usr/bin/env bash
# Repack the wheels that ../shared/tools/gpu-wheels.sh left in .gpu-wheels/ (a plain tar of deflated wheels, in
# 48 MiB parts) into fewer, smaller parts for benchmarks/gpu_session.sh: each wheel rewritten uncompressed (still a
# valid wheel), the lot as one xz-compressed tar (177 MB instead of 256 on 2026-11-23, ~3 min on 2 cores), cut into
# part-aa (sized to travel with .data in one call) and parts just under a call's 64 MiB.
#   usage: bash benchmarks/pack_gpu_wheels.sh [DIR]        (DIR defaults to .gpu-wheels)
set -euo pipefail
dir=${1:-.gpu-wheels}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/plain" "$work/stored"
cat "$dir"/part-* | tar -x -C "$work/plain"
python3 - "$work/plain" "$work/stored" <<'PY'
import pathlib, sys, zipfile
src, dst = map(pathlib.Path, sys.argv[1:])
for wheel in sorted(src.glob("*.whl")):
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(dst / wheel.name, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info), compress_type=zipfile.ZIP_STORED)
PY
tar -C "$work/stored" -cf - . | xz -9 -T0 >"$work/all.tar.xz"
rm -f "$dir"/part-*
python3 - "$work/all.tar.xz" "$dir" <<'PY'
import pathlib, sys
blob = pathlib.Path(sys.argv[1]).read_bytes()
out = pathlib.Path(sys.argv[2])
data = sum(f.stat().st_size for f in pathlib.Path(".data").rglob("*") if f.is_file()) if pathlib.Path(".data").is_dir() else 0
cap = 64 * 2**20 - 2**20  # a call's 64 MiB, less 1 MiB for the working tree
sizes = [cap - data]
while sum(sizes) < len(blob):
    sizes.append(cap)
at = 0
for i, n in enumerate(sizes):
    name = out / f"part-a{chr(ord('a') + i)}"
    name.write_bytes(blob[at : at + n])
    at += n
    print(name, name.stat().st_size)
PY
