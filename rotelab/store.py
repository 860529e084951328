"""The ``runs/<study>/`` directory: SQLite for the index, one .npz per finished job.

Every write is atomic (temporary file, then ``os.replace``; the SQLite row last), so an
interrupted study keeps every finished job and a rerun trains only what is missing.

Several drivers may share one study (two ``rotelab`` commands, or a restarted one): each job
is leased (table ``leases``: owner ``host:pid``, its process's start time, a heartbeat) by the
driver that trains it, inside a ``BEGIN IMMEDIATE`` transaction, and the others wait for it or
skip it. A lease expires when its heartbeat is older than :data:`LEASE_SECONDS`, or at once
when its owner ran on this host and that process is gone. Table ``trained`` logs one row per
finished training, written with the job's row, so a study's directory shows that no job was
trained twice.

Jobs are content-keyed (:meth:`rotelab.plan.Job.key`), so a study may take a finished job from
another study of the same runs directory instead of training it
(:meth:`Store.copy_from_other_studies`). Table ``origins`` makes that safe: written with each
job's row, it records the SHA-256 of the job file and the platform that trained it (rotelab and
torch versions, device); a job is taken only with the same key and platform and a file whose
bytes hash to what its study recorded, hard-linked (or copied) into this study and renamed into
place. The other study is only read, through a read-only connection.

Faults are handled in one line each, never with a traceback: a job file that cannot be read
is set aside (``jobs/<key>.npz.corrupt``) and trained again (:meth:`Store.load_or_discard`);
an unreadable ``study.json`` beside our own index is rewritten from the new config (it is
derived data; the jobs are kept); a directory that is not ours, or was written by another
format version, is refused with a :class:`~rotelab.errors.StoreError` and never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import sqlite3
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rotelab.errors import RotelabWarning, StoreError

FORMAT_VERSION = 1
STUDY_FILE = "study.json"
RESULT_FILE = "result.json"
INDEX_FILE = "store.sqlite"
CORRUPT_SUFFIX = ".corrupt"
#: A lease whose heartbeat is older than this (seconds) has expired, whoever holds it.
LEASE_SECONDS = 60.0
#: How long a write waits for another process's transaction on the index (seconds).
BUSY_SECONDS = 60.0

#: Receives one line naming a file rotelab found damaged and what it did about it.
Warn = Callable[[str], None]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, label TEXT, n_members INTEGER,"
    " seconds REAL, created REAL, file TEXT);"
    "CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT, host TEXT, pid INTEGER,"
    " started TEXT, claimed REAL, heartbeat REAL, taken_from TEXT);"
    "CREATE TABLE IF NOT EXISTS trained (key TEXT, owner TEXT, claimed REAL, saved REAL, taken_from TEXT);"
    # added after format 1 (a store without it gets it on opening; a rotelab without it ignores it)
    "CREATE TABLE IF NOT EXISTS origins (key TEXT PRIMARY KEY, sha256 TEXT, platform TEXT, copied_from TEXT,"
    " saved REAL);"
)
#: What reading a damaged .npz raises: truncated (BadZipFile), empty (EOFError), bad CRC, bad header.
_UNREADABLE = (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, zlib.error)


class StoreWarning(RotelabWarning):
    """A damaged file in a study directory that rotelab repaired; the message names it."""


def _warn(message: str) -> None:
    """The default ``on_warning``: a Python warning, for callers that pass no callback."""
    warnings.warn(message, StoreWarning, stacklevel=3)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


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


# ══ who holds a job ════════════════════════════════════════════════════════════════════
def _process_start(pid: int) -> str | None:
    """When process ``pid`` of this host started (clock ticks after boot, from /proc), "" where
    there is no /proc, None when it is not running (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "pid (name)": state ... starttime
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (macOS): ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Owner:
    """A driver process: host, pid and the process's start time (so a reused pid is not it)."""

    host: str
    pid: int
    started: str

    @classmethod
    def this_process(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()) or "")

    @property
    def token(self) -> str:
        """What the ``leases`` and ``trained`` tables record as the owner."""
        return f"{self.host}:{self.pid}:{self.started}"

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    def gone(self) -> bool:
        """True when this owner ran on this host and its process is no longer running; False for
        a live one and for one on another host (only its heartbeat tells)."""
        if self.host != socket.gethostname():
            return False
        started = _process_start(self.pid)
        return started is None or bool(self.started and started and started != self.started)


