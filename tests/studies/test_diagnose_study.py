"""`diagnose` end to end on small real data: verdicts, resume, records, determinism."""

import json

import numpy as np
import pytest

import rotelab
from rotelab.errors import InvalidInputError, StoreError
from rotelab.progress import Progress
from rotelab.store import Store


class Counting(Progress):
    def __init__(self):
        self.epochs = 0
        self.totals = []

    def start(self, *, total, cached, n_jobs):
        self.totals.append(total)

    def advance(self, epochs):
        self.epochs += epochs


def test_memorizing_on_noisy_clusters_with_onset(tmp_path):
    r = rotelab.diagnose("synthetic", "mlp", epochs=25, runs_dir=tmp_path, width=256)
    assert r.verdict == "memorizing"
    assert r.onset_epoch is not None and 1 <= r.onset_epoch < 25
    assert r.final["train_acc"] > 0.95 and r.final["acc_gap"] > 0.1
    assert len(r.epochs) == 25 and len(r.curves["val_loss"]) == 25


def test_rerun_reuses_the_stored_job_and_gives_the_same_result(tmp_path):
    first, second = Counting(), Counting()
    a = rotelab.diagnose("synthetic", "mlp", epochs=5, seeds=2, runs_dir=tmp_path, progress=first)
    b = rotelab.diagnose("synthetic", "mlp", epochs=5, seeds=2, runs_dir=tmp_path, progress=second)
    assert first.epochs == 5 and second.totals == [0] and second.epochs == 0
    assert a.to_dict() == b.to_dict()
    store = Store.open(a.study_dir)
    assert len(store.jobs()) == 1
    study = json.loads((tmp_path / a.study_dir.split("/")[-1] / "study.json").read_text())
    assert study["context"]["torch"] and study["config"]["recipe"]["epochs"] == 5


def test_same_config_in_another_directory_gives_the_same_numbers(tmp_path):
    a = rotelab.diagnose("synthetic", "mlp", epochs=4, seeds=2, runs_dir=tmp_path / "a")
    b = rotelab.diagnose("synthetic", "mlp", epochs=4, seeds=2, runs_dir=tmp_path / "b")
    assert a.curves == b.curves
    c = rotelab.diagnose("synthetic", "mlp", epochs=4, seeds=2, seed=1, runs_dir=tmp_path / "c")
    assert c.curves != a.curves


def test_user_module_factory(tmp_path):
    from torch import nn

    r = rotelab.diagnose("synthetic", lambda: nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)),
                         epochs=3, seeds=1, runs_dir=tmp_path)
    assert r.model.startswith("custom:") and r.vectorized


@pytest.mark.parametrize("kwargs,match", [
    (dict(data="nope"), "unknown dataset"),
    (dict(model="transformer"), "unknown model 'transformer'"),
    (dict(epochs=-1), "epochs must be >= 1"),
    (dict(train_size=10_000), "larger than the 300 training examples"),
    (dict(seeds=0), "seeds must be >= 1"),
    (dict(label_noise=1.5), "label noise"),
    (dict(val_fraction=0.0), "validation fraction"),
    (dict(model="cnn"), "needs image features"),
    (dict(dropout=1.0), "dropout"),
    (dict(optimizer="lbfgs"), "unknown optimizer"),
])
def test_bad_input_raises_before_anything_is_written(tmp_path, kwargs, match):
    args = {"data": "synthetic", "model": "mlp", "epochs": 2, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        rotelab.diagnose(args.pop("data"), args.pop("model"), runs_dir=tmp_path / "runs", **args)
    assert not (tmp_path / "runs").exists()


def test_store_from_another_version_is_refused(tmp_path):
    r = rotelab.diagnose("synthetic", "mlp", epochs=2, seeds=1, runs_dir=tmp_path)
    path = tmp_path / r.study_dir.split("/")[-1]
    study = json.loads((path / "study.json").read_text())
    study["format_version"] = 999
    (path / "study.json").write_text(json.dumps(study))
    with pytest.raises(StoreError, match="another version"):
        Store.open(path)
    with pytest.raises(StoreError, match="not a rotelab study"):
        Store.open(tmp_path)


def test_interrupted_study_keeps_finished_jobs(tmp_path):
    class Interrupt(Progress):
        def advance(self, epochs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotelab.diagnose("synthetic", "mlp", epochs=3, seeds=1, runs_dir=tmp_path, progress=Interrupt())
    (study,) = list(tmp_path.iterdir())
    assert Store.open(study).jobs() == []          # nothing half-recorded
    assert not list((study / "jobs").glob("*.npz"))
    r = rotelab.diagnose("synthetic", "mlp", epochs=3, seeds=1, runs_dir=tmp_path)
    assert len(Store.open(study).jobs()) == 1 and np.isfinite(r.final["val_loss"])


def test_to_dict_is_strict_json_when_a_curve_is_nan():
    """A split without examples gives NaN curves; --json must still be valid JSON (NaN -> null)."""
    import json
    import math

    from rotelab.studies.diagnose import DiagnoseResult

    r = DiagnoseResult(study_dir="x", dataset={}, model="mlp", epochs=[1], curves={"test_acc": [math.nan]},
                       curves_std={"test_acc": [math.nan]}, verdict="healthy", severity="", onset_epoch=None,
                       signs={}, final={"test_acc": math.nan}, seeds=1, vectorized=True, seconds=0.1)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["final"]["test_acc"] is None and d["curves"]["test_acc"] == [None]


def test_a_test_split_from_another_distribution_is_named_not_counted(tmp_path):
    """As with the IDX files of another writer: the test set differs; its gap is not memorization."""
    import numpy as np

    import rotelab
    from rotelab.data import make_dataset

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 8))
    y, yt = np.arange(300) % 3, np.arange(150) % 3
    x = centers[y] + rng.normal(size=(300, 8))
    xt = centers[yt] + rng.normal(size=(150, 8)) + rng.normal(0, 4, size=(1, 8))  # shifted writers
    r = rotelab.diagnose(make_dataset("shifted", x, y, xt, yt), "mlp", epochs=20, runs_dir=tmp_path)
    assert r.final["val_acc"] - r.final["test_acc"] > 0.05
    assert r.test_shift and "test set differs from the training distribution" in r.note
    assert r.signs["poor_on_new_data"] is False and "not counted" in r.evidence["poor_on_new_data"]["text"]


def test_label_noise_is_not_mistaken_for_a_shifted_test_split(tmp_path):
    """Validation is scored on the clean labels, as the test split is (and as compare does): 30%
    flipped labels used to read as validation 52% vs test 76%, 'a test set from another
    distribution', and dropped the third sign."""
    r = rotelab.diagnose("digits", "mlp", epochs=80, seeds=2, label_noise=0.3, runs_dir=tmp_path)
    assert abs(r.final["val_acc"] - r.final["test_acc"]) < 0.05 and r.final["val_acc"] > 0.6
    assert not r.test_shift and r.signs["poor_on_new_data"]
    assert r.verdict == "memorizing" and r.final["train_acc"] > 0.9  # the flipped labels were fitted
