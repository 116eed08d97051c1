"""torch.compile of the training step with the fused Triton kernels in it, checked on a machine without a GPU.

On a GPU the compiled step traces the fused ops: dynamo records the `torch.library.triton_op`s, AOTAutograd
functionalizes their kernels (every argument a kernel writes becomes a copy, written back after the launch)
and differentiates through them. The kernel tests cannot see that part: under TRITON_INTERPRET the kernels
are interpreted functions, which torch.compile cannot trace. This script keeps them as real `triton.jit`
kernels, so dynamo and AOTAutograd trace them exactly as they would for a GPU, and runs each kernel launch that
reaches Triton through Triton's interpreter on the CPU tensors. Torch's analysis of which arguments a kernel
writes asks the driver for a GPU target; a stand-in names sm_90 (as tests/aot_compile.py does), and a failed
analysis (which torch answers by treating every argument as written) is reported.

Two backends: `aot_eager` (all of torch.compile but code generation: the functionalized graphs run op by op)
and `inductor` (Inductor's own code for the rest of the graph is C++ on a CPU, Triton on a GPU, but the
handling of the fused kernels, which arguments it copies, reuses or writes in place, and the launch code, is
the same). For Inductor, two things that only happen because the tensors are on the CPU are undone: it loads
user kernels for the interpreter only with TRITON_INTERPRET set, and then cannot launch them with a fixed
grid; and it passes 0-d CPU tensors (on a GPU: CUDA tensors, e.g. the loss gradient) to Triton by value.

It forces the fused paths on CPU tensors and reports, as JSON, for
- `step`, `step_bf16`, `step_fp16`: a few ACGANStep training steps (SN discriminator, channels-last; fp32,
  bf16 autocast, fp16 autocast with gradient scalers), eager with the PyTorch references, eager with the fused
  kernels, compiled (aot_eager) with them;
- `group`: a compiled (fullgraph) forward and backward through 11 spectral-norm layers of four kinds (two
  launch groups), then their weights in eval mode, against the same eagerly;
- `step_inductor`, `group_inductor`: the fp32 cases compiled with Inductor;
how far apart the results end up (every parameter, buffer and gradient), the graphs and graph breaks, the ops
in the aot_eager graphs that make the host wait for the device (`host_syncs`: a value read on the host, a shape
that depends on the data; none may be in a step), the Triton kernels the aot_eager forward and backward graphs
launch (`kernels`), and `analysis_warnings`: what torch's kernel analysis logged.

    python tests/compiled_fused.py [--steps 3] [--json OUT]

It must run without TRITON_INTERPRET (tests/test_compiled_fused.py starts it in a subprocess). On a GPU the
same cases run in the test itself, on CUDA tensors with Inductor and CUDA graphs (`run_step`, `run_group`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch._dynamo  # noqa: E402
import triton_compat  # noqa: E402 - beside this file
from torch import nn  # noqa: E402


def interpret_launches() -> None:
    """Launch every triton.jit kernel through the interpreter (the kernels stay JITFunctions for tracing); the
    fused ops' entry points, which refuse CPU tensors unless their kernels are interpreted ones, take them."""
    import triton.runtime.interpreter as interp

    for name in ("acgan_loss", "spectral_norm_fused"):
        importlib.import_module(f"fastacgan.kernels.{name}").check_device = lambda *a: None
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver
    from triton.runtime.jit import JITFunction

    interpreted, nested = {}, []
    patch_lang = interp._patch_lang

    class KernelScope:  # what a grid launch patches; the device calls' patches are undone first, innermost first
        def __init__(self, fn):
            self.scope = patch_lang(fn)

        def restore(self):
            while nested:
                nested.pop().restore()
            self.scope.restore()

    def as_interpreted(kernel):  # keyed by id: a JITFunction's hash compiles it
        if id(kernel) not in interpreted:
            interpreted[id(kernel)] = interp.InterpretedFunction(kernel.fn)
        return interpreted[id(kernel)]

    def run(self, *args, grid, warmup, **kwargs):  # kernel[grid](...)
        return as_interpreted(self).run(*args, grid=grid, warmup=warmup, **kwargs)

    def call(self, *args, **kwargs):  # a @triton.jit helper (ours, or triton.language's) called from a kernel
        nested.append(patch_lang(self.fn))
        return as_interpreted(self).rewrite()(*args, **kwargs)

    class TargetOnly:  # torch's written-argument analysis compiles the kernel to TTIR for this target
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

    interp._patch_lang = KernelScope
    JITFunction.run, JITFunction.__call__ = run, call
    driver.set_active(TargetOnly())


