"""Compile every Triton kernel specialisation that fastacgan launches for real NVIDIA GPUs, on a machine without one.

The interpreter (TRITON_INTERPRET=1) runs the kernels' Python on CPU tensors, but it accepts code that the
compiler rejects (pointer selects, loop-carried types, scalar branches on atomics) and says nothing about
registers or spills. This script drives the real launchers (`_fwd_impl`, `_power_impl`, ...) on CPU tensors
of the shapes and dtypes the trainer uses, captures each launch instead of running it, and compiles it with
Triton's NVIDIA backend down to a cubin (the bundled ptxas), as the JIT would on the GPU; ptxas's own -v
log gives registers and spill bytes. Triton's kernel cache is a fresh folder unless TRITON_CACHE_DIR says
otherwise, so every kernel is compiled (a cached one would bring no ptxas log). It also runs torch.compile's
own analysis of which kernel arguments a kernel writes (Inductor copies what it believes written before a
launch, so a weight wrongly seen as written would be copied every step).

    python tests/aot_compile.py [--arch 90 --arch 80] [--json OUT]

It must run without TRITON_INTERPRET (tests/test_kernel_aot.py starts it in a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("aot_compile.py compiles for a GPU: run it without TRITON_INTERPRET")
if "TRITON_CACHE_DIR" not in os.environ:  # before triton is imported
    _cache = tempfile.TemporaryDirectory(prefix="aot-triton-cache-")
    os.environ["TRITON_CACHE_DIR"] = _cache.name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import create_function_from_signature  # noqa: E402

AL = importlib.import_module("kernels.acgan_loss")
SN = importlib.import_module("kernels.spectral_norm")


class _Capture:
    """Stands in for torch.library.wrap_triton: records kernel[grid](*args, **kwargs) instead of launching."""

    launches: list = []

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((self.kernel, grid, args, kwargs))


def _acgan_cases():
    """(label, thunk) for the loss kernels: the trainer's batch sizes (one program / several with the counter
    reduction), K from 1 to 5000, fp32/bf16/fp16 logits; per-sample targets on two of the shapes."""
    cases = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for b, k, per_sample in ((64, 10, False), (1024, 10, False), (1024, 10, True), (257, 1000, False),
                                 (3, 5000, True), (8, 1, False)):  # fmt: skip
            src = torch.randn(b, dtype=dtype)
            cls = torch.randn(b, k, dtype=dtype)
            lab = torch.randint(0, k, (b,))
            tgt = torch.full((b,), 0.9) if per_sample else None
            lse = torch.empty(2, b)
            name = f"B={b} K={k} {str(dtype)[6:]} target={'tensor' if per_sample else 'scalar'}"
            cases.append((f"acgan fwd {name}", lambda s=src, c=cls, y=lab, t=tgt: AL._fwd_impl(s, c, y, t, 1.0, 1.0)))
            cases.append((f"acgan bwd {name}", lambda s=src, c=cls, y=lab, t=tgt, e=lse:
                          AL._bwd_impl(torch.ones(()), s, c, y, t, 1.0, 1.0, e)))  # fmt: skip
    return cases


def _sn_weights(dtype, channels_last: bool):
    """The 7 SN layers of the isic128 discriminator and a small Linear: one launch whose rows all lie in memory
    in one block, 16-byte aligned (the kernels' DENSE form, with vector loads); then a ConvTranspose with dim=1
    and an odd-sized Linear: a second launch, addressed through strides."""
    shapes = [((64, 3, 4, 4), 0), ((128, 64, 4, 4), 0), ((256, 128, 4, 4), 0), ((512, 256, 4, 4), 0),
              ((512, 512, 4, 4), 0), ((1, 8192), 0), ((10, 8192), 0), ((16, 64), 0),
              ((256, 128, 4, 4), 1), ((7, 5), 0)]  # fmt: skip
    ws, dims = [], []
    for shape, dim in shapes:
        w = torch.randn(shape, dtype=dtype)
        if channels_last and w.ndim == 4:
            w = w.to(memory_format=torch.channels_last)
        ws.append(w)
        dims.append(dim)
    return ws, dims


def _sn_cases():
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        for cl in (False, True):
            ws, dims = _sn_weights(dtype, cl)
            shapes = [SN.weight_to_matrix(w, d).shape for w, d in zip(ws, dims)]
            us = [torch.randn(h) for h, _ in shapes]
            vs = [torch.randn(w) for _, w in shapes]
            name = f"{len(ws)} layers {str(dtype)[6:]}{' channels-last' if cl else ''}"
            for n_iter in (0, 1, 5):
                power = lambda ws=ws, us=us, vs=vs, dims=dims, n=n_iter: SN._power_impl(ws, us, vs, dims, n, 1e-12)
                cases.append((f"sn power n_iter={n_iter} {name}", power))
            snap = torch.empty(len(ws), max(h for h, _ in shapes) + max(w for _, w in shapes))  # as _power_impl
            grad = lambda ws=ws, dims=dims, s=snap: SN._sigma_grad_impl(torch.ones(len(ws)), s, ws, dims)
            cases.append((f"sn grad {name}", grad))
            # W / sigma in the weights' dtype and in bf16 (the autocast dtype), and its backward from gradients
            # of that dtype
            for out in {dtype, torch.bfloat16}:
                norm = lambda ws=ws, us=us, vs=vs, dims=dims, o=out: SN._normalize_impl(ws, us, vs, dims, 1, 1e-12, o)
                cases.append((f"sn normalize to {str(out)[6:]} {name}", norm))
                gys = [torch.empty_like(w, dtype=out) for w in ws]  # autograd's: the normalised weight's layout
                ngrad = lambda ws=ws, dims=dims, s=snap, g=gys: SN._normalize_grad_impl(g, torch.ones(len(ws)), s,
                                                                                        ws, dims)  # fmt: skip
                cases.append((f"sn normalize grad from {str(out)[6:]} {name}", ngrad))
    return cases


def _compile(src, target, options) -> tuple:
    """triton.compile, with the `ptxas -v` log it prints under dump_ptxas_log -> (kernel, registers, spill bytes)."""
    triton.knobs.nvidia.dump_ptxas_log = True
    with contextlib.redirect_stdout(io.StringIO()) as log:
        ck = triton.compile(src, target=target, options=options)
    text = log.getvalue()
    regs = re.search(r"Used (\d+) registers", text)
    spill = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", text)]
    return ck, int(regs.group(1)) if regs else None, sum(spill)


class _TargetOnly:
    """Stands in for triton's active driver where only the compile target is asked for (no GPU here)."""

    def __init__(self, cap: int):
        self.cap = cap

    def get_current_target(self):
        return GPUTarget("cuda", self.cap, 32)


def written_args(launches) -> dict[str, list[str]]:
    """kernel name -> the arguments torch.compile's analysis finds written by any of its launches (one analysis
    per set of constexpr values): identify_accessed_tensors in torch 2.13, identify_mutated_tensors in 2.11 (the
    GPU machines' torch)."""
    from torch._higher_order_ops import triton_kernel_wrap as wrap
    from triton.runtime.driver import driver

    def written(kernel, named):
        if hasattr(wrap, "identify_accessed_tensors"):
            return [d.name for d in wrap.identify_accessed_tensors(kernel, named, {}).read_writes.writes]
        return wrap.identify_mutated_tensors(kernel, named, {})

    out, seen = {}, set()
    driver.set_active(_TargetOnly(90))  # for the rest of this process: there is no GPU driver to go back to
    for kernel, _, args, kwargs in launches:
        key = (kernel.fn.__name__, repr(sorted(kwargs.items())))
        if key not in seen:
            seen.add(key)
            named = {**dict(zip(kernel.arg_names, args)), **kwargs}
            out.setdefault(kernel.fn.__name__, set()).update(written(kernel, named))
    return {name: sorted(w) for name, w in out.items()}


all_launches: list = []


def compile_all(archs: list[int], only: list[str] | None = None) -> list[dict]:
    """One entry per distinct specialisation (kernel, argument types and divisibility, constexprs) and arch;
    `only`: just these kernels (by name)."""
    torch.library.wrap_triton = _Capture
    results, seen = [], set()
    for label, thunk in _acgan_cases() + _sn_cases():
        _Capture.launches.clear()
        thunk()
        all_launches.extend(_Capture.launches)
        for kernel, grid, args, kwargs in list(_Capture.launches):
            if only and kernel.fn.__name__ not in only:
                continue
            for cap in archs:
                target = GPUTarget("cuda", cap, 32)
                backend = make_backend(target)
                binder = create_function_from_signature(kernel.signature, kernel.params, backend)
                bound, spec, opts = binder(*args, **kwargs)
                opts, sig, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, spec, opts)
                # the JIT types a Python float argument fp32, Inductor (a kernel inside torch.compile) fp64:
                # both must compile (an fp64 scalar once turned a loop-carried fp32 accumulator into fp64)
                sig64 = {k: "fp64" if t == "fp32" else t for k, t in sig.items()}
                for how, sg in [("jit", sig)] + [("inductor", sig64)] * (sig64 != sig):
                    key = (kernel.fn.__name__, cap, repr(sg), repr(constexprs), repr(attrs))
                    if key in seen:
                        continue
                    seen.add(key)
                    results.append(_compile_one(label, how, kernel, grid, kwargs, target, opts, sg, constexprs,
                                                attrs))  # fmt: skip
    return results


