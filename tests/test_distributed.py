"""Data parallelism over MPI, launched as real jobs: ``mpiexec -n 2`` and ``-n 3`` started from
this ordinary pytest process through subprocess with a timeout, one BLAS thread per rank (a
hang fails a test; pytest never runs inside MPI). Results are compared in float64 against the
same job run here in one process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mpi_jobs
from pearlnet import distributed

HERE = Path(__file__).parent
ONE = distributed.SingleProcess()


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    assert found, ("mpiexec not found: the test extra installs it (pip install mpi4py mpich, "
                   "or pearlnet[mpi])")
    return found


def job_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def launch(ranks: int, job: str, out: Path, timeout: float = 120,
           **env: str) -> subprocess.CompletedProcess:
    """Run a job on ``ranks`` processes; kill the whole job if it outlives ``timeout``."""
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "mpi_jobs.py"), job,
           str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=job_env(**env), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{job} on {ranks} ranks hung past {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def run_ok(ranks: int, job: str, tmp_path: Path, **env: str) -> list[dict]:
    out = tmp_path / job
    done = launch(ranks, job, out, **env)
    assert done.returncode == 0, f"{job} failed:\n{done.stdout}\n{done.stderr}"
    return [dict(np.load(f"{out}.rank{r}.npz")) for r in range(ranks)]


def assert_replicas_identical(results: list[dict]) -> None:
    for r, other in enumerate(results[1:], 1):
        for key, value in results[0].items():
            np.testing.assert_array_equal(other[key], value, err_msg=f"rank {r}, {key}")


@pytest.mark.parametrize("ranks", [2, 3])
def test_one_gradient_equals_one_process(ranks, tmp_path):
    ranks_results = run_ok(ranks, "gradient", tmp_path)
    assert_replicas_identical(ranks_results)
    np.testing.assert_allclose(ranks_results[0]["grads"], mpi_jobs.gradient(ONE)["grads"],
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ranks", [2, 3])
def test_three_epochs_of_an_mlp_with_adam(ranks, tmp_path):
    # uneven shares: batches of 32 split 10/11/11 on 3 ranks, and a short last batch of 4
    results = run_ok(ranks, "fit_mlp", tmp_path)
    assert_replicas_identical(results)
    single = mpi_jobs.fit_mlp(ONE)
    for key in ("params", "opt", "loss", "val_loss"):
        np.testing.assert_allclose(results[0][key], single[key], rtol=1e-9, atol=1e-12,
                                   err_msg=key)
    np.testing.assert_array_equal(results[0]["accuracy"], single["accuracy"])


def test_the_compiled_update_writes_in_place_on_every_rank(tmp_path):
    results = run_ok(2, "fit_in_place", tmp_path)
    assert_replicas_identical(results)
    single = mpi_jobs.fit_in_place(ONE)
    for r in results:
        n = int(r["guarded_counts"][2])
        # guarded: two sets of parameters take turns; unguarded: one; the slots stay put
        assert r["guarded_counts"][:2].tolist() == [2 * n, 2 * n]
        assert r["unguarded_counts"][:2].tolist() == [n, 2 * n]
    for key in ("guarded_params", "unguarded_params"):
        np.testing.assert_allclose(results[0][key], single[key], rtol=1e-9, atol=1e-12)


def test_a_cnn_with_batchnorm_and_dropout(tmp_path):
    results = run_ok(3, "fit_cnn", tmp_path)
    assert_replicas_identical(results)
    single = mpi_jobs.fit_cnn(ONE)
    np.testing.assert_allclose(results[0]["params"], single["params"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[0]["state"], single["state"], rtol=1e-9, atol=1e-12)


def test_an_lstm(tmp_path):
    results = run_ok(2, "fit_lstm", tmp_path)
    assert_replicas_identical(results)
    np.testing.assert_allclose(results[0]["params"], mpi_jobs.fit_lstm(ONE)["params"],
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ranks", [2, 3])
def test_five_hessian_free_steps_with_a_preconditioner(ranks, tmp_path):
    results = run_ok(ranks, "hessian_free", tmp_path)
    assert_replicas_identical(results)
    single = mpi_jobs.hessian_free(ONE)
    for key in ("params", "lambda", "direction"):
        np.testing.assert_allclose(results[0][key], single[key], rtol=1e-8, atol=1e-12,
                                   err_msg=key)


def test_evaluate_and_predict_are_global(tmp_path):
    results = run_ok(3, "evaluate", tmp_path)
    assert_replicas_identical(results)
    single = mpi_jobs.evaluate(ONE)
    assert int(results[0]["correct"]) == int(single["correct"])
    np.testing.assert_allclose(results[0]["loss"], single["loss"], rtol=1e-12)
    np.testing.assert_allclose(results[0]["predict"], single["predict"], rtol=1e-12)


# -- faults ----------------------------------------------------------------------------------
def test_an_exception_on_one_rank_ends_the_job_and_names_the_rank(tmp_path):
    start = time.monotonic()
    done = launch(3, "raising", tmp_path / "raising", timeout=60)
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end"
    assert "rank 1 of 3 failed" in done.stderr
    assert "deliberate failure in epoch 2" in done.stderr


def test_mismatched_data_is_a_clear_error_on_every_rank(tmp_path):
    results = run_ok(2, "mismatched", tmp_path)
    assert [int(r["caught"]) for r in results] == [1, 1]


def test_a_call_on_one_rank_only_times_out_instead_of_hanging(tmp_path):
    done = launch(2, "rank_zero_predict", tmp_path / "r0", timeout=60,
                  PEARLNET_MPI_TIMEOUT="3")
    assert done.returncode != 0
    assert "Model.predict: rank 0 of 2 waited" in done.stderr
    assert "distributed=False" in done.stderr


def test_a_killed_rank_ends_the_job_and_the_run_resumes_exactly(tmp_path):
    checkpoint = tmp_path / "run.pnl"
    start = time.monotonic()
    killed = launch(2, "killed", tmp_path / "killed", timeout=60, CHECKPOINT=str(checkpoint))
    assert killed.returncode != 0 and time.monotonic() - start < 30
    assert checkpoint.exists()  # epochs 1-3 were saved, whole
    # resumed on 3 ranks (a checkpoint written by N ranks resumes on M)
    resumed = run_ok(3, "resumed", tmp_path, CHECKPOINT=str(checkpoint))
    assert_replicas_identical(resumed)
    assert int(resumed[0]["start"]) == 3
    uninterrupted = mpi_jobs.resumable(ONE, str(tmp_path / "fresh.pnl"))
    np.testing.assert_allclose(resumed[0]["params"], uninterrupted["params"], rtol=1e-12,
                               atol=1e-15)


def test_pearlnet_train_on_two_ranks_reaches_the_one_process_accuracy(tmp_path, capsys):
    from pearlnet import cli

    argv = ["train", "--dataset", "digits", "--epochs", "5", "--quiet"]
    assert cli.main(argv) == 0
    single = capsys.readouterr().out
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "pearlnet", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, env=job_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "data-parallel on 2 ranks" in done.stdout
    assert done.stdout.count("test accuracy") == 1  # rank 0 alone prints

    def accuracy(text):
        return float(text.split("test accuracy ")[1].split("%")[0])

    # float32 sums in another order: the same accuracy to a test image or so (of 451)
    assert abs(accuracy(done.stdout) - accuracy(single)) <= 0.45


def test_a_missing_mpi4py_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from pearlnet import distributed\n"
            "distributed.world()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=job_env(PMI_SIZE="2"), timeout=60)
    assert done.returncode != 0
    assert "pip install 'pearlnet[mpi]'" in done.stderr