@contextlib.contextmanager
def inductor_interpreted():
    """Inside: Inductor's generated code launches the fused kernels through the interpreter, as on a GPU."""
    from torch._inductor.graph import GraphLowering
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner

    run, unspec = CachingAutotuner.run, GraphLowering.is_unspec_arg

    def fixed_grid_run(self, *args, stream=None, **kwargs):
        if not (self.triton_interpret and self.inductor_meta.get("grid_type") == "FixedGrid"):
            return run(self, *args, stream=stream, **kwargs)
        n = len(self.inductor_meta["extra_launcher_args"])  # the grid, after the kernel's own arguments
        # the kernel's constexpr arguments, not among `args`: torch 2.13 names them in inductor_meta; 2.11 does not
        # (they are the parameters after those passed, each kernel's last)
        rest = self.fn.arg_names[len(args) - n :]
        consts = {k: self.triton_meta["constants"][k] for k in self.inductor_meta.get("declared_constexpr_names", rest)}
        return self.fn[tuple(args[-n:])](*args[:-n], **consts)

    os.environ["TRITON_INTERPRET"] = "1"  # read when Inductor loads a kernel, not by the kernels already made
    CachingAutotuner.run, GraphLowering.is_unspec_arg = fixed_grid_run, lambda self, name: False
    try:
        yield
    finally:
        CachingAutotuner.run, GraphLowering.is_unspec_arg = run, unspec
        del os.environ["TRITON_INTERPRET"]


