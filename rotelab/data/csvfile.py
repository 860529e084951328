"""A CSV (or TSV) table of numeric features with one label column, read with pandas."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def _first_bad(mask, path: Path) -> tuple[int, str]:
    """(0-based data row, "line N" in the file) of the first True in ``mask`` (n_rows,).

    N is the real 1-based line (the header's line counted), found by re-reading the file as
    pandas reads it: blank lines skipped, a quoted cell may span lines; only error messages need
    it, so the file is read again only then. If that reading does not find ``n_rows`` rows, the
    row is named as pandas numbers it instead of guessing a line."""
    import csv

    mask = np.asarray(mask)
    row = int(np.flatnonzero(mask)[0])
    starts, previous = [], 0
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=CSV_SUFFIXES.get(path.suffix.lower(), ","))
            for record in reader:
                if len(record) > 1 or (record and record[0].strip()):  # pandas skips blank lines
                    starts.append(previous + 1)
                previous = reader.line_num
    except (OSError, csv.Error):
        starts = []
    if len(starts) == len(mask) + 1:  # the header, then one start line per data row
        return row, f"line {starts[row + 1]}"
    return row, f"data row {row} (pd.read_csv(path).iloc[{row}])"


def _shorten(names, limit: int = 12) -> str:
    """The first ``limit`` names and the last one (a label column is often last)."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[: limit - 1]) + f", …, {names[-1]} ({len(names)} columns)"


#: column names that usually hold the label, offered when the one asked for is not there
_LABEL_NAMES = ("label", "labels", "target", "class", "y", "category", "diagnosis", "species", "outcome")


def _label_hint(columns: list[str], asked: str) -> str:
    near = [c for c in columns if c.lower() in _LABEL_NAMES]
    near += [c for c in difflib.get_close_matches(asked, columns, n=2) if c not in near]
    return f"; did you mean {' or '.join(repr(c) for c in near[:2])}?" if near else ""


def _check_feature_columns(df, features: list[str], path: Path) -> None:
    """Every feature column numeric (numeric strings are converted in place) and finite."""
    import pandas as pd

    for c in features:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            numeric = pd.to_numeric(col, errors="coerce")
            bad = numeric.isna() & col.notna()
            if bad.any():
                row, where = _first_bad(bad, path)
                raise InvalidInputError(
                    f"{path}: feature column {c!r} is not numeric (e.g. {str(col.iloc[row])!r} on "
                    f"{where}); encode it as numbers or drop the column"
                )
            col = df[c] = numeric  # mixed numbers and numeric strings
        missing = col.isna() | ~np.isfinite(col.to_numpy(dtype=np.float64))
        if missing.any():
            raise InvalidInputError(
                f"{path}: feature column {c!r} has {int(missing.sum())} empty, NaN or infinite cell(s) "
                f"(first on {_first_bad(missing, path)[1]}); fill or drop them"
            )


def _class_labels(labels, label_column: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct label values (K,), int64 class index of each row (n,))."""
    import pandas as pd

    if labels.isna().any():
        raise InvalidInputError(
            f"{path}: label column {label_column!r} has {int(labels.isna().sum())} empty cell(s) "
            f"(first on {_first_bad(labels.isna(), path)[1]})"
        )
    if pd.api.types.is_float_dtype(labels):
        fractional = labels.to_numpy() != np.round(labels.to_numpy())
        if fractional.any():
            raise InvalidInputError(
                f"{path}: label column {label_column!r} holds fractions ({_first_bad(fractional, path)[1]}); "
                "expected class labels"
            )
        labels = labels.astype(np.int64)
    elif not (pd.api.types.is_integer_dtype(labels) or pd.api.types.is_bool_dtype(labels)):
        labels = labels.astype(str)
    values, y = np.unique(labels.to_numpy(), return_inverse=True)
    return values, y.astype(np.int64)


#: The name pandas gives a first column without a header name, as ``to_csv`` writes its index.
PANDAS_INDEX = "Unnamed: 0"


def _saved_index(df, label_column: str) -> str | None:
    """:data:`PANDAS_INDEX` when the first column is a pandas index saved by ``to_csv`` (no header
    name, distinct whole numbers), else None: as a feature it would let the models tell examples
    apart by their position in the file (and by their label, in a file sorted by label)."""
    import pandas as pd

    first = df.iloc[:, 0] if len(df.columns) else None
    if first is None or df.columns[0] != PANDAS_INDEX or label_column == PANDAS_INDEX:
        return None
    return PANDAS_INDEX if pd.api.types.is_integer_dtype(first) and first.is_unique else None


def load_csv(path: str | Path, *, label_column: str = "label") -> Dataset:
    """Load a table with a header row: ``label_column`` holds the labels, every other column a feature.

    Features must be numeric with no empty cells and become float32 (D,) vectors. Labels may be
    numbers or strings; the sorted distinct values become the class names, in that order
    (labels 0..K-1 therefore keep their meaning). A ``.tsv`` is read tab-separated. A
    stratified 20% becomes the test split. A first column that pandas' ``to_csv`` wrote as the
    index (no header name, so read as "Unnamed: 0", distinct whole numbers) is dropped, with a
    line in ``notes``: it numbers the rows and is not a feature. Errors name the file's real line
    (1-based, the header's line counted, blank lines too).

    Example ids (``id_kind="row"``) are 0-based data rows as pandas numbers them: row 0 is the
    first line after the header (``pd.read_csv(path).iloc[id]``, line ``id + 2`` of the file
    when it has no blank lines), in both the pool and the held-out test split.
    ``info["feature_columns"]`` lists the feature column names in feature order.
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, sep=CSV_SUFFIXES.get(path.suffix.lower(), ","))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable CSV file ({str(exc).strip()})") from None
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if label_column not in columns:
        raise InvalidInputError(
            f"{path}: no label column {label_column!r}; found columns {_shorten(columns)}"
            f"{_label_hint(columns, label_column)}; pass label_column= (--label-column) to name it"
        )
    index = _saved_index(df, label_column)
    features = [c for c in columns if c not in (label_column, index)]
    if not features:
        saved = f" (the first column, {index!r}, is a saved pandas index)" if index else ""
        raise InvalidInputError(f"{path}: no feature columns besides the label column {label_column!r}{saved}")
    if df.empty:
        raise InvalidInputError(f"{path}: the table has a header but no rows")
    _check_feature_columns(df, features, path)
    values, y = _class_labels(df[label_column], label_column, path)
    x = df[features].to_numpy(dtype=np.float32)
    rows = np.arange(len(df), dtype=np.int64)  # read_csv numbers the data rows 0..n-1 (its RangeIndex)
    ds = make_dataset(path.name, x, y, classes=[str(v) for v in values], kind="vector",
                      description=f"CSV table, {len(features)} numeric features, label column {label_column!r}, "
                                  f"from {path}", train_ids=rows, id_kind="row", id_sources=(str(path), str(path)))
    notes = () if index is None else (
        f"{path.name}: the first column {index!r} (no header name, distinct whole numbers) looks like a pandas "
        "index saved by to_csv; it was dropped, not used as a feature (write the file with to_csv(index=False) "
        "to silence this)",)
    return ds.with_(notes=ds.notes + notes, info={"format": "csv", "path": str(path), "label_column": label_column,
                                                  "test_split": "held out 20%", "feature_columns": features})
