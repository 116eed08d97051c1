"""The quality bar: generated images are recognisably conditioned on their label."""

import pytest
import torch

from fastacgan import judge
from fastacgan.data import open_catalog
from fastacgan.judge import balanced_draws, conditioning_accuracy, held_out_split, predict, train_classifier
from fastacgan.loaders import to_model_input
from fastacgan.sample import load_generator
from fastacgan.train import main


def test_generated_digits_are_classified_as_their_label(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "q"
    args = [
        "--data",
        "builtin:digits:3000",
        "--image-size",
        "16",
        "--width",
        "0.5",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--steps",
        "800",
        "--log-every",
        "200",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    real = open_catalog("builtin:digits:3000", image_size=16)
    clf, real_acc = train_classifier(real.images, torch.as_tensor(real.labels), 10, epochs=3)
    assert real_acc > 0.9  # the judge itself must be good
    g, _, _ = load_generator(str(out))
    acc, per_class = conditioning_accuracy(g, clf, 10, n_per_class=50)
    print(f"generated-image class accuracy {acc:.3f} (chance 0.1), per class {per_class}")
    assert acc > 0.5, per_class  # chance is 0.1


def test_frechet_distance_against_its_definition():
    """frechet_distance = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), checked against the trace of the
    square root taken another way (the eigenvalues of the non-symmetric S_a S_b), closed forms and scipy."""
    from fastacgan.judge import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(400, 6, generator=g, dtype=torch.float64) * 2 + 1
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    cross = torch.linalg.eigvals(s_a @ s_b).real.clamp_min(0).sqrt().sum()
    want = (a.mean(0) - b.mean(0)).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(float(want), rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(float(want), rel=1e-9)
    assert abs(frechet_distance(a, a)) < 1e-8
    assert frechet_distance(a, a + 3.0) == pytest.approx(6 * 9.0, rel=1e-9)  # a shift by 3 in 6 dimensions
    d1, d2 = torch.diag(torch.tensor([1.0, 4.0, 9.0])), torch.diag(torch.tensor([4.0, 1.0, 16.0]))
    x, y = torch.randn(2000, 3, generator=g) @ d1.sqrt(), torch.randn(2000, 3, generator=g) @ d2.sqrt()
    # commuting covariances: sum of (sqrt(s1) - sqrt(s2))^2 over the diagonal, up to the sampling of 2000 points
    assert frechet_distance(x, y) == pytest.approx(3.0, abs=0.35)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    root = scipy_linalg.sqrtm((s_a @ s_b).numpy())
    want_scipy = float(want + 2 * cross) - 2 * float(root.trace().real)
    assert frechet_distance(a, b) == pytest.approx(want_scipy, rel=1e-6)


def test_judge_features_are_what_its_head_reads():
    from fastacgan.judge import judge_features, make_classifier

    clf = make_classifier(3, 5).eval()
    x = torch.rand(7, 3, 16, 16) * 2 - 1
    f = judge_features(clf, x, batch=3)
    assert f.shape == (7, 128) and f.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(clf[-1](f.float()), clf(x), atol=1e-5, rtol=1e-5)


class _BankGenerator(torch.nn.Module):
    """A stand-in generator that returns real images: for label c, an image of class (c + shift) % K from a bank,
    picked by the noise. shift 0 is a perfect conditional generator, shift 1 one that mixes up every class."""

    def __init__(self, images, labels, shift: int, nz: int = 8):
        super().__init__()
        from types import SimpleNamespace

        self.spec = SimpleNamespace(nz=nz)
        self.scale = torch.nn.Parameter(torch.ones(()))  # for the device
        k = int(labels.max()) + 1
        self.bank = [images[labels == (c + shift) % k] for c in range(k)]

    def forward(self, z, labels):
        pick = (z[:, 0].abs() * 1e4).long()
        out = [self.bank[c][p % len(self.bank[c])] for c, p in zip(labels.tolist(), pick.tolist())]
        return torch.stack(out).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_classification_accuracy_score_tells_good_from_mixed_up_generators():
    """CAS: a classifier trained on a perfect conditional generator's images scores well on real test images; one
    trained on a generator that gives every class another class's images scores near nothing."""
    from fastacgan.decode import decode_all
    from fastacgan.judge import classification_accuracy_score

    train = open_catalog("builtin:digits:2000", image_size=16)
    x, y = decode_all(train, 16, 1, 0, log=lambda m: None)
    test_x, test_y = x[1500:], y[1500:]  # images the bank does not hold
    bank_x, bank_y = x[:1500], y[:1500]
    good = classification_accuracy_score(_BankGenerator(bank_x, bank_y, 0), 10, 150, test_x, test_y, epochs=6)
    mixed = classification_accuracy_score(_BankGenerator(bank_x, bank_y, 1), 10, 150, test_x, test_y, epochs=6)
    assert good > 0.7 and mixed < 0.15, (good, mixed)


def _two_greys(n0: int, n1: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n0 images of class 0 (grey 120) and n1 of class 1 (grey 128), 8x8, each pixel noisy (sd 40): told apart by
    their mean, not always."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n1, dtype=torch.long)])
    grey = torch.where(labels == 0, 120.0, 128.0)[:, None, None, None]
    return (grey + 40 * torch.randn(len(labels), 8, 8, 1, generator=g)).clamp(0, 255).to(torch.uint8), labels


def test_the_judge_draws_unbalanced_classes_evenly(monkeypatch):
    """On unbalanced data (HAM10000: nv 6,705 images to df's 115) the judge drew its images as they come, learned
    the common class best and called images of the rare one the common one: generated images of the rare class
    were scored wrong for the judge's sake. It now draws every class equally often there (said); balanced data is
    drawn as before (the same draws)."""
    labels = torch.tensor([0] * 950 + [1] * 50 + [2] * 100)
    g = torch.Generator().manual_seed(0)
    tr, _ = held_out_split(len(labels), g)
    said = []
    counts = torch.bincount(labels[balanced_draws(labels, tr, 3, g, said.append)(30000)], minlength=3)
    assert (counts - 10000).abs().max() < 500, counts  # (uniform: about 25,900, 1,400 and 2,700)
    assert said == ["the classes are unbalanced (50 to 950 images): the judge draws its training images so that "
                    "every class comes equally often"]  # fmt: skip
    even = torch.arange(1100) % 4  # balanced: the draws of before
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(balanced_draws(even, tr, 4, g1)(64), tr[torch.randint(len(tr), (64,), generator=g2)])
    images, labels = _two_greys(1900, 100, 0)
    test_images, test_labels = _two_greys(500, 500, 1)
    x = to_model_input(test_images, channels_last=False)

    def per_class(log=None) -> list[float]:  # the judge's accuracy on each class of a balanced test set
        clf, _ = train_classifier(images, labels, 2, epochs=3, log=log)
        hit = predict(clf, x) == test_labels
        return [hit[test_labels == k].float().mean().item() for k in (0, 1)]

    said.clear()
    balanced = per_class(said.append)
    assert said[0].startswith("the classes are unbalanced (100 to 1900 images)")
    monkeypatch.setattr(judge, "UNBALANCED", float("inf"))  # as it was: drawn as they come
    as_they_come = per_class()
    got = (balanced, as_they_come)
    assert as_they_come[1] < 0.1 < balanced[1] - 0.2 and sum(balanced) > sum(as_they_come) + 0.2, got
