"""A CSV (or TSV) table of numeric features with one label column, read with pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rotelab.data.dataset import Dataset, make_dataset
from rotelab.errors import InvalidInputError

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def _first_bad_row(mask) -> int:
    """1-based line number in the file (the header is line 1) of the first True in ``mask``."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + 2


def _shorten(names, limit: int = 12) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (f", … ({len(names)} columns)" if len(names) > limit else "")


def _check_feature_columns(df, features: list[str], path: Path) -> None:
    """Every feature column numeric (numeric strings are converted in place) and finite."""
    import pandas as pd

    for c in features:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            numeric = pd.to_numeric(col, errors="coerce")
            bad = numeric.isna() & col.notna()
            if bad.any():
                line = _first_bad_row(bad)
                raise InvalidInputError(
                    f"{path}: feature column {c!r} is not numeric (e.g. {str(col.iloc[line - 2])!r} on line "
                    f"{line}); encode it as numbers or drop the column"
                )
            col = df[c] = numeric  # mixed numbers and numeric strings
        missing = col.isna() | ~np.isfinite(col.to_numpy(dtype=np.float64))
        if missing.any():
            raise InvalidInputError(
                f"{path}: feature column {c!r} has {int(missing.sum())} empty, NaN or infinite cell(s) "
                f"(first on line {_first_bad_row(missing)}); fill or drop them"
            )


def _class_labels(labels, label_column: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct label values (K,), int64 class index of each row (n,))."""
    import pandas as pd

    if labels.isna().any():
        raise InvalidInputError(
            f"{path}: label column {label_column!r} has {int(labels.isna().sum())} empty cell(s) "
            f"(first on line {_first_bad_row(labels.isna())})"
        )
    if pd.api.types.is_float_dtype(labels):
        fractional = labels.to_numpy() != np.round(labels.to_numpy())
        if fractional.any():
            raise InvalidInputError(
                f"{path}: label column {label_column!r} holds fractions (line {_first_bad_row(fractional)}); "
                "expected class labels"
            )
        labels = labels.astype(np.int64)
    elif not (pd.api.types.is_integer_dtype(labels) or pd.api.types.is_bool_dtype(labels)):
        labels = labels.astype(str)
    values, y = np.unique(labels.to_numpy(), return_inverse=True)
    return values, y.astype(np.int64)


def load_csv(path: str | Path, *, label_column: str = "label") -> Dataset:
    """Load a table with a header row: ``label_column`` holds the labels, every other column a feature.

    Features must be numeric with no empty cells and become float32 (D,) vectors. Labels may be
    numbers or strings; the sorted distinct values become the class names, in that order
    (labels 0..K-1 therefore keep their meaning). A ``.tsv`` is read tab-separated. A
    stratified 20% becomes the test split.

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
            f"{path}: no label column {label_column!r}; found columns {_shorten(columns)}; "
            "pass label_column= (--label-column) to name it"
        )
    features = [c for c in columns if c != label_column]
    if not features:
        raise InvalidInputError(f"{path}: no feature columns besides the label column {label_column!r}")
    if df.empty:
        raise InvalidInputError(f"{path}: the table has a header but no rows")
    _check_feature_columns(df, features, path)
    values, y = _class_labels(df[label_column], label_column, path)
    x = df[features].to_numpy(dtype=np.float32)
    rows = np.arange(len(df), dtype=np.int64)  # read_csv numbers the data rows 0..n-1 (its RangeIndex)
    ds = make_dataset(path.name, x, y, classes=[str(v) for v in values], kind="vector",
                      description=f"CSV table, {len(features)} numeric features, label column {label_column!r}, "
                                  f"from {path}", train_ids=rows, id_kind="row", id_sources=(str(path), str(path)))
    return ds.with_(info={"format": "csv", "path": str(path), "label_column": label_column,
                          "test_split": "held out 20%", "feature_columns": features})
