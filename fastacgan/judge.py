"""The judge of fastacgan.evaluate: a small CNN trained from scratch on the run's real images (no downloaded
weights), and what it says of a generator: the class accuracy of generated images, the Frechet distance in its
features (FID's recipe), and CAS (a judge trained on generated images, scored on real ones)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .imaging import to_uint8
from .loaders import to_model_input
from .sample import generate, generate_batches


def make_classifier(channels: int, num_classes: int) -> nn.Module:
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(channels, 32),
        *block(32, 64),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, num_classes),
    )


def held_out_split(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, held-out indices: a random 10%, at least 1) of n images, drawn from g."""
    perm = torch.randperm(n, generator=g)
    n_val = max(1, n // 10)
    return perm[n_val:], perm[:n_val]


UNBALANCED = 2.0  # the judge draws its images class-balanced where a class has this many times another's images


def balanced_draws(labels: torch.Tensor, tr: torch.Tensor, num_classes: int, g: torch.Generator, log=None):
    """n -> n indices of tr drawn with replacement: uniformly, or, where the classes are unbalanced (UNBALANCED to 1
    or more: HAM10000's nv 6,705 images to df's 115), each with the chance 1 / its class's count, so that every
    class comes equally often. A judge trained on the images as they come learns the common classes best and
    calls a good generated df an nv, lowering df's generated-class accuracy for the judge's sake, not G's."""
    counts = torch.bincount(labels, minlength=num_classes)
    present = counts[counts > 0]
    if present.max() < UNBALANCED * present.min():  # (CIFAR-10's 5,000 a class: as before, uniform draws)
        return lambda n: tr[torch.randint(len(tr), (n,), generator=g)]
    if log:
        log(f"the classes are unbalanced ({int(present.min())} to {int(present.max())} images): the judge draws its "
            "training images so that every class comes equally often")  # fmt: skip
    weights = 1.0 / counts[labels[tr]].double()
    return lambda n: tr[torch.multinomial(weights, n, replacement=True, generator=g)]


def train_classifier(
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 3,
    batch_size: int = 128,
    seed: int = 0,
    log=None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, float]:
    """Train on uint8 [N, H, W, C] host images, batches moved to `device`, drawn class-balanced where the classes
    are unbalanced (balanced_draws); -> (classifier in eval mode on `device`, accuracy on a held-out 10%)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tr, val = held_out_split(len(labels), g)
    model = make_classifier(images_u8.shape[3], num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    steps = epochs * max(1, len(tr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    draw = balanced_draws(labels, tr, num_classes, g, log)
    model.train()
    for s in range(steps):
        idx = draw(batch_size)
        x = to_model_input(images_u8[idx].to(device), channels_last=False)
        loss = F.cross_entropy(model(x), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (s + 1) % 100 == 0:
            log(f"classifier step {s + 1}/{steps} loss {loss.item():.3f}")
    model.eval()
    acc = accuracy(model, to_model_input(images_u8[val], channels_last=False), labels[val])
    return model, acc


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Class predictions [N] on the host for host images [N, C, H, W], in batches on the model's device."""
    dev = next(model.parameters()).device
    return torch.cat([model(x[i : i + batch].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict(model, x) == labels.cpu()).float().mean().item()


def conditioning_accuracy(
    generator, classifier: nn.Module, num_classes: int, n_per_class: int = 100, seed: int = 0, images=None
) -> tuple[float, list[float]]:
    """-> (overall accuracy of the classifier on generated images w.r.t. their requested class, per class).
    images: those generated images (n_per_class of each class in order, noise from seed), if already made."""
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    images = generate(generator, labels, seed) if images is None else images
    hit = (predict(classifier, images) == labels).float()
    return hit.mean().item(), hit.view(num_classes, n_per_class).mean(1).tolist()


@torch.no_grad()
def judge_features(classifier: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The classifier's penultimate activations (after pooling, before the last Linear) for host images
    [N, C, H, W] in [-1, 1]: float64 [N, 128] on the host."""
    body = classifier[:-1]  # eval mode: the Dropout before the head is the identity
    dev = next(classifier.parameters()).device
    return torch.cat([body(x[i : i + batch].to(dev)).double().cpu() for i in range(0, len(x), batch)])


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]:
    |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)), the last term as the sum of the square roots
    of the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric, so eigvalsh; float64)."""
    a, b = a.double(), b.double()
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s_a)
    root_a = (v * w.clamp_min(0).sqrt()) @ v.T
    m = root_a @ s_b @ root_a
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * cross)


def judge_generator(g, classifier: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    n_per_class: int = 100, noise_seed: int = 0, split_seed: int = 0) -> dict:  # fmt: skip
    """The judge's figures for one generator, from n_per_class generated images of each class (noise from
    noise_seed): class accuracy (overall and per class), the Frechet distance in the judge's features to as many
    real images the judge held out (train_classifier with seed split_seed on images_u8), and the same distance
    between two disjoint sets of held-out real images (the floor; None when too few are held out)."""
    fake = generate(g, torch.arange(num_classes).repeat_interleave(n_per_class), noise_seed)
    acc, per_class = conditioning_accuracy(g, classifier, num_classes, n_per_class, images=fake)
    _, val = held_out_split(len(labels), torch.Generator().manual_seed(split_seed))  # the judge's held-out 10%
    real = val[: len(fake)]
    fd = floor = None
    if len(real) >= 2:  # a covariance needs two samples
        real_f = judge_features(classifier, to_model_input(images_u8[real], channels_last=False))
        fd = round(frechet_distance(real_f, judge_features(classifier, fake)), 4)
        other = val[len(fake) : 2 * len(fake)]
        if len(other) == len(fake):
            other_f = judge_features(classifier, to_model_input(images_u8[other], channels_last=False))
            floor = round(frechet_distance(real_f, other_f), 4)
    return {"generated_class_accuracy": acc, "per_class": per_class, "judge_frechet_distance": fd,
            "judge_frechet_images": [len(real), len(fake)], "judge_frechet_real_vs_real": floor}  # fmt: skip


def classification_accuracy_score(g, num_classes: int, per_class: int, test_u8: torch.Tensor,
                                  test_labels: torch.Tensor, epochs: int = 3, device="cpu", seed: int = 1):  # fmt: skip
    """CAS (Ravuri & Vinyals, 2019): the accuracy on real images [N, H, W, C] uint8 of a classifier (the judge's
    architecture and recipe) trained only on generated images, per_class of each class (noise from seed)."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    fake = torch.cat([torch.from_numpy(to_uint8(x)) for _, x in generate_batches(g, labels, seed)])
    clf, _ = train_classifier(fake, labels, num_classes, epochs, seed=seed, device=device)
    return accuracy(clf, to_model_input(test_u8, channels_last=False), test_labels)
