"""Leases: one driver trains a job while the others skip or wait for it; a lease whose owner
died, or stopped beating, expires; concurrent claims from several processes never overlap."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from conftest import tiny_jobs
from executor_helpers import FAST, start_cli, trained_log
from rotelab.executors.driver import run_jobs
from rotelab.progress import Progress
from rotelab.store import LEASE_SECONDS, Owner, Store, lease_expired

CONFIG = {"kind": "test"}


def _arrays() -> dict[str, np.ndarray]:
    return {"pred": np.zeros((2, 5), np.int16), "seconds": np.float64(0.1)}


def _dead_owner() -> Owner:
    """The owner a driver of this host had before it was killed (its process is gone)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(f"/proc/{proc.pid}/stat") as f:
        started = f.read().rsplit(")", 1)[1].split()[19]
    proc.kill()
    proc.wait()
    return Owner(socket.gethostname(), proc.pid, started)


@pytest.fixture
def store(tmp_path):
    s = Store.create(tmp_path / "s", CONFIG)
    yield s
    s.close()


# ══ the rule ═══════════════════════════════════════════════════════════════════════════
def test_a_live_drivers_lease_holds_until_the_job_is_saved(store):
    me, other = Owner.this_process(), Owner("elsewhere", 4242, "1")
    assert store.claim("k1", other) == "claimed"
    assert store.claim("k1", me) == "held"
    assert store.holders(["k1", "k2"]) == {"k1": "elsewhere:4242", "k2": None}
    assert store.claim("k1", other) == "claimed"  # its holder renews it
    store.save("k1", "job 1", _arrays(), owner=other)
    assert store.claim("k1", me) == "done"  # stored: nobody trains it again
    assert store.holders(["k1"]) == {"k1": None}
    ((key, owner, claimed, saved, taken_from),) = store.trained()
    assert (key, owner, taken_from) == ("k1", other.token, None) and claimed <= saved


def test_a_lease_whose_owner_process_is_gone_is_taken_over_at_once(store):
    dead, me = _dead_owner(), Owner.this_process()
    assert dead.gone() and not me.gone()
    assert store.claim("k1", dead) == "claimed"  # as the killed driver had
    assert store.holders(["k1"]) == {"k1": None}
    assert store.claim("k1", me) == "claimed"
    store.save("k1", "job 1", _arrays(), owner=me)
    assert [(k, o, t) for k, o, _, _, t in store.trained()] == [("k1", me.token, dead.token)]


def test_a_reused_pid_or_a_zombie_is_not_the_owner():
    me = Owner.this_process()
    assert not me.gone()
    assert Owner(me.host, me.pid, "1").gone()  # same pid, another start time: another process
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)
    with open(f"/proc/{proc.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
    assert Owner(me.host, proc.pid, "").gone()
    proc.wait()


def test_a_lease_expires_when_its_heartbeat_is_older_than_the_lease(store):
    far = Owner("elsewhere", 1, "1")  # another host: only its heartbeat tells
    now = time.time()
    assert not lease_expired(far.host, far.pid, far.started, now - LEASE_SECONDS + 1, now=now)
    assert lease_expired(far.host, far.pid, far.started, now - LEASE_SECONDS - 1, now=now)
    assert store.claim("k1", far) == "claimed"
    store._db.execute("UPDATE leases SET heartbeat = heartbeat - ?", (LEASE_SECONDS + 1,))
    assert store.holders(["k1"]) == {"k1": None}
    assert store.heartbeat(far) == 1  # a beat renews it
    assert store.holders(["k1"]) == {"k1": "elsewhere:1"}
    store.release(far)
    assert store.holders(["k1"]) == {"k1": None} and store.claim("k1", Owner.this_process()) == "claimed"


_CLAIMER = """
import sys
from rotelab.store import Owner, Store
store, me = Store(sys.argv[1]), Owner.this_process()
keys = [f"k{i}" for i in range(40)]
if int(sys.argv[2]) % 2:
    keys.reverse()
won = [k for k in keys if store.claim(k, me) == "claimed"]
print(" ".join(won), flush=True)
sys.stdin.read()  # alive until told to stop: its leases stay live
"""


def test_concurrent_claims_from_six_processes_never_overlap(store):
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(store.path), str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in range(6)]
    won = [p.stdout.readline().split() for p in procs]
    for p in procs:
        p.communicate("")
    counts = Counter(k for keys in won for k in keys)
    assert sorted(counts) == sorted(f"k{i}" for i in range(40)) and set(counts.values()) == {1}