def lease_expired(host: str, pid: int, started: str, heartbeat: float, *, now: float | None = None) -> bool:
    """A lease's expiry rule: heartbeat older than :data:`LEASE_SECONDS`, or its owner gone."""
    now = time.time() if now is None else now
    return heartbeat < now - LEASE_SECONDS or Owner(host, int(pid), started or "").gone()


#: What :meth:`Store.claim` found: the job is now ours, already stored, or held by a live driver.
Claim = Literal["claimed", "done", "held"]


def _connect_read_only(index: Path) -> sqlite3.Connection:
    """A connection that cannot create or change the file; read-write only when SQLite must
    first roll back a hot journal left by a crashed writer (it refuses that read-only)."""
    uri = index.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        db.close()
        if "readonly" not in str(exc).replace("-", "").replace(" ", ""):
            raise
        db = sqlite3.connect(f"{uri}?mode=rw", uri=True)
    return db


def _index_format(index: Path) -> str | None:
    """The format version a ``store.sqlite`` records, read without writing to it; None for an
    empty database (a creation that was interrupted). StoreError when the file is not ours."""
    refuse = f"{index}: not a rotelab index"
    fix = "rotelab will not touch it; choose another --runs-dir or move that directory"
    try:
        db = _connect_read_only(index)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return None
            if not {"meta", "jobs"} <= tables:
                raise StoreError(f"{refuse} (tables {', '.join(sorted(tables))}); {fix}")
            row = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{refuse} ({exc}); {fix}") from None
    if row is None:
        raise StoreError(f"{refuse} (no format version recorded); {fix}")
    return str(row[0])


def _check_version(version: Any, where: Path) -> None:
    """StoreError unless ``version`` (from study.json or the index) is this :data:`FORMAT_VERSION`."""
    try:
        number = int(version) if not isinstance(version, bool) else None
    except (TypeError, ValueError):
        number = None
    if number == FORMAT_VERSION:
        return
    if number is not None and number > FORMAT_VERSION:
        got = f"format {version!r}, newer than the {FORMAT_VERSION} this one reads"
    else:
        got = f"format {version!r}; this one reads {FORMAT_VERSION}"
    raise StoreError(
        f"{where}: written by another version of rotelab ({got}); open it with the rotelab that wrote it, "
        "or choose another --runs-dir; it is left untouched"
    )


def _leftovers(path: Path) -> list[str]:
    """Names in ``path`` that an interrupted creation would not have left (anything but an empty
    index, an empty ``jobs/`` and our temporary files)."""
    ours = {INDEX_FILE, f"{INDEX_FILE}-journal"}
    names = []
    for p in sorted(path.iterdir()):
        if p.name in ours or p.name.startswith(f".{STUDY_FILE}.tmp"):
            continue
        if p.name == "jobs" and p.is_dir() and not any(p.iterdir()):
            continue
        names.append(p.name + ("/" if p.is_dir() else ""))
    return names


