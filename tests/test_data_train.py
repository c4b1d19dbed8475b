"""efflib.data and efflib.train: offline seeded digits, deterministic training, fast mode."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from efflib import data, models, train
from efflib.train import History


@pytest.fixture(scope="module")
def loaders():
    return data.digits(seed=0)


def _all(loader):
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_split_is_stratified_disjoint_and_seeded(loaders):
    xtr, ytr = _all(loaders.train)
    xte, yte = _all(loaders.test)
    assert len(ytr) + len(yte) == 1797 and len(yte) == 450
    assert xtr.shape[1:] == (1, 8, 8)
    counts = torch.bincount(yte, minlength=10)
    assert counts.min() >= 44 and counts.max() <= 46  # 25% of each class
    # no test image also in train
    train_rows = {tuple(r.tolist()) for r in xtr.flatten(1)}
    assert sum(tuple(r.tolist()) in train_rows for r in xte.flatten(1)) < 5  # a few true duplicates
    again = data.digits(seed=0)
    assert torch.equal(_all(again.test)[0], xte)
    assert not torch.equal(_all(data.digits(seed=1).test)[1], yte)


def test_digit_arrays_are_scikit_learns_digits():
    images, labels = data.digit_arrays()
    raw = load_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    np.testing.assert_array_equal(images, raw.images)
    np.testing.assert_array_equal(labels, raw.target)


def test_normalised_by_train_statistics(loaders):
    xtr, _ = _all(loaders.train)
    assert abs(float(xtr.mean())) < 1e-4 and abs(float(xtr.std()) - 1) < 1e-3


def test_resize_for_lenet():
    small = data.digits(resize=32)
    x, _ = next(iter(small.test))
    assert x.shape[1:] == (1, 32, 32) and small.image_size == 32


@pytest.mark.parametrize("kwargs,match", [
    ({"test_fraction": 1.0}, "test_fraction"), ({"batch_size": 0}, "batch_size"),
    ({"resize": 0}, "resize"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.digits(**kwargs)


def test_digit_cnn_reaches_95_percent_in_seconds(loaders):
    model = models.digit_cnn()
    hist = train.fit(model, loaders.train, loaders.test, epochs=5, progress=False)
    assert hist.test_accuracy[-1] >= 0.95
    assert train.evaluate(model, loaders.test) == hist.test_accuracy[-1]
    assert hist.train_loss[0] > hist.train_loss[-1]


def test_training_is_deterministic_under_a_seed(loaders):
    def run(seed):
        torch.manual_seed(123)  # same initial weights
        m = models.digit_cnn(width=4)
        train.fit(m, loaders.train, None, epochs=1, seed=seed, progress=False)
        return torch.cat([p.detach().flatten() for p in m.parameters()])
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_after_step_runs_after_every_optimizer_step(loaders):
    calls = []
    m = models.digit_cnn(width=4)
    train.fit(m, loaders.train, None, epochs=1, after_step=lambda mod: calls.append(mod),
              progress=False)
    assert len(calls) == len(loaders.train) and calls[0] is m


def test_fast_mode_shortens_training(loaders, monkeypatch):
    m = models.digit_cnn(width=4)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert train.fit(m, loaders.train, None, epochs=9, fast_epochs=2, progress=False).epochs == 2
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert train.fit(m, loaders.train, None, epochs=3, fast_epochs=2, progress=False).epochs == 3


def test_evaluate_counts_correct_predictions():
    class Oracle(nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0].long(), 10).float()
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    y = torch.tensor([1, 2, 0, 4])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=3)
    assert train.evaluate(Oracle(), loader, "cpu") == 0.75
    with pytest.raises(ValueError, match="epochs"):
        train.fit(Oracle(), loader, epochs=0)


def test_a_custom_loss_gets_the_model_and_the_batch(loaders):
    seen = []

    def loss(model, x, y):
        seen.append((x.shape[0], y.shape[0]))
        return (model(x) ** 2).mean()  # drives every logit to zero
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    train.fit(model, loaders.train, None, epochs=2, loss=loss, progress=False)
    assert len(seen) == 2 * len(loaders.train) and seen[0][0] == seen[0][1]
    x, _ = next(iter(loaders.test))
    with torch.no_grad():
        assert model(x).abs().mean() < 0.2  # it minimised that loss, not cross-entropy


def test_a_loss_that_is_not_a_scalar_is_refused(loaders):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TypeError, match="scalar tensor"):
        train.fit(model, loaders.train, None, epochs=1, progress=False,
                  loss=lambda m, x, y: nn.functional.cross_entropy(m(x), y, reduction="none"))


def test_a_history_shows_as_one_line():
    """A notebook cell ending in train.fit shows its History: one line, not 40 numbers."""
    h = History(train_loss=[2.31] + [1.0] * 38 + [0.12], test_accuracy=[0.5, 0.91],
                seconds=3.26, epochs=40)
    assert repr(h) == ("History(40 epochs in 3.3 s, train loss 2.310 -> 0.120, "
                       "test accuracy 91.0%)")
    assert "\n" not in repr(History())


def test_bad_arguments_to_fit_and_digits_are_named():
    with pytest.raises(TypeError, match=r"fit\(\) trains an nn.Module, got str"):
        train.fit("model", [], None, epochs=1, progress=False)
    with pytest.raises(TypeError, match="digits: seed must be an int"):
        data.digits(seed="a")
    with pytest.raises(ValueError, match="digits: batch_size must be at least 1"):
        data.digits(batch_size=0)
