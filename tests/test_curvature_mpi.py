"""The curvature operators, diag_ggn, the gradient moments, K-FAC and the K-FAC optimizer and
preconditioner data-parallel: two MPI ranks (``mpiexec -n 2``), each holding its share of the
data, give the numbers of one process to rounding (float64; "type-2" K-FAC draws nothing)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("mpi4py")

MPIEXEC = Path(sys.executable).parent / "mpiexec"

JOB = """
import sys

import numpy as np

import pearlnet
import pearlnet.nn as nn
from pearlnet import curvature as cv
from pearlnet import distributed
from pearlnet.optim import KFAC, HessianFree

comm = distributed.world()
rng = np.random.default_rng(0)
x = rng.standard_normal((100, 8))
y = np.argmax(x[:, :3], axis=1)


def mlp(optimizer="sgd"):
    model = pearlnet.Model([nn.Dense(16, activation="tanh", input_shape=(8,), dtype=np.float64),
                            nn.Dense(3, dtype=np.float64)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


lo, hi = distributed.shard_bounds(100, comm.rank, comm.size)  # each rank its share
share = (x[lo:hi], y[lo:hi])
m = mlp()
G = cv.ggn_operator(m, None, share, comm=comm, batch_size=13)
v = np.random.default_rng(1).standard_normal(G.shape[0])
out = {"gv": G @ v, "top": cv.top_eigenvalues(G, k=3, seed=0).values,
       "d": cv.diag_ggn(m, None, share, comm=comm),
       "kv": cv.KFAC(m, None, share, fisher_type="type-2", comm=comm) @ v}
moments = cv.gradient_moments(m, None, share, comm=comm, batch_size=13)
out.update({"mean": pearlnet.ravel(moments.mean)[0], "n": moments.n,
            "second": pearlnet.ravel(moments.second_moment)[0],
            "var": pearlnet.ravel(moments.variance)[0]})
# a rank with no cases still joins the sums (rank 0 holds them all here)
lone = (x, y) if comm.rank == 0 else (x[:0], y[:0])
out["mean_lone"] = pearlnet.ravel(cv.gradient_moments(m, None, lone, comm=comm).mean)[0]
J = cv.jacobian_operator(m, None, share, comm=comm)
out["jv"] = J @ v
out["ju"] = J.rmatvec(np.random.default_rng(2).standard_normal(J.shape[0]))
m2 = mlp(KFAC(fisher_type="type-2", inverse_every=2, damping_every=2))
out["kfac_loss"] = m2.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=0,
                          distributed=comm).history["loss"]
out["kfac"] = pearlnet.ravel(m2.params)[0]
m3 = mlp()
m3.compile(loss="categorical_crossentropy", optimizer=HessianFree(
    cg_max_iters=3, preconditioner=cv.KFACPreconditioner(m3, fisher_type="type-2", cases=50)))
out["hf_loss"] = m3.fit(x, y, batch_size=50, epochs=2, verbose=0, seed=0,
                        distributed=comm).history["loss"]
out["hf"] = pearlnet.ravel(m3.params)[0]
if comm.rank == 0:
    np.savez(sys.argv[1], **{k: np.asarray(a) for k, a in out.items()})
"""


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside the interpreter")
def test_two_ranks_give_the_single_process_numbers(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.npz")], check=True,
                   timeout=300, env=env)
    subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script),
                    str(tmp_path / "two.npz")], check=True, timeout=300, env=env)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for key in one.files:
        np.testing.assert_allclose(two[key], one[key], rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(one[key]).max()), err_msg=key)
