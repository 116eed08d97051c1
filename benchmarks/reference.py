"""The plain eager AC-GAN that fastacgan races, written the way the seeds' reference implementations are:
the same architecture as the preset, fp32, NCHW, PyTorch's own spectral norm where the preset has it, the BCE
and the cross-entropy from separate loss modules, Adam with default (foreach) kernels, the losses read with
.item() every iteration for the progress print, and a torchvision-style DataLoader that decodes the JPEG files
with PIL (shuffle, one worker per core, pinned memory). cudnn.benchmark is on: a fair opponent."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from torch import nn

from fastacgan.data import IMAGE_EXTS
from fastacgan.models import Discriminator, Generator, ModelSpec


class ReferenceACGAN:
    def __init__(self, spec: ModelSpec, device: torch.device, lr: float = 2e-4, betas=(0.5, 0.999)):
        torch.backends.cudnn.benchmark = True
        self.spec, self.device = spec, device
        self.G = Generator(spec, fast=False).to(device)
        self.D = Discriminator(spec, sn_impl="torch", fast_dropout=False).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr, betas=betas)
        self.source_loss = nn.BCEWithLogitsLoss()
        self.class_loss = nn.CrossEntropyLoss()

    def step(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor | None = None,
             c: torch.Tensor | None = None) -> tuple[float, float]:  # fmt: skip
        """One D step and one G step; z [B, nz] and c [B] (G's noise and classes) drawn here unless given."""
        b = real.size(0)
        ones = torch.ones(b, device=self.device)
        zeros = torch.zeros(b, device=self.device)
        if z is None:
            z = torch.randn(b, self.spec.nz, device=self.device)
        if c is None:
            c = torch.randint(0, self.spec.num_classes, (b,), device=self.device)
        # D: real as real with its class, fake as fake with the class G was asked for
        self.opt_d.zero_grad()
        src, cls = self.D(real)
        loss_real = self.source_loss(src, ones) + self.class_loss(cls, labels)
        fake = self.G(z, c)
        src, cls = self.D(fake.detach())
        loss_fake = self.source_loss(src, zeros) + self.class_loss(cls, c)
        loss_d = loss_real + loss_fake
        loss_d.backward()
        self.opt_d.step()
        # G: fool D, in the asked-for class
        self.opt_g.zero_grad()
        src, cls = self.D(fake)
        loss_g = self.source_loss(src, ones) + self.class_loss(cls, c)
        loss_g.backward()
        self.opt_g.step()
        return loss_d.item(), loss_g.item()


class FolderDataset(torch.utils.data.Dataset):
    """torchvision.datasets.ImageFolder + ToTensor + Normalize(0.5, 0.5), without torchvision."""

    def __init__(self, root: str, size: int):
        self.size = size
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.items = [(os.path.join(root, c, f), i) for i, c in enumerate(classes)
                      for f in sorted(os.listdir(os.path.join(root, c))) if f.lower().endswith(IMAGE_EXTS)]  # fmt: skip

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - 0.5) / 0.5, label


def reference_loader(root: str, size: int, batch_size: int, workers: int | None = None):
    return torch.utils.data.DataLoader(FolderDataset(root, size), batch_size=batch_size, shuffle=True,
                                       num_workers=os.cpu_count() if workers is None else workers,
                                       pin_memory=torch.cuda.is_available(), drop_last=True)  # fmt: skip