def _new_index(path: Path) -> None:
    """Create ``store.sqlite`` with its tables and format version in one transaction."""
    db = sqlite3.connect(path / INDEX_FILE)
    try:
        db.executescript(
            f"BEGIN; {_SCHEMA} INSERT OR REPLACE INTO meta VALUES ('format_version', '{FORMAT_VERSION}'); COMMIT;"
        )
    finally:
        db.close()


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, fully read (so a bad CRC shows here, not later)."""
    with np.load(file, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _prepare_directory(path: Path, on_warning: Warn) -> None:
    """Make ``path`` ready for :meth:`Store.create`: a new (or empty) directory gets a fresh index;
    our own study keeps its index and jobs; anything else is refused, untouched."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path}: is a file, not a study directory; choose another --runs-dir")
    index = path / INDEX_FILE
    version = _index_format(index) if index.is_file() else None
    if version is None:
        extra = _leftovers(path) if path.is_dir() else []
        if extra:
            raise StoreError(
                f"{path}: not a rotelab study (no {INDEX_FILE}; it holds {', '.join(extra[:5])}"
                f"{', …' if len(extra) > 5 else ''}); rotelab writes only into an empty directory or its own "
                "study: choose another --runs-dir, or move those files"
            )
        try:
            (path / "jobs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder of the path should be, no permission
            raise StoreError(f"{path}: cannot create the study directory ({_one_line(exc)}); choose another "
                             "--runs-dir") from None
        _new_index(path)
        return
    _check_version(version, index)
    study_file = path / STUDY_FILE
    if study_file.exists():
        try:
            study = json.loads(study_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            on_warning(f"{study_file}: unreadable ({_one_line(exc)}); written again from this run's config, "
                       "the stored jobs are kept")
        else:
            _check_version(study.get("format_version") if isinstance(study, dict) else None, study_file)
    (path / "jobs").mkdir(exist_ok=True)


class Store:
    """One study's directory. Create with :meth:`create`, read an existing one with :meth:`open`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = _connect(self.path / INDEX_FILE)
        self._db.executescript(_SCHEMA)  # adds the tables a store of an earlier release lacks
        self._elsewhere: tuple[str, dict[str, list[_Finished]]] | None = None  # other studies' jobs, read once

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock first, so that two drivers cannot
        both read a job as free and both claim it; rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        finally:  # an error, or Ctrl-C even between the body and the COMMIT: nothing half-recorded
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    # ── opening ───────────────────────────────────────────────────────────────────────
    @classmethod
    def create(cls, path: str | Path, study: dict, *, on_warning: Warn | None = None) -> "Store":
        """Create (or reopen for resuming) the study directory and record its config.

        A new or empty directory becomes a study; our own study is reopened with its jobs,
        and its ``study.json`` rewritten from ``study`` (one line to ``on_warning`` when the old
        one was unreadable). A file, a directory holding other files, an index that is not
        rotelab's, or another format version is a StoreError, and nothing is written there.
        ``on_warning`` defaults to a :class:`StoreWarning`.
        """
        path = Path(path)
        _prepare_directory(path, on_warning or _warn)
        _remove_stale_temporaries(path / "jobs")
        store = cls(path)
        atomic_write_json(path / STUDY_FILE, {"format_version": FORMAT_VERSION, **study})
        return store

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        """Open an existing study to read it. A missing or unreadable file, an index that is not
        rotelab's or another format version is a StoreError naming the file; nothing is written."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"{path}: no such study directory")
        for name in (STUDY_FILE, INDEX_FILE):
            if not (path / name).is_file():
                raise StoreError(f"{path}: not a rotelab study (missing {name}); rerun the study command")
        version = _index_format(path / INDEX_FILE)
        if version is None:
            raise StoreError(f"{path / INDEX_FILE}: an empty index (the study never started); rerun the study command")
        _check_version(version, path / INDEX_FILE)
        try:
            study = json.loads((path / STUDY_FILE).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(
                f"{path / STUDY_FILE}: unreadable ({_one_line(exc)}); rerun the study command, which rewrites it "
                "and keeps the stored jobs"
            ) from None
        _check_version(study.get("format_version") if isinstance(study, dict) else None, path)
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
            fix = f"rerun the study (rotelab run {self.path / 'study.toml'})" if name != STUDY_FILE else "rerun the study"
            raise StoreError(f"{self.path / name}: unreadable ({exc}); {fix}") from None

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.path / name, obj)
        return self.path / name

    # ── jobs ──────────────────────────────────────────────────────────────────────────
    def _file_of(self, key: str) -> Path | None:
        row = self._db.execute("SELECT file FROM jobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self.path / row[0]

    def has(self, key: str) -> bool:
        """True when job ``key`` is recorded and its file is there and looks whole (a zip with its
        directory: a truncated file fails this). Cheap: the arrays are not read, so damage inside
        the file shows only in :meth:`load_or_discard`."""
        file = self._file_of(key)
        return file is not None and file.is_file() and zipfile.is_zipfile(file)

    def save(self, key: str, label: str, arrays: dict[str, np.ndarray], *, owner: Owner | None = None,
             platform: str | None = None) -> None:
        """Record job ``key``: its file first (temporary file, fsync, rename), then, in one
        transaction, its row, its ``origins`` row (the file's SHA-256 and ``platform``, what
        trained it: None where not known, and then no other study takes it), a row in ``trained``
        and the end of ``owner``'s lease on it. A process killed before that commit leaves the
        job unrecorded: it is trained again."""
        rel = f"jobs/{key}.npz"
        tmp = self.path / "jobs" / f".{key}.tmp{os.getpid()}.npz"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # on disk before the index says so
        sha = _sha256(tmp)
        os.replace(tmp, self.path / rel)
        k = int(np.asarray(arrays["pred"]).shape[0]) if "pred" in arrays else 0
        now, token = time.time(), owner.token if owner is not None else ""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                       (key, label, k, float(arrays.get("seconds", 0.0)), now, rel))
            db.execute("INSERT OR REPLACE INTO origins VALUES (?, ?, ?, NULL, ?)", (key, sha, platform, now))
            lease = db.execute("SELECT claimed, taken_from FROM leases WHERE key = ? AND owner = ?",
                               (key, token)).fetchone() or (None, None)
            db.execute("INSERT INTO trained VALUES (?, ?, ?, ?, ?)", (key, token, lease[0], now, lease[1]))
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, token))

    def load(self, key: str) -> dict[str, np.ndarray]:
        """The arrays of job ``key``; a StoreError naming the file when it is missing or unreadable.
        Executors use :meth:`load_or_discard`, which retrains such a job instead."""
        file = self._file_of(key)
        if file is None:
            raise StoreError(f"{self.path}: job {key} is not recorded; rerun the study")
        try:
            return _read_npz(file)
        except _UNREADABLE as exc:
            raise StoreError(
                f"{file}: unreadable job file ({_one_line(exc)}); rerun the study to train it again"
            ) from None

    def load_or_discard(self, key: str, *, on_warning: Warn | None = None) -> dict[str, np.ndarray] | None:
        """The arrays of job ``key``, or None when it must be trained (again): not recorded, its file
        gone, or its file unreadable (truncated, corrupt).

        An unreadable file is never used: it is named in one line to ``on_warning`` (default: a
        :class:`StoreWarning`), moved aside to ``jobs/<key>.npz.corrupt`` and its record deleted, so
        :meth:`has` is False and the next :meth:`save` of the key records the retrained job.
        """
        file = self._file_of(key)
        if file is None:
            return None
        if not file.is_file():
            self._forget(key)
            return None
        try:
            return _read_npz(file)
        except _UNREADABLE as exc:
            aside = file.with_name(file.name + CORRUPT_SUFFIX)
            try:
                os.replace(file, aside)
                done = f"moved to {aside.relative_to(self.path)}"
            except OSError as move_error:
                done = f"could not move it aside ({_one_line(move_error)})"
            self._forget(key)
            (on_warning or _warn)(f"{file}: unreadable job file ({_one_line(exc)}); {done}, it will be trained again")
            return None

    def _forget(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE key = ?", (key,))
            db.execute("DELETE FROM origins WHERE key = ?", (key,))

    # ── jobs finished by other studies of the same runs directory ─────────────────────
    def copy_from_other_studies(self, jobs: Sequence[tuple[str, str]], *, platform: str | None) -> dict[str, str]:
        """Take the jobs ``(key, label)`` this study lacks from the other studies beside it
        (the same runs directory) that finished them; returns ``{key: that study's name}``.

        A job is taken only when the other study recorded it with the same key, trained on the
        same ``platform`` (rotelab and torch versions and device, as this run would train it;
        None takes nothing) and its file's bytes hash to the SHA-256 recorded beside it: a
        damaged file, one being replaced, one written by a rotelab without ``origins`` or by
        another format, and a directory that is not a rotelab study are passed over, and the job
        is trained here. The file is hard-linked (a copy on another file system) to a temporary
        name here, checked, and renamed into place; then its row is written. The other study is
        only read. Its jobs are indexed once per :class:`Store` (one read-only query a study),
        so a runs directory of hundreds of studies costs one pass.
        """
        wanted = [(key, label) for key, label in jobs if not self.has(key)]
        if platform is None or not wanted:
            return {}
        found = self._other_studies(platform)
        copied: dict[str, str] = {}
        for key, label in wanted:
            for there in found.get(key, ()):
                if self._copy_job(key, label, there, platform):
                    copied[key] = there.study.name
                    break
        return copied

    def _other_studies(self, platform: str) -> dict[str, list["_Finished"]]:
        """Key -> the finished jobs of that key on ``platform`` in the other studies, by study name."""
        if self._elsewhere is None or self._elsewhere[0] != platform:
            found: dict[str, list[_Finished]] = {}
            own = self.path.resolve()
            try:
                studies = sorted(self.path.parent.iterdir())
            except OSError:
                studies = []
            for path in studies:
                if path.name.startswith(".") or not path.is_dir() or path.resolve() == own:
                    continue
                for key, finished in _finished_jobs(path, platform):
                    found.setdefault(key, []).append(finished)
            self._elsewhere = (platform, found)
        return self._elsewhere[1]

    def _copy_job(self, key: str, label: str, there: "_Finished", platform: str) -> bool:
        """Job ``key`` from ``there`` into this study; False (nothing left behind) when its file
        is missing or its bytes are not the ones its study recorded."""
        rel = f"jobs/{key}.npz"
        tmp = self.path / "jobs" / f".{key}.tmp{os.getpid()}.npz"
        try:
            _link_or_copy(there.study / rel, tmp)
            if _sha256(tmp) != there.sha256:  # damaged, or replaced since its row was written
                tmp.unlink()
                return False
            os.replace(tmp, self.path / rel)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                       (key, label, there.n_members, there.seconds, now, rel))
            db.execute("INSERT OR REPLACE INTO origins VALUES (?, ?, ?, ?, ?)",
                       (key, there.sha256, platform, there.study.name, now))
        return True

    def copied(self) -> list[tuple[str, str]]:
        """``(key, study)`` of each stored job taken from another study, in order."""
        return self._db.execute("SELECT o.key, o.copied_from FROM origins o JOIN jobs j ON j.key = o.key "
                                "WHERE o.copied_from IS NOT NULL ORDER BY o.saved").fetchall()

    def jobs(self) -> list[tuple[str, str, int, float]]:
        return self._db.execute("SELECT key, label, n_members, seconds FROM jobs ORDER BY created").fetchall()

    def untouched(self) -> bool:
        """True when no job is stored and no driver holds a lease: a study nothing has worked on."""
        return not self._db.execute("SELECT 1 FROM jobs UNION ALL SELECT 1 FROM leases LIMIT 1").fetchone()

    # ── leases: several drivers, one study ────────────────────────────────────────────
    def claim(self, key: str, owner: Owner) -> Claim:
        """Lease job ``key`` to ``owner`` unless it is stored ("done") or another driver's
        lease on it is live ("held"). An expired lease is taken over (``taken_from`` records
        whose it was); ``owner``'s own lease is renewed. One ``BEGIN IMMEDIATE`` transaction."""
        with self._transaction() as db:
            if self.has(key):
                return "done"
            row = db.execute("SELECT owner, host, pid, started, heartbeat, taken_from FROM leases WHERE key = ?",
                             (key,)).fetchone()
            if row is not None and row[0] != owner.token and not lease_expired(*row[1:5]):
                return "held"
            taken_from = row[5] if row is not None and row[0] == owner.token else (row[0] if row else None)
            now = time.time()
            db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (key, owner.token, owner.host, owner.pid, owner.started, now, now, taken_from))
        return "claimed"

    def holders(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Each key's live lease holder (``host:pid``), or None where no live lease is held."""
        out: dict[str, str | None] = {}
        for key in keys:
            row = self._db.execute("SELECT host, pid, started, heartbeat FROM leases WHERE key = ?", (key,)).fetchone()
            out[key] = None if row is None or lease_expired(*row) else f"{row[0]}:{row[1]}"
        return out

    def heartbeat(self, owner: Owner) -> int:
        """Renew every lease ``owner`` holds; returns how many."""
        with self._transaction() as db:
            return db.execute("UPDATE leases SET heartbeat = ? WHERE owner = ?", (time.time(), owner.token)).rowcount

    def release(self, owner: Owner) -> None:
        """End every lease ``owner`` holds (a driver that stops: its unfinished jobs are free)."""
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner.token,))

    def trained(self) -> list[tuple[str, str, float | None, float, str | None]]:
        """The training log: (key, owner, claimed, saved, taken_from) per finished training, in order."""
        return self._db.execute("SELECT key, owner, claimed, saved, taken_from FROM trained ORDER BY rowid").fetchall()


