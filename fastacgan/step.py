"""One AC-GAN training step, and every performance flag in one place.

    D step: loss_D = L(D(x), real_label, y) + L(D(G(z, c).detach()), fake_label, c) -> backward -> Adam(D)
    G step: loss_G = L(D(G(z, c)), 1, c)        (the same fakes, now through G) -> backward -> Adam(G)
            (D's weights are frozen for the G step's backward: it only needs the gradient that flows to G)
with L = acgan_loss (BCE-with-logits of the source head + cls_weight * cross-entropy of the class head).
With --diffaug every image D sees, x and each use of G(z, c), is randomly transformed first (augment.py, a draw of
its own each time); with --g-ema the G step ends by moving G's moving average (ema.py) towards G.

Speed features, each switchable on its own: torch.compile of three regions (G's forward, the D losses,
the G loss; mode "reduce-overhead", i.e. CUDA graphs, on CUDA), AMP autocast (bf16, or fp16 with gradient
scalers), channels-last activations, the fused Triton kernels (loss; spectral norm), fused Adam (CUDA, CPU).
The regions are separate so that each compiled backward runs once per step. Nothing in a step reads a
device value on the host: the metrics are summed on the device and read every --log-every steps.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch
import torch.distributed as tdist

from . import kernels
from .augment import diff_augment, parse_policy
from .devices import memory_error
from .distributed import Dist, all_reduce_
from .ema import MovingAverage
from .fallbacks import CompiledRegion, check_fused_kernels
from .kernels import acgan_loss, acgan_loss_reference
from .loaders import to_model_input
from .models import Discriminator, Generator, ModelSpec

# per-step metrics accumulated on the device, in this order: the D step's, then the G step's
METRICS_D = ("loss_d", "d_real", "d_fake", "acc_real", "acc_fake", "bce_real", "ce_real", "bce_fake", "ce_fake")
METRICS = METRICS_D + ("loss_g", "d_fake_g", "bce_g", "ce_g")


class ACGANStep:
    def __init__(self, spec: ModelSpec, device: torch.device, *, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                 amp_dtype: torch.dtype | None = None, channels_last: bool = False, compile: bool = False,
                 compile_backend: str = "inductor", fused_kernels: bool = True, cls_weight: float = 1.0,
                 real_label: float = 1.0, fake_label: float = 0.0, seed: int = 0, dist: Dist | None = None,
                 sync_bn: bool = False, graph_step: bool = False, fast_layers: bool = True,
                 fast_dropout: bool = True, g_ema: float = 0.0, diffaug: str = ""):  # fmt: skip
        self.spec, self.device, self.amp_dtype, self.channels_last = spec, device, amp_dtype, channels_last
        self.dist = dist = dist or Dist()
        self.cls_weight, self.real_label, self.fake_label = cls_weight, real_label, fake_label
        self.diffaug = parse_policy(diffaug)  # DiffAugment's (augment.py): on every image D sees, real or generated
        if device.type == "cuda" and not kernels.triton_supports(device):  # a GPU older than Triton's: the trainer
            fused_kernels = False  # says so (triton_unsupported); Inductor would refuse it
            compile = compile and compile_backend != "inductor"
        self.compile = compile
        if fused_kernels and device.type == "cuda":
            why = check_fused_kernels(device)
            if why:
                warnings.warn(f"the fused kernels failed their self-check on {device} ({why}); using PyTorch ops "
                              f"instead (--no-fused-kernels silences this)", stacklevel=2)  # fmt: skip
                fused_kernels = False
        self.fused_kernels = fused_kernels
        self.G = Generator(spec, fast=fast_layers).to(device)
        sn_impl = "fused" if fused_kernels else "torch"
        self.D = Discriminator(spec, sn_impl=sn_impl, fast_dropout=fast_dropout).to(device)
        if channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.graph_step = graph_step and _graph_step_possible(device, dist, amp_dtype)
        # fused Adam: one kernel per update (on a CPU too, since torch 2.4: isic64's G update at batch 16 takes 2 ms
        # there instead of 14, a cifar10 step 158 -> 145 ms on a 2-core CPU); capturable: the optimizer's step
        # counters live on the device, so a CUDA graph can hold its update
        fused = {"cuda": {"fused": True, "capturable": self.graph_step}, "cpu": {"fused": True}}.get(device.type, {})
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr_g, betas=betas, **fused)
        self.d_params = list(self.D.parameters())
        self.opt_d = torch.optim.Adam(self.d_params, lr_d, betas=betas, **fused)
        use_scaler = amp_dtype == torch.float16
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=use_scaler)
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=use_scaler)
        self.seed = seed
        self.noise_gen = torch.Generator(device).manual_seed(seed + 1)  # the same on every rank
        self.loss = acgan_loss if fused_kernels else acgan_loss_reference
        # the modules the step runs: G and D themselves, or their DistributedDataParallel wrappers
        self.G_run, self.D_run = self.G, self.D
        if sync_bn and not dist.enabled:
            warnings.warn("--sync-bn is off: one process has no other batch statistics to synchronise with (it "
                          "applies to runs started with torchrun)", stacklevel=2)  # fmt: skip
        if dist.enabled:
            if sync_bn:
                if device.type != "cuda":
                    raise ValueError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm)")
                self.G_run = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D_run = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
                self.G, self.D = self.G_run, self.D_run
            ids = [device.index] if device.type == "cuda" else None
            self.G_run = torch.nn.parallel.DistributedDataParallel(self.G, device_ids=ids)
            self.D_run = torch.nn.parallel.DistributedDataParallel(self.D, device_ids=ids)
        self.g_ema = MovingAverage(self.G, g_ema) if g_ema else None  # (--g-ema: G's weights averaged)

        self.g_forward, self.d_losses, self.g_losses = self._g_forward, self._d_losses, self._g_losses
        # CUDA graphs cannot hold DDP's gradient all-reduce, which runs between the graphs: off when distributed
        # (with graph_step the whole step is one CUDA graph of our own: the regions are compiled without them)
        self.cuda_graphs = (compile and device.type == "cuda" and compile_backend == "inductor" and not dist.enabled
                            and not self.graph_step)  # fmt: skip
        self._graphs: dict[tuple, _StepGraph] = {}  # one per batch shape
        if compile:
            mode = "reduce-overhead" if self.cuda_graphs else None
            wrap = lambda fn, m=mode: CompiledRegion(fn, mode=m, backend=compile_backend)  # noqa: E731
            # G's forward is compiled without CUDA graphs: its output, the fakes, is read by the G step after the
            # D step's backward. CUDA graph trees start a new generation at the first compiled forward after
            # every pending backward has run (the G loss), and a graph output of an older generation counts as
            # overwritten. The D and G losses (the spectral norms, D twice, the fused losses) are graphed.
            self.g_forward = wrap(self._g_forward, None)
            self.d_losses, self.g_losses = wrap(self._d_losses), wrap(self._g_losses)

        self.metrics = torch.zeros(len(METRICS), device=device)
        self.metric_steps = 0
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first step with a NaN/Inf loss
        self.dev_step = torch.zeros((), dtype=torch.long, device=device)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        # no weight-cast cache when the step is captured in a CUDA graph (what PyTorch's CUDA-graph notes ask:
        # a cached cast could outlive the capture's memory)
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=not self.graph_step)

    # the three regions that torch.compile sees -------------------------------------------------------------

    def _g_forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.G_run(z, c)  # [B, C, H, W] in [-1, 1]

    def _d_losses(self, real, fake, labels, c):
        """D step loss on real images (their labels) and detached fakes (the classes G was asked for)."""
        if real.dtype == torch.uint8:  # a loader's batch, converted here: in the compiled region / the graph
            real = to_model_input(real, self.channels_last)
        if self.diffaug:
            real, fake = diff_augment(real, self.diffaug), diff_augment(fake, self.diffaug)
        with self.autocast():
            src_r, cls_r = self.D_run(real)
            src_f, cls_f = self.D_run(fake)
            loss_r, st_r = self.loss(src_r, cls_r, self.real_label, labels, self.cls_weight)
            loss_f, st_f = self.loss(src_f, cls_f, self.fake_label, c, self.cls_weight)
        return loss_r + loss_f, st_r, st_f

    def _g_losses(self, fake, c):
        if self.diffaug:  # (G's gradient flows back through the augmentation)
            fake = diff_augment(fake, self.diffaug)
        with self.autocast():
            src_g, cls_g = self.D_run(fake)
            return self.loss(src_g, cls_g, 1.0, c, self.cls_weight)

    # ------------------------------------------------------------------------------------------------------

    def __call__(self, real: torch.Tensor, labels: torch.Tensor) -> None:
        """One D step and one G step. real: [B, C, H, W] float in [-1, 1], or a loader's uint8 [B, H, W, C],
        which the step converts inside its compiled region (with --graph-step: inside the graph), saving the
        conversion's launches and copying a quarter of the bytes into the graph's input; labels [B] int64."""
        if self.graph_step:
            self._graphed_step(real, labels)
        else:
            self._step(real, labels, *self._noise(labels.shape[0]))
        self.metric_steps += 1

    def _noise(self, b: int, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        """G's input noise z [b, nz] and classes c [b]. The global batch's on every rank, each rank taking its
        slice (N ranks draw as 1 process would); out: write them into these tensors (single process only)."""
        rank, world = self.dist.rank, self.dist.world
        mine = slice(rank * b, (rank + 1) * b)
        if out is not None:
            torch.randn(b, self.spec.nz, device=self.device, generator=self.noise_gen, out=out[0])
            torch.randint(self.spec.num_classes, (b,), device=self.device, generator=self.noise_gen, out=out[1])
            return out
        z = torch.randn(b * world, self.spec.nz, device=self.device, generator=self.noise_gen)[mine]
        c = torch.randint(self.spec.num_classes, (b * world,), device=self.device, generator=self.noise_gen)[mine]
        return z, c

    def _step(self, real, labels, z, c) -> None:
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        fake = self.g_forward(z, c)

        loss_d, st_r, st_f = self.d_losses(real, fake.detach(), labels, c)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        # the D step's outputs are read now: under CUDA graphs the G loss's graph may reuse their memory
        with torch.no_grad():  # stats: [bce, ce, mean sigmoid, accuracy]; all on the device
            n = len(METRICS_D)
            self.metrics[:n] += torch.stack([loss_d.detach(), st_r[2], st_f[2], st_r[3], st_f[3], st_r[0], st_r[1],
                                             st_f[0], st_f[1]])  # fmt: skip
            finite = torch.isfinite(loss_d)

        # G step. D's weights get no gradient here (it would be discarded): the backward through D computes
        # only what flows on to G, and with several processes nothing of D is all-reduced.
        self._set_requires_grad(self.d_params, False)
        with self.D_run.no_sync() if self.dist.enabled else nullcontext():
            loss_g, st_g = self.g_losses(fake, c)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss_g).backward()
        self._set_requires_grad(self.d_params, True)
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()

        with torch.no_grad():  # in place: a CUDA graph of the step keeps writing to these same tensors
            self.metrics[n:] += torch.stack([loss_g.detach(), st_g[2], st_g[0], st_g[1]])
            self.dev_step += 1
            finite &= torch.isfinite(loss_g)
            self.bad_step.copy_(torch.where((self.bad_step < 0) & ~finite, self.dev_step, self.bad_step))
        if self.g_ema is not None:
            self.g_ema.update(self.dev_step)

    def _graphed_step(self, real: torch.Tensor, labels: torch.Tensor) -> None:
        """The step as one CUDA graph: GRAPH_WARMUP ordinary steps on a side stream (compilation, autotuning,
        the optimizers' state), then the step is captured once and replayed for every later batch of the same
        shape. Per step the host launches 4 small kernels (the noise, into the graph's input tensors, and the
        batch copied in) and the replay. A batch of another shape (a caller's: fastacgan's loaders keep one) gets
        its own graph, up to MAX_GRAPHS shapes (then it runs without one); if a capture fails, a warning says why
        and the step runs without a graph from then on."""
        key = (tuple(real.shape), real.stride(), real.dtype, tuple(labels.shape))
        g = self._graphs.get(key)
        if g is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._step(real, labels, *self._noise(labels.shape[0]))
                return
            g = self._graphs[key] = _StepGraph(real, labels, self.spec.nz)
        self._noise(labels.shape[0], out=(g.z, g.c))
        g.real.copy_(real)
        g.labels.copy_(labels)
        if g.graph is not None:
            g.graph.replay()
            return
        g.stream.wait_stream(torch.cuda.current_stream())
        if g.warmup > 0:
            g.warmup -= 1
            with torch.cuda.stream(g.stream):
                self._step(g.real, g.labels, g.z, g.c)
            torch.cuda.current_stream().wait_stream(g.stream)
            return
        # gradients made inside the capture live in the graph's memory and are rewritten by every replay
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: a loader's own threads (DALI's, a DataLoader's pinning thread) may use CUDA meanwhile
            with torch.cuda.graph(graph, stream=g.stream, capture_error_mode="thread_local"):
                self._step(g.real, g.labels, g.z, g.c)
        except Exception as e:  # noqa: BLE001 - any capture failure: report it and go on without a graph
            if memory_error(e):  # the batch does not fit: not a capture problem (train.main says what to do)
                raise
            why = " ".join(str(e).split())[:240]
            warnings.warn(f"capturing the training step in a CUDA graph failed ({type(e).__name__}: {why}); "
                          f"it runs without one (--no-graph-step silences this)", stacklevel=3)  # fmt: skip
            torch.cuda.synchronize()
            self.graph_step, self._graphs = False, {}
            self.opt_d.zero_grad(set_to_none=True)
            self.opt_g.zero_grad(set_to_none=True)
            self._step(real, labels, g.z, g.c)
            return
        torch.cuda.current_stream().wait_stream(g.stream)
        g.graph = graph
        graph.replay()  # capturing ran nothing: this is the step

    @staticmethod
    def _set_requires_grad(params: list[torch.nn.Parameter], flag: bool) -> None:
        for p in params:
            p.requires_grad_(flag)

    def read_metrics(self) -> dict[str, float]:
        """Mean of each metric since the last read, over all ranks (a host sync), then reset."""
        all_reduce_(self.metrics)
        n = max(1, self.metric_steps) * self.dist.world
        m = dict(zip(METRICS, (self.metrics / n).tolist()))
        self.metrics.zero_()
        self.metric_steps = 0
        return m

    def first_bad_step(self) -> int:
        """The first step with a non-finite loss on any rank, or -1."""
        bad = self.bad_step.clone()
        bad = torch.where(bad < 0, torch.full_like(bad, 2**62), bad)  # -1 must not win the min
        all_reduce_(bad, tdist.ReduceOp.MIN)
        return -1 if int(bad) == 2**62 else int(bad)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images from G in eval mode (BatchNorm running statistics), or from its moving average (--g-ema), float32."""
        g = self.G if self.g_ema is None else self.g_ema.module
        was_training = g.training
        g.eval()
        with self.autocast():
            x = g(z, labels).float()
        g.train(was_training)
        return x

    def train(self, mode: bool = True) -> None:
        self.G.train(mode)
        self.D.train(mode)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "scaler_g": self.scaler_g.state_dict(),
                "scaler_d": self.scaler_d.state_dict(), "noise_gen": self.noise_gen.get_state(),
                **({"G_ema": self.g_ema.state_dict()} if self.g_ema is not None else {})}  # fmt: skip

    def load_state_dict(self, state: dict, step: int) -> bool:
        """Load a checkpoint's state; False when G's noise stream could not be continued (see below)."""
        self._graphs = {}  # the optimizers' state tensors are replaced: a captured step would use the old ones
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.g_ema is not None and "G_ema" in state:
            self.g_ema.load_state_dict(state["G_ema"])
        elif self.g_ema is not None:  # a checkpoint without one (--g-ema given on resuming): it starts from G
            self.g_ema.reset()
        _load_optimizer(self.opt_g, state["opt_g"])
        _load_optimizer(self.opt_d, state["opt_d"])
        for scaler, saved in ((self.scaler_g, state["scaler_g"]), (self.scaler_d, state["scaler_d"])):
            # empty when a disabled scaler (a bf16 or fp32 run) saved it: an fp16 resume starts its scaler afresh
            if saved:
                scaler.load_state_dict(saved)
        self.dev_step.fill_(step)
        noise = state["noise_gen"].to("cpu")
        if noise.numel() == self.noise_gen.get_state().numel():
            self.noise_gen.set_state(noise)
            return True
        # written on another kind of device (a CPU generator's state is 5056 bytes, a GPU's 16), whose stream this
        # generator cannot continue: a new one, the same on every rank and for every resume at this step
        self.noise_gen.manual_seed(self.seed + 1 + step)
        return False


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict) -> None:
    """The checkpoint's optimizer state (moments, step counts) under this run's settings. PyTorch's
    load_state_dict takes each param group's settings from the checkpoint too: a resume with another --lr-d or
    --beta1 (which the run names as changed) would have kept the old ones, and one with --graph-step after a
    run without it the saved capturable=False, on which the step's CUDA-graph capture fails; an older
    checkpoint's fused=None would have turned fused Adam off."""
    own = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    opt.load_state_dict(saved)
    for group, settings in zip(opt.param_groups, own):
        group.update(settings)
        if settings.get("fused") or settings.get("capturable"):  # their step counts live beside the parameters
            for p in group["params"]:
                st = opt.state.get(p, {})
                if torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(device=p.device, dtype=torch.float32)


