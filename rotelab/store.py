"""The ``runs/<study>/`` directory: SQLite for the index, one .npz per finished job.

Every write is atomic (temporary file, then ``os.replace``; the SQLite row last), so an
interrupted study keeps every finished job and a rerun trains only what is missing.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.errors import StoreError

FORMAT_VERSION = 1
STUDY_FILE = "study.json"
RESULT_FILE = "result.json"
INDEX_FILE = "store.sqlite"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def jsonable(obj: Any) -> Any:
    """NaN -> None (JSON has no NaN), numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


class Store:
    """One study's directory. Create with :meth:`create`, read an existing one with :meth:`open`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path / INDEX_FILE)
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, label TEXT, n_members INTEGER,"
            " seconds REAL, created REAL, file TEXT)"
        )
        self._db.commit()

    # ── opening ───────────────────────────────────────────────────────────────────────
    @classmethod
    def create(cls, path: str | Path, study: dict) -> "Store":
        """Create (or reopen for resuming) the study directory and record its config."""
        path = Path(path)
        existing = (path / STUDY_FILE).exists()
        if existing:
            store = cls.open(path)
        else:
            (path / "jobs").mkdir(parents=True, exist_ok=True)
            store = cls(path)
            store._db.execute("INSERT OR REPLACE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
            store._db.commit()
        atomic_write_json(path / STUDY_FILE, {"format_version": FORMAT_VERSION, **study})
        return store

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        """Open an existing study; a missing file or another format version is a StoreError."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"{path}: no such study directory")
        for name in (STUDY_FILE, INDEX_FILE):
            if not (path / name).is_file():
                raise StoreError(f"{path}: not a rotelab study (missing {name}); rerun the study command")
        try:
            study = json.loads((path / STUDY_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path / STUDY_FILE}: unreadable ({exc}); rerun the study command") from None
        version = study.get("format_version") if isinstance(study, dict) else None
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{path}: written by another version of rotelab (format {version}, this one reads "
                f"{FORMAT_VERSION}); rerun the study with this version"
            )
        try:
            return cls(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path / INDEX_FILE}: unreadable ({exc})") from None

    def close(self) -> None:
        self._db.close()

    # ── study-level files ─────────────────────────────────────────────────────────────
    def read_json(self, name: str = STUDY_FILE) -> dict:
        try:
            return json.loads((self.path / name).read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.path}: missing {name}; the study has not finished, rerun it") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path / name}: unreadable ({exc})") from None

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.path / name, obj)
        return self.path / name

    # ── jobs ──────────────────────────────────────────────────────────────────────────
    def has(self, key: str) -> bool:
        row = self._db.execute("SELECT file FROM jobs WHERE key = ?", (key,)).fetchone()
        return row is not None and (self.path / row[0]).is_file()

    def save(self, key: str, label: str, arrays: dict[str, np.ndarray]) -> None:
        rel = f"jobs/{key}.npz"
        tmp = self.path / "jobs" / f".{key}.tmp{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path / rel)
        k = int(np.asarray(arrays["pred"]).shape[0]) if "pred" in arrays else 0
        self._db.execute(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
            (key, label, k, float(arrays.get("seconds", 0.0)), time.time(), rel),
        )
        self._db.commit()

    def load(self, key: str) -> dict[str, np.ndarray]:
        row = self._db.execute("SELECT file FROM jobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: job {key} is not recorded; rerun the study")
        try:
            with np.load(self.path / row[0], allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / row[0]}: unreadable job file ({exc}); delete it and rerun") from None

    def jobs(self) -> list[tuple[str, str, int, float]]:
        return self._db.execute("SELECT key, label, n_members, seconds FROM jobs ORDER BY created").fetchall()