class AnalysisWarnings(logging.Handler):
    """Collects what torch's Triton kernel analysis logs (a failure there means: every argument treated as
    written, copied before each launch and written back after)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        logging.getLogger("torch._dynamo").addHandler(self)  # the logger that module writes to

    def emit(self, record):
        if record.pathname.endswith("triton_kernel_wrap.py"):
            self.messages.append(record.getMessage()[:300])


# ops that read a device value on the host
HOST_SYNC_OPS = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.equal", "aten.nonzero")


def recording_aot_eager(syncs: list, kernels: dict | None = None):
    """aot_eager that lists into `syncs` every op of the forward and backward graphs that makes the host wait
    for the device: reading a value (.item(), a tensor as a bool) or a shape that depends on the data; and into
    `kernels` ("forward", "backward": sets) the names of the Triton kernels each graph launches (a backward that
    traced the reference's ops instead of the fused kernels would be slower, with the same numbers)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    from torch._higher_order_ops.triton_kernel_wrap import kernel_side_table
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols
    from torch.utils._pytree import tree_leaves

    kernels = {"forward": set(), "backward": set()} if kernels is None else kernels

    def data_dependent(val) -> bool:  # a node's value (a kernel's: a dict of tensors) has a data-dependent shape
        sym = (torch.Tensor, torch.SymInt, torch.SymFloat, torch.SymBool)
        return any(free_unbacked_symbols(v) for v in tree_leaves(val) if isinstance(v, sym))

    def record(phase: str):
        def compiler(gm, example_inputs):
            for n in gm.graph.nodes:
                if n.op != "call_function":
                    continue
                if str(n.target).startswith(HOST_SYNC_OPS) or data_dependent(n.meta.get("val")):
                    syncs.append(str(n.target))
                if "kernel_idx" in n.kwargs:  # a triton_kernel_wrapper_{mutation,functional} node
                    kernel = kernel_side_table.get_kernel(n.kwargs["kernel_idx"])
                    kernels[phase].add(getattr(kernel, "fn", kernel).__name__)
            return make_boxed_func(gm.forward)

        return compiler

    return aot_autograd(fw_compiler=record("forward"), bw_compiler=record("backward"))


SN = importlib.import_module("fastacgan.kernels.spectral_norm")
step_mod = importlib.import_module("fastacgan.step")


@contextlib.contextmanager
def use_fused(on: bool, loss: bool | None = None):
    """Inside: the fused kernels (on, CPU tensors too) or the PyTorch references (off) for spectral norm, and
    for the loss of the steps built inside (`loss`, default `on`)."""
    from fastacgan.kernels import acgan_loss_fused, acgan_loss_reference

    saved = SN._use_fused, step_mod.acgan_loss
    SN._use_fused = lambda *a: on
    step_mod.acgan_loss = acgan_loss_fused if (on if loss is None else loss) else acgan_loss_reference
    try:
        yield
    finally:
        SN._use_fused, step_mod.acgan_loss = saved


def max_diff(a: dict, b: dict) -> tuple[float, str]:
    """The largest absolute difference between two dicts of tensors (same keys), and where."""
    worst = (0.0, "")
    for k in a:
        d = (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
        if not d <= worst[0]:  # NaN wins
            worst = (d, k)
    return worst


def step_state(gan) -> dict:
    """Everything a step changes: G and D (parameters, SN vectors, BatchNorm statistics) and the metrics."""
    state = {f"G.{k}": v for k, v in gan.G.state_dict().items()}
    state |= {f"D.{k}": v for k, v in gan.D.state_dict().items()}
    return state | {f"metric.{k}": torch.tensor(v) for k, v in gan.read_metrics().items()}


def reset() -> None:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()


def counters() -> tuple[int, dict]:
    c = torch._dynamo.utils.counters
    return c["stats"]["unique_graphs"], {str(k): v for k, v in c["graph_break"].items()}


def run_step(mode: str, steps: int = 3, amp: torch.dtype | None = None, device: str = "cpu",
             backend: str = "aot_eager") -> dict:  # fmt: skip
    """mode: reference | fused | compiled (fused kernels; `backend`). The isic64 layout (SN convs) at 16x16, RGB,
    4 classes, batch 8, channels-last; `amp`: autocast to bf16, or fp16 with gradient scalers."""
    from fastacgan.config import TrainConfig, resolve_spec

    reset()
    fused, syncs, kernels = mode != "reference", [], {"forward": set(), "backward": set()}
    if backend == "aot_eager":
        backend = recording_aot_eager(syncs, kernels)
    spec = resolve_spec(TrainConfig(width=0.25, image_size=16), "isic64", 3, 4)
    torch.manual_seed(0)
    with use_fused(False, loss=fused):  # SN's 15 initial power iterations: not under test, slow when interpreted
        gan = step_mod.ACGANStep(spec, torch.device(device), compile=mode == "compiled", compile_backend=backend,
                                 channels_last=True, amp_dtype=amp)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    graphs, t0 = [], time.perf_counter()
    with use_fused(fused):
        for _ in range(steps):
            x = (torch.rand(8, 3, 16, 16, generator=g) * 2 - 1).to(device, memory_format=torch.channels_last)
            gan(x, torch.randint(4, (8,), generator=g).to(device))
            graphs.append(counters()[0])
    return {"state": step_state(gan), "graphs": graphs, "graph_breaks": counters()[1], "host_syncs": sorted(set(syncs)),
            "kernels": {k: sorted(v) for k, v in kernels.items()}, "seconds": time.perf_counter() - t0}  # fmt: skip


def sn_layers() -> nn.ModuleList:
    """11 SN layers (more than one launch group of 8): Linear, channels-last Conv2d, ConvTranspose2d (dim=1),
    Embedding, odd sizes."""
    torch.manual_seed(2)
    mods = [nn.Linear(13, 7), nn.Conv2d(3, 10, 4, 2, 1), nn.ConvTranspose2d(6, 5, 4, 2, 1), nn.Embedding(9, 12),
            nn.Linear(40, 33), nn.Conv2d(8, 16, 3), nn.Linear(5, 1), nn.Conv2d(16, 8, 1), nn.Linear(64, 64),
            nn.Conv2d(4, 4, 3, padding=1), nn.Linear(3, 20)]  # fmt: skip
    for m in mods:
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return nn.ModuleList(SN.spectral_norm(m) for m in mods)


def run_group(mode: str, iters: int = 3, device: str = "cpu", backend: str = "aot_eager") -> dict:
    """mode: reference | fused | compiled. Each iteration: one grouped power iteration, then a loss of every
    normalised weight and its backward (d sigma / d W through u v^T). Then the normalised weights in eval mode
    (sigma from the stored u, v, which must stay as they are)."""
    reset()
    with use_fused(False):  # the initial power iterations: not under test
        layers = sn_layers().to(device)
    group = SN.SpectralNormGroup(layers)
    probes = [torch.randn(m.weight.shape, generator=torch.Generator().manual_seed(i)).to(device)
              for i, m in enumerate(layers)]  # fmt: skip

    def loss_fn():
        group.update(True)
        return sum((m.weight * p).sum() for m, p in zip(layers, probes))

    def eval_fn():
        group.update(False)
        return torch.cat([m.weight.flatten() for m in layers])

    syncs, kernels = [], {"forward": set(), "backward": set()}
    if mode == "compiled":
        be = recording_aot_eager(syncs, kernels) if backend == "aot_eager" else backend
        loss_fn, eval_fn = (torch.compile(f, backend=be, fullgraph=True) for f in (loss_fn, eval_fn))
    graphs, state, t0 = [], {}, time.perf_counter()
    with use_fused(mode != "reference"):  # one switch for all iterations (a new one would be a new guard)
        for it in range(iters):
            loss = loss_fn()
            loss.backward()
            graphs.append(counters()[0])
            state[f"loss.{it}"] = loss.detach()
            for i, m in enumerate(layers):
                state[f"{i}.grad.{it}"] = m.parametrizations.weight.original.grad.clone()
                m.parametrizations.weight.original.grad = None
        layers.eval()
        with torch.no_grad():
            state["eval.weights"] = eval_fn()
    state |= {k: v for k, v in layers.state_dict().items() if k.endswith(("_u", "_v"))}
    return {"state": state, "graphs": graphs, "graph_breaks": counters()[1], "host_syncs": sorted(set(syncs)),
            "kernels": {k: sorted(v) for k, v in kernels.items()}, "seconds": time.perf_counter() - t0}  # fmt: skip


def compare(runs: dict) -> dict:
    """Per run: graphs, graph breaks, and the largest difference from each earlier run's state."""
    out = {}
    for i, (name, r) in enumerate(runs.items()):
        out[name] = {k: v for k, v in r.items() if k != "state"}
        for other in list(runs)[:i]:
            d, where = max_diff(runs[other]["state"], r["state"])
            out[name][f"vs_{other}"] = {"max_abs": d, "at": where}
    return out


MODES = ("reference", "fused", "compiled")


def run_cases(steps: int = 3, device: str = "cpu", backend: str = "aot_eager") -> dict:
    """case -> {mode: run} for the SN group and the fp32, bf16 and fp16 steps, each in every mode."""
    runs = {"group": {m: run_group(m, device=device, backend=backend) for m in MODES}}
    for case, amp in (("step", None), ("step_bf16", torch.bfloat16), ("step_fp16", torch.float16)):
        runs[case] = {m: run_step(m, steps, amp, device, backend) for m in MODES}
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the report here (else print it)")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("compiled_fused.py traces real triton.jit kernels: run it without TRITON_INTERPRET")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # Inductor's caches in a fresh folder: code generated before a change (or without the patches) is not reused
    cache = tempfile.TemporaryDirectory(prefix="compiled-fused-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    triton_compat.fix_interpreter_index()
    interpret_launches()
    warned = AnalysisWarnings()
    runs = run_cases(args.steps)
    with inductor_interpreted():  # the fp32 cases compiled with Inductor, against the same eager runs
        runs["step_inductor"] = {**runs["step"], "compiled": run_step("compiled", args.steps, backend="inductor")}
        runs["group_inductor"] = {**runs["group"], "compiled": run_group("compiled", backend="inductor")}
    report = {case: compare(r) for case, r in runs.items()}
    report["analysis_warnings"] = warned.messages
    cache.cleanup()
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