GRAPH_WARMUP = 3  # ordinary steps before the step is captured in a CUDA graph
MAX_GRAPHS = 4  # captured steps (batch shapes) kept


class _StepGraph:
    """A captured step and its fixed input tensors (the graph reads and writes the same memory every replay)."""

    def __init__(self, real: torch.Tensor, labels: torch.Tensor, nz: int):
        self.graph, self.warmup = None, GRAPH_WARMUP
        self.real, self.labels = torch.empty_like(real), torch.empty_like(labels)
        self.z = torch.empty(labels.shape[0], nz, device=real.device)
        self.c = torch.empty_like(labels)
        self.stream = torch.cuda.Stream(real.device)


def set_cuda_flags(cudnn_benchmark: bool = True) -> None:
    """The process-wide settings of the fast path on CUDA (a training run's; the race's fastacgan the same):
    cuDNN times its convolution algorithms for each shape on first use and keeps the fastest. The step's
    shapes are fixed (the loaders keep one batch shape), and every shape is first met outside a CUDA-graph
    capture (CUDA graph trees and --graph-step warm up eagerly), where timing is allowed."""
    torch.backends.cudnn.benchmark = cudnn_benchmark


def _graph_step_possible(device: torch.device, dist: Dist, amp_dtype) -> bool:
    """The whole-step CUDA graph needs CUDA, one process (DDP's all-reduce runs between graphs) and no fp16
    gradient scaler (it reads an inf check on the host); where asked for but impossible, a warning says why."""
    why = None
    if device.type != "cuda":
        why = "it needs CUDA"
    elif dist.enabled:
        why = "DDP's gradient all-reduce cannot be captured"
    elif amp_dtype == torch.float16:
        why = "fp16's gradient scaler syncs with the host"
    if why:
        warnings.warn(f"--graph-step is off: {why}", stacklevel=3)
    return why is None