# ══ the driver ═════════════════════════════════════════════════════════════════════════
_HOLDER = """
import sys, time
from rotelab.store import Owner, Store
store, me = Store(sys.argv[1]), Owner.this_process()
for key in sys.argv[2:]:
    assert store.claim(key, me) == "claimed"
print(me.token, time.time(), flush=True)
time.sleep(3)  # holds the jobs for 3 s, then dies without saving them
"""


def test_the_driver_waits_for_jobs_a_live_driver_holds_and_takes_them_over_when_it_dies(store):
    jobs, ex = tiny_jobs(3)
    keys = [job.key(ex.fingerprint) for job in jobs]
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store.path), *keys[1:]], stdout=subprocess.PIPE,
                              text=True)
    token, held_at = holder.stdout.readline().split()
    out = run_jobs(jobs, ex, store=store, progress=Progress(), device="cpu")
    holder.wait()
    assert out.trained == 3 and all(r is not None for r in out)
    log = {key: (claimed, taken_from) for key, _, claimed, _, taken_from in store.trained()}
    assert log[keys[0]][1] is None  # free: trained at once
    for key in keys[1:]:  # held: trained only once the holder was gone, taken over from it
        assert log[key][1] == token and log[key][0] >= float(held_at) + 2.5


def test_the_driver_uses_what_another_driver_stored_meanwhile(store):
    jobs, ex = tiny_jobs(2)
    other = Owner("elsewhere", 7, "1")  # a live driver on another host holds job 1 ...
    key = jobs[1].key(ex.fingerprint)
    assert store.claim(key, other) == "claimed"
    ref_store = Store.create(store.path.parent / "ref", CONFIG)
    reference = run_jobs(jobs[1:], ex, store=ref_store, progress=Progress(), device="cpu")
    ref_store.close()

    def finish_it() -> None:  # ... and saves it a second later
        time.sleep(1.0)
        mine = Store(store.path)
        mine.save(key, jobs[1].label, reference[0], owner=other)
        mine.close()

    import threading

    threading.Thread(target=finish_it).start()
    out = run_jobs(jobs, ex, store=store, progress=Progress(), device="cpu")
    assert out.trained == 1 and out.reused == 1
    np.testing.assert_array_equal(out[1]["loss"], reference[0]["loss"])
    assert sorted(o for _, o, *_ in store.trained()) == sorted([Owner.this_process().token, other.token])


def test_a_failing_executor_leaves_no_lease_behind(store):
    jobs, ex = tiny_jobs(2)

    class Failing:
        name = "failing"

        def train(self, jobs, examples, *, device, threads, progress):
            next(iter(jobs))  # takes (and so leases) a job, then fails
            raise RuntimeError("the executor broke")
            yield  # a generator, as executors are

    with pytest.raises(RuntimeError, match="the executor broke"):
        run_jobs(jobs, ex, store=store, progress=Progress(), executor=Failing())
    assert store._db.execute("SELECT count(*) FROM leases").fetchone() == (0,)


def test_two_cli_drivers_on_one_48_model_study_train_each_job_once(tmp_path):
    args = ["memorization", *FAST, "--epochs", "20", "--models", "48", "--chunk", "4", "--runs-dir", str(tmp_path),
            "--json"]
    procs = [start_cli(*args) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    first, second = (json.loads(out) for out, _ in outs)
    assert first["study_dir"] == second["study_dir"] and first["summaries"] == second["summaries"]
    log = trained_log(first["study_dir"])
    owners = Counter(owner for _, owner, *_ in log)
    print(f"\ntwo drivers, 12 jobs: {len(log)} trainings of {len({k for k, *_ in log})} distinct jobs; "
          f"per driver {sorted(owners.values())}")
    assert len(log) == 12 and len({k for k, *_ in log}) == 12  # each job trained once
    assert sorted([first["jobs_trained"], second["jobs_trained"]]) == sorted(owners.values())
    assert first["jobs_trained"] + second["jobs_trained"] == 12


def test_a_job_file_a_killed_driver_left_half_written_is_removed_on_reopen(tmp_path):
    import os

    path = tmp_path / "s"
    Store.create(path, CONFIG).close()
    dead, live = _dead_owner().pid, os.getpid()
    stale, fresh, mine = (path / "jobs" / f".k{i}.tmp{pid}.npz" for i, pid in ((1, dead), (2, dead), (3, live)))
    for f in (stale, fresh, mine):
        f.write_bytes(b"PK half a file")
    old = time.time() - LEASE_SECONDS - 5
    os.utime(stale, (old, old))
    os.utime(mine, (old, old))
    Store.create(path, CONFIG).close()
    assert not stale.exists()  # its writer is gone and it is older than a lease
    assert fresh.exists() and mine.exists()  # too recent to be sure / its writer is alive