def _compile_one(label, how, kernel, grid, kwargs, target, opts, sig, constexprs, attrs) -> dict:
    t0 = time.perf_counter()
    ck, regs, spill = _compile(ASTSource(kernel, sig, constexprs, attrs), target, opts.__dict__)
    secs = time.perf_counter() - t0
    cap = target.arch
    arch = f"sm_{cap}{'a' if cap >= 90 else ''}"
    ptx = ck.asm["ptx"]
    return {
        "case": label, "scalars": how, "kernel": kernel.fn.__name__, "arch": arch, "grid": list(grid),
        "seconds": round(secs, 2),
        "cubin_bytes": len(ck.asm["cubin"]), "shared_bytes": ck.metadata.shared,
        "num_warps": ck.metadata.num_warps,
        "atomics": sorted(set(re.findall(r"\batom\.[\w.]+", ptx))),
        "stores": sorted(set(re.findall(r"\bst\.global(?:\.v\d)?\.(?:b|f|u|s)\d+", ptx))),
        "volatile_loads": len(re.findall(r"\bld\.volatile\.global", ptx)),
        "loads": sorted(set(re.findall(r"\bld\.global(?:\.[\w:]+)*?\.(?:v\d\.)?(?:b|f|u|s)\d+", ptx))),
        "dense": kwargs.get("DENSE"),
        "to_half": sorted(set(re.findall(r"\bcvt\.rn\.(?:bf16|f16)(?:x2)?\.f32", ptx))),
        "registers": regs, "spill_bytes": spill,
    }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 90 and 80)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--markdown", action="store_true", help="end with a per-kernel summary table (RESULTS.md)")
    ap.add_argument("--kernel", action="append", help="compile only this kernel (repeatable)")
    args = ap.parse_args(argv)
    results = compile_all(args.arch or [90, 80], args.kernel)
    writes = written_args(all_launches)
    for r in results:
        print(f"{r['arch']:7} {r['kernel']:22} {r['case']:46} regs {r['registers']!s:>4} "
              f"spill {r['spill_bytes']:>5} B  smem {r['shared_bytes']:>6} B  {r['seconds']:5.2f} s")  # fmt: skip
    for name, w in writes.items():
        print(f"{name} writes {', '.join(w)}")
    if args.json:
        args.json.write_text(json.dumps({"compiled": results, "writes": writes}, indent=1))
    if args.markdown:
        print(markdown(results))
    return 0


def markdown(results: list[dict]) -> str:
    """Per kernel and arch: specialisations, registers (min-max), spill bytes, shared memory (max)."""
    out = [f"triton {triton.__version__}", "",
           "| kernel | arch | specialisations | registers (min-max) | spill bytes (max) | shared memory (max) |",
           "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    keys = sorted({(r["kernel"], r["arch"]) for r in results}, key=lambda k: (k[0], k[1] != "sm_90a"))
    for kernel, arch in keys:
        rs = [r for r in results if (r["kernel"], r["arch"]) == (kernel, arch)]
        regs = [r["registers"] for r in rs if r["registers"] is not None]
        out.append(f"| `{kernel}` | {arch} | {len(rs)} | {min(regs, default=0)}-{max(regs, default=0)} | "
                   f"{max(r['spill_bytes'] for r in rs)} | {max(r['shared_bytes'] for r in rs)} B |")  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
