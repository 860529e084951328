"""The Ray executor on a real local Ray (``ray.init(num_cpus=2)``, no mocks): the same numbers
as the local executor, a killed worker retried, a model's error reported once, the options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rotelab
from conftest import run_main
from executor_helpers import (
    FAST, assert_same_outputs, ray_cluster, stored_outputs, trained_log, wait_for,  # noqa: F401 (a fixture)
)
from rotelab.data.builtin import synthetic
from rotelab.errors import InvalidInputError, JobFailedError
from rotelab.executors.ray import Placement, placement

KW = dict(train_size=60, width=16, batch_size=32, device="cpu", progress=False)


# ══ the same numbers as the local executor ═════════════════════════════════════════════
def test_memorization_on_ray_equals_local_bit_for_bit(tmp_path, ray_cluster):
    local = rotelab.memorization("synthetic", "mlp", models=16, chunk=4, epochs=3, runs_dir=tmp_path / "local", **KW)
    on_ray = rotelab.memorization("synthetic", "mlp", models=16, chunk=4, epochs=3, runs_dir=tmp_path / "ray",
                                  executor="ray", **KW)
    # where jobs ran is not part of what the study is: the same study id, the same job keys
    assert Path(on_ray.study_dir).name == Path(local.study_dir).name
    assert on_ray.jobs_trained == local.jobs_trained == 4
    assert_same_outputs(stored_outputs(local.study_dir), stored_outputs(on_ray.study_dir))
    pd.testing.assert_frame_equal(local.scores["baseline"], on_ray.scores["baseline"])
    pd.testing.assert_frame_equal(local.rocs["baseline"], on_ray.rocs["baseline"])
    for name, values in local.arrays["baseline"].items():
        np.testing.assert_array_equal(values, on_ray.arrays["baseline"][name])
    assert json.dumps(local.to_dict()["summaries"]) == json.dumps(on_ray.to_dict()["summaries"])
    assert json.loads(Path(on_ray.study_dir, "study.json").read_text())["context"]["executor"] == "ray"


def test_compare_on_ray_equals_local_bit_for_bit(tmp_path, ray_cluster):
    data = synthetic(n_train=90, n_test=30, n_features=8, n_classes=3, seed=1)
    kw = dict(techniques="baseline,l2=0.5,dropout", folds=3, epochs=3, width=16, batch_size=32, device="cpu",
              progress=False)
    local = rotelab.compare(data, "mlp", runs_dir=tmp_path / "local", **kw)
    on_ray = rotelab.compare(data, "mlp", runs_dir=tmp_path / "ray", executor="ray", **kw)
    assert Path(on_ray.study_dir).name == Path(local.study_dir).name
    pd.testing.assert_frame_equal(local.table, on_ray.table)
    assert local.per_fold == on_ray.per_fold
    assert_same_outputs(stored_outputs(local.study_dir), stored_outputs(on_ray.study_dir))


# ══ faults ═════════════════════════════════════════════════════════════════════════════
def _ray_task_pids() -> list[int]:
    """Processes running one of our Ray tasks now (Ray titles a busy worker ``ray::<task>``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::train_task"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


EPOCHS = 150  # a task takes about a second: long enough to be found running and killed


def test_a_worker_killed_mid_task_is_retried_and_the_study_completes_identically(tmp_path, ray_cluster, capfd):
    killed: list[int] = []

    def kill_one_worker() -> None:
        if wait_for(lambda: bool(_ray_task_pids()), timeout=240):
            pid = _ray_task_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    on_ray = rotelab.memorization("synthetic", "mlp", models=16, chunk=4, epochs=EPOCHS, runs_dir=tmp_path / "ray",
                                  executor="ray", **KW)
    killer.join(timeout=5)
    assert len(killed) == 1
    # the log: Ray's raylet says it retries the task (on stdout); the study names the job and the run that finished
    log: list[str] = []
    wait_for(lambda: log.extend(capfd.readouterr()) or "will be retried" in "".join(log), timeout=30, step=0.5)
    log_text = " ".join("".join(log).split())
    assert "Task train_task failed. There are 3 retries remaining, so the task will be retried" in log_text
    assert "was retried on Ray after its worker died; run 2 of at most 4 finished" in log_text
    reference = rotelab.memorization("synthetic", "mlp", models=16, chunk=4, epochs=EPOCHS, runs_dir=tmp_path / "local",
                                     **KW)
    assert json.dumps(on_ray.to_dict()["summaries"]) == json.dumps(reference.to_dict()["summaries"])
    assert_same_outputs(stored_outputs(reference.study_dir), stored_outputs(on_ray.study_dir))
    assert len(trained_log(on_ray.study_dir)) == 4  # the killed task's job was saved once, after its retry


def test_an_error_in_the_model_is_reported_once_and_not_retried(tmp_path, ray_cluster):
    from torch import nn

    driver, attempts = os.getpid(), tmp_path / "attempts.txt"

    def factory() -> nn.Module:  # a closure: Ray sends it to the workers by value
        if os.getpid() != driver:
            from rotelab.executors.ray import _attempt

            with open(attempts, "a") as f:
                f.write(f"{_attempt()}\n")
            raise RuntimeError("boom in the worker\nsecond line of the message")
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 4))

    with pytest.raises(JobFailedError, match=r"^job 1 seed\(s\) failed on Ray \(RuntimeError: boom in the worker\); "
                                             r"an error in the model's code is not retried; fix it") as info:
        rotelab.diagnose("synthetic", factory, epochs=2, seeds=1, runs_dir=tmp_path, executor="ray", progress=False)
    assert "\n" not in str(info.value)
    assert attempts.read_text().split() == ["0"]  # one attempt: no retry of the user's exception


