"""The user's own data, traced back: every per-example output names the user's file, row or
index, and a deliberately mislabeled example is found under its own id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import rotelab

FAST = dict(models=32, epochs=40, width=32, batch_size=32, device="cpu")
WRONG = (5, 77, 150)  # positions in the source given the other class


@pytest.fixture(scope="module")
def digits01():
    """Digits 0 and 1 (easy to tell apart), with three of them given the wrong label."""
    d = load_digits(n_class=2)
    y = d.target.copy()
    y[list(WRONG)] = 1 - y[list(WRONG)]
    return d.images.astype(np.float32) / 16.0, y


def _check(m, label_at, ids_of_wrong):
    """Every row's given label equals the label at its id in the source; the wrong ones top the list."""
    df = m.scores["baseline"]
    assert all(label_at(i) == g for i, g in zip(df["id"], df["given_label"]))
    csv = pd.read_csv(Path(m.study_dir) / m.files["baseline"]["scores_csv"])
    assert [str(v) for v in csv["id"]] == [str(v) for v in df["id"]]
    in_pool = [i for i in ids_of_wrong if i in set(df["id"])]
    assert len(in_pool) >= 2  # the rest went to the held-out test split
    top = list(m.top(len(in_pool) + 2)["id"])
    assert set(in_pool) <= set(top), (in_pool, top)
    for row in m.summaries["baseline"]["top_memorized"][: len(in_pool)]:
        assert row["id"] in in_pool


def test_an_image_folder_is_named_by_file_path(tmp_path, digits01):
    x, y = digits01
    for i, (img, label) in enumerate(zip(x, y)):
        folder = tmp_path / "scans" / ("zero" if label == 0 else "one")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8), mode="L").save(folder / f"s{i:03d}.png")
    m = rotelab.memorization(str(tmp_path / "scans"), "mlp", runs_dir=tmp_path / "runs", **FAST)
    assert m.dataset["id_kind"] == "path"
    _check(m, lambda p: ["one", "zero"].index(p.split("/")[0]),
           [f"{'zero' if y[i] == 0 else 'one'}/s{i:03d}.png" for i in WRONG])
    # the tables name each class as the folder does, beside rotelab's label index
    csv = pd.read_csv(Path(m.study_dir) / m.files["baseline"]["scores_csv"], keep_default_na=False)
    assert list(csv["given_class"]) == [p.split("/")[0] for p in csv["id"]]
    assert set(csv["predicted_class"]) <= {"zero", "one"}
    for row in m.summaries["baseline"]["top_memorized"]:
        assert row["given_class"] == row["id"].split("/")[0]


def test_a_csv_is_named_by_row(tmp_path, digits01):
    x, y = digits01
    df = pd.DataFrame(x.reshape(len(x), -1), columns=[f"px{j}" for j in range(64)])
    df["target"] = y
    df.to_csv(tmp_path / "digits.csv", index=False)
    m = rotelab.memorization(str(tmp_path / "digits.csv"), "mlp", label_column="target", runs_dir=tmp_path / "runs",
                             **FAST)
    assert m.dataset["id_kind"] == "row"
    source = pd.read_csv(tmp_path / "digits.csv")
    _check(m, lambda row: int(source["target"].iloc[int(row)]), list(WRONG))


def test_python_arrays_are_named_by_index(tmp_path, digits01):
    x, y = digits01
    m = rotelab.memorization((x.reshape(len(x), -1), y), "mlp", runs_dir=tmp_path / "runs", **FAST)
    assert m.dataset["id_kind"] == "index"
    _check(m, lambda i: int(y[int(i)]), list(WRONG))
