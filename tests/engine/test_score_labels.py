"""Under injected label noise the validation and test curves are scored on the clean labels
(``y_score``), while training, the train curve, early stopping and the per-example outputs keep
the labels a user has. Reference: the last epoch's curves equal accuracy and loss recomputed
from the final per-example outputs."""

from __future__ import annotations

import numpy as np

from rotelab.data import load_dataset
from rotelab.data.noise import flip_labels
from rotelab.engine import Members, Recipe, train_job
from rotelab.models import ModelSpec, build_model


def _setup():
    ds = load_dataset("digits")
    noisy = flip_labels(ds, 0.3, seed=0)
    n, n_test = noisy.n_train, noisy.n_test
    x = np.concatenate([noisy.x_train, noisy.x_test]).reshape(n + n_test, -1)
    y = np.concatenate([noisy.y_train, noisy.y_test])
    clean = np.concatenate([noisy.clean_labels, noisy.y_test])
    rng = np.random.default_rng(0)
    train = np.zeros((3, n + n_test), bool)
    train[:, :n] = rng.random((3, n)) < 0.7
    val = ~train
    val[:, n:] = False
    test = np.arange(n + n_test) >= n
    return x, y, clean, Members(np.arange(3), train, val), test


def test_curves_score_validation_and_test_on_the_clean_labels():
    x, y, clean, members, test = _setup()
    assert (y != clean).sum() > 100
    spec = ModelSpec("mlp", width=32)
    recipe = Recipe(model=spec, epochs=3, batch_size=64, eval_every=1)
    out = train_job(lambda: build_model(spec, x.shape[1:], 10), x, y, members=members, test_mask=test,
                    recipe=recipe, n_classes=10, device="cpu", y_score=clean)
    pred = out["pred"].astype(np.int64)  # (K, N): the final epoch's predictions

    def acc(labels, mask):
        return np.array([(pred[k][mask[k]] == labels[mask[k]]).mean() for k in range(members.k)])

    test_k = np.broadcast_to(test, members.train_mask.shape)
    np.testing.assert_allclose(out["val_acc"][:, -1], acc(clean, members.val_mask), atol=1e-6)
    np.testing.assert_allclose(out["test_acc"][:, -1], acc(clean, test_k), atol=1e-6)
    np.testing.assert_allclose(out["train_acc"][:, -1], acc(y, members.train_mask), atol=1e-6)
    # the final per-example outputs stay on the labels trained on
    np.testing.assert_array_equal(out["correct"], pred == y[None])
    # against the flipped labels, validation would read lower: the two differ
    assert (acc(y, members.val_mask) < out["val_acc"][:, -1] - 0.05).all()


def test_the_same_job_without_clean_labels_trains_the_same_models():
    """y_score changes what the curves are scored on, never the training itself."""
    x, y, clean, members, test = _setup()
    spec = ModelSpec("mlp", width=32)
    recipe = Recipe(model=spec, epochs=2, batch_size=64, eval_every=1)
    a = train_job(lambda: build_model(spec, x.shape[1:], 10), x, y, members=members, test_mask=test,
                  recipe=recipe, n_classes=10, device="cpu", y_score=clean)
    b = train_job(lambda: build_model(spec, x.shape[1:], 10), x, y, members=members, test_mask=test,
                  recipe=recipe, n_classes=10, device="cpu")
    np.testing.assert_array_equal(a["pred"], b["pred"])
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    assert not np.array_equal(a["val_acc"], b["val_acc"])