def test_a_factory_ray_cannot_send_is_named_in_one_line(tmp_path, ray_cluster):
    from torch import nn

    lock = threading.Lock()

    def factory() -> nn.Module:
        with lock:
            return nn.Sequential(nn.Flatten(), nn.Linear(16, 4))

    with pytest.raises(InvalidInputError, match=r"its model factory cannot be sent to Ray workers \(TypeError: "
                                                r"cannot pickle '_thread.lock' object\)") as info:
        rotelab.diagnose("synthetic", factory, epochs=2, seeds=1, runs_dir=tmp_path, executor="ray", progress=False)
    assert "\n" not in str(info.value)


# ══ joining a cluster, options, and no Ray at all ══════════════════════════════════════
def test_the_cli_joins_the_cluster_named_in_ray_address_env(tmp_path, ray_cluster):
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "rotelab", "diagnose", *FAST, "--epochs", "2", "--seeds", "2",
                             "--executor", "ray", "--runs-dir", str(tmp_path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert Path(json.loads(out)["study_dir"]).is_dir()
    import ray._private.state

    # it joined the running cluster: that cluster lists the CLI's process among its drivers
    assert proc.pid in [job["DriverPid"] for job in ray._private.state.jobs()]


def test_without_ray_the_ray_executor_is_one_line_naming_the_install_command(tmp_path):
    script = ("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
              "from rotelab.cli import main\n"
              f"main(['diagnose', '--data', 'synthetic', '--epochs', '1', '--executor', 'ray', '--runs-dir', "
              f"{str(tmp_path / 'runs')!r}])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("Error: --executor ray needs Ray, which is not installed here; install it with: "
                           "pip install 'rotelab[ray]' (or use --executor local)\n")
    assert not (tmp_path / "runs").exists()  # refused before anything was written


@pytest.mark.parametrize(("args", "match"), [
    (["--ray-address", "auto"], "--ray-address applies to the Ray executor only; add --executor ray"),
    (["--gpus-per-job", "0.5"], "--gpus-per-job applies to the Ray executor only"),
    (["--executor", "spark"], "unknown executor 'spark': expected one of local, ray"),
    (["--executor", "ray", "--gpus-per-job", "1.5"], r"gpus per job must be in \(0.0, 1.0\], got 1.5"),
    (["--executor", "ray", "--cpus-per-job", "0"], r"cpus per job must be in \(0.0, inf\], got 0.0"),
    (["--executor", "ray", "--gpus-per-job", "0.5", "--device", "cpu"], "asks for GPUs but --device is cpu"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], r"--ray-address 127.0.0.1:1: nothing answers there "
                                                            r"\(ConnectionRefusedError: .*\); start the cluster with"),
    (["--executor", "ray", "--ray-address", "ray://nowhere"], "expected auto, host:port or ray://host:port"),
])
def test_bad_executor_options_exit_2_with_one_line(tmp_path, capsys, args, match):
    pytest.importorskip("ray")
    code, out, err = run_main(["diagnose", *FAST, "--epochs", "1", *args, "--runs-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "r").exists()


def test_placement_from_the_options_and_the_cluster():
    cpus4, gpus2 = {"CPU": 4.0}, {"CPU": 16.0, "GPU": 2.0}
    assert placement("auto", threads=None, cpus_per_job=None, gpus_per_job=None, resources=cpus4) == \
        Placement(1.0, 0.0, "cpu", 1)
    assert placement("cpu", threads=2, cpus_per_job=None, gpus_per_job=None, resources=gpus2) == \
        Placement(2.0, 0.0, "cpu", 2)
    assert placement("auto", threads=2, cpus_per_job=0.5, gpus_per_job=None, resources=cpus4) == \
        Placement(0.5, 0.0, "cpu", 1)
    assert placement("auto", threads=None, cpus_per_job=None, gpus_per_job=None, resources=gpus2) == \
        Placement(1.0, 1.0, "cuda", 1)
    quarter = placement("auto", threads=None, cpus_per_job=2, gpus_per_job=0.25, resources=gpus2)
    assert quarter == Placement(2.0, 0.25, "cuda", 2)
    assert quarter.slots(gpus2) == 8  # 2 GPUs / 0.25; 16 CPUs / 2 would allow 8 too
    assert Placement(1.0, 0.0, "cpu", 1).slots(cpus4) == 4
    assert Placement(3.0, 0.0, "cpu", 3).slots(cpus4) == 1
    for device, gpus in (("cuda", None), ("auto", 0.5)):
        with pytest.raises(InvalidInputError, match="a GPU was asked for .* but the Ray cluster has no GPU"):
            placement(device, threads=None, cpus_per_job=None, gpus_per_job=gpus, resources=cpus4)
    with pytest.raises(InvalidInputError, match="each job asks for 8 CPUs but the Ray cluster has 4; use a smaller"):
        placement("cpu", threads=8, cpus_per_job=None, gpus_per_job=None, resources=cpus4)