@dataclass(frozen=True)
class _Finished:
    """A finished job of another study: where, its file's SHA-256 and its row's numbers."""

    study: Path
    sha256: str
    n_members: int
    seconds: float


def _finished_jobs(path: Path, platform: str) -> list[tuple[str, _Finished]]:
    """The jobs study ``path`` finished on ``platform`` with a recorded hash, read through a
    read-only connection; [] for anything that is not a study of this format (no index, no
    ``study.json``, another format version, an index without ``origins``, one that cannot be
    read or is locked for more than a second). Nothing there is written."""
    index, study_file = path / INDEX_FILE, path / STUDY_FILE
    if not (index.is_file() and study_file.is_file()):
        return []
    try:
        study = json.loads(study_file.read_text())
        _check_version(study.get("format_version") if isinstance(study, dict) else None, study_file)
        db = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "jobs", "origins"} <= tables:
                return []
            version = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
            _check_version(version[0] if version else None, index)
            rows = db.execute(
                "SELECT o.key, o.sha256, j.n_members, j.seconds FROM origins o JOIN jobs j ON j.key = o.key "
                "WHERE o.platform = ? AND o.sha256 IS NOT NULL AND j.file = 'jobs/' || o.key || '.npz'",
                (platform,)).fetchall()
        finally:
            db.close()
    except (OSError, UnicodeDecodeError, ValueError, sqlite3.Error, StoreError):
        return []
    return [(str(key), _Finished(path, str(sha), int(k or 0), float(s or 0.0))) for key, sha, k, s in rows]


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or a copy (fsynced) where links do not work
    (another file system); an OSError when ``source`` cannot be read."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())


def _connect(index: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see ``Store._transaction``)
    that waits up to :data:`BUSY_SECONDS` for another process's write."""
    return sqlite3.connect(index, timeout=BUSY_SECONDS, isolation_level=None)


def _remove_stale_temporaries(jobs: Path) -> None:
    """Delete job files a killed driver left half-written (``.<key>.tmp<pid>.npz``): those of a
    process of this host that is gone and older than a lease, so no live writer's file."""
    if not jobs.is_dir():
        return
    for tmp in jobs.glob(".*.tmp*.npz"):
        pid = tmp.name.rsplit(".tmp", 1)[1].removesuffix(".npz")
        try:
            old = tmp.stat().st_mtime < time.time() - LEASE_SECONDS
        except FileNotFoundError:
            continue
        if pid.isdigit() and _process_start(int(pid)) is None and old:
            tmp.unlink(missing_ok=True)
