"""pearlnet.curvature against dense ground truth: every operator equals the matrix built from
``hessian()`` and ``jacobian()`` on small float64 networks; the estimators are checked on those
matrices (eigenvalues to 1e-8 relative, Hutchinson within 3 standard errors, SLQ exact at full
dimension); diag_ggn is exact to 1e-10."""

import numpy as np
import pytest

pytest.importorskip("scipy")

import pearlnet  # noqa: E402
import pearlnet.nn as nn  # noqa: E402
from pearlnet import curvature as cv  # noqa: E402
from pearlnet.autodiff import hessian, jacobian, ravel  # noqa: E402

F64 = np.float64


def mlp(loss="categorical_crossentropy", dtype=F64, out=3):
    model = pearlnet.Model([nn.Dense(5, activation="tanh", input_shape=(4,), dtype=dtype),
                            nn.Dense(out, dtype=dtype)], seed=0)
    model.compile(loss=loss, optimizer="sgd")
    return model


@pytest.fixture(scope="module")
def problem():
    """A classifier, its data and the dense H, G, EF and J from hessian() and jacobian()."""
    rng = np.random.default_rng(3)
    model = mlp()
    x, y = rng.standard_normal((23, 4)), rng.integers(0, 3, 23)
    flat, unravel = ravel(model.params)

    def outputs(w):
        return model.forward(unravel(w), x)[0]

    def f(w):
        return model._loss(y, outputs(w))

    H = np.asarray(hessian(f)(flat))
    J = np.asarray(jacobian(outputs)(flat)).reshape(-1, flat.size)
    z = np.asarray(outputs(flat))
    HL = np.zeros((69, 69))
    for i in range(23):  # the cross-entropy's Hessian in the logits, (diag p - p p^T) / n
        ez = np.exp(z[i] - z[i].max())
        p = ez / ez.sum()
        HL[3 * i:3 * i + 3, 3 * i:3 * i + 3] = (np.diag(p) - np.outer(p, p)) / 23
    G = J.T @ HL @ J
    grads = np.stack([np.asarray(pearlnet.grad(
        lambda w, i=i: model._loss(y[i:i + 1], model.forward(unravel(w), x[i:i + 1])[0]))(flat))
        for i in range(23)])
    EF = grads.T @ grads / 23
    return dict(model=model, x=x, y=y, H=H, G=G, J=J, EF=EF, flat=flat)


def test_hessian_operator_is_the_dense_hessian_over_batches(problem):
    m, x, y = problem["model"], problem["x"], problem["y"]
    for batch_size, cache in ((None, True), (7, True), (5, False)):
        op = cv.hessian_operator(m, None, (x, y), batch_size=batch_size, cache=cache)
        assert op.shape == problem["H"].shape and op.dtype == F64
        np.testing.assert_allclose(op.to_dense(), problem["H"], rtol=0, atol=1e-14)


def test_ggn_ef_and_jacobian_operators_match_dense_matrices(problem):
    m, x, y, rng = problem["model"], problem["x"], problem["y"], np.random.default_rng(0)
    G = cv.ggn_operator(m, None, (x, y), batch_size=5)
    np.testing.assert_allclose(G.to_dense(), problem["G"], rtol=0, atol=1e-14)
    EF = cv.empirical_fisher_operator(m, None, (x, y), batch_size=4)
    np.testing.assert_allclose(EF.to_dense(), problem["EF"], rtol=0, atol=1e-14)
    J = cv.jacobian_operator(m, None, (x, y), batch_size=6)
    v, u = rng.standard_normal(J.shape[1]), rng.standard_normal(J.shape[0])
    np.testing.assert_allclose(J @ v, problem["J"] @ v, atol=1e-13)
    np.testing.assert_allclose(J.rmatvec(u), problem["J"].T @ u, atol=1e-13)
    # matmat and rmatvec of the symmetric ones
    V = rng.standard_normal((J.shape[1], 3))
    np.testing.assert_allclose(G @ V, problem["G"] @ V, atol=1e-13)
    np.testing.assert_allclose(G.rmatvec(V[:, 0]), problem["G"] @ V[:, 0], atol=1e-13)


def test_a_pair_net_loss_and_a_block_give_the_same_matrices(problem):
    m, x, y = problem["model"], problem["x"], problem["y"]

    def net(p, batch):
        return m.forward(p, batch[0])[0]

    def loss(z, batch):
        return m._loss(batch[1], z)

    H = cv.hessian_operator((net, loss), m.params, (x, y), batch_size=10)
    np.testing.assert_allclose(H.to_dense(), problem["H"], atol=1e-14)
    assert cv.layer_blocks(m.params) == [("dense",), ("dense_1",)]
    n0 = m.params["dense"]["W"].size + m.params["dense"]["b"].size
    for op, dense in ((cv.hessian_operator(m, None, (x, y), block="dense_1"), problem["H"]),
                      (cv.ggn_operator(m, None, (x, y), block=("dense_1",)), problem["G"])):
        np.testing.assert_allclose(op.to_dense(), dense[n0:, n0:], atol=1e-14)


def test_monte_carlo_fisher_is_a_fixed_symmetric_matrix_converging_to_the_ggn(problem):
    m, x, y = problem["model"], problem["x"], problem["y"]
    one = cv.ggn_operator(m, None, (x, y), mc_samples=2, seed=4, batch_size=10, cache=False)
    a, b = one.to_dense(), one.to_dense()
    np.testing.assert_array_equal(a, b)  # the draws are kept: one matrix, not a new one per call
    np.testing.assert_allclose(a, a.T, atol=1e-15)
    many = cv.ggn_operator(m, None, (x, y), mc_samples=4000, seed=0).to_dense()
    G = problem["G"]
    assert np.abs(many - G).max() < 0.02 * np.abs(G).max()


def test_float32_operators_follow_the_float64_ones(problem):
    x, y = problem["x"], problem["y"]
    m32 = mlp(dtype=np.float32)
    for make, dense in ((cv.ggn_operator, problem["G"]), (cv.hessian_operator, problem["H"])):
        op = make(m32, None, (x, y))
        assert op.dtype == np.float32
        got = op @ np.ones(op.shape[1])  # a float64 vector is cast, not refused
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, dense @ np.ones(op.shape[1]), rtol=0,
                                   atol=1e-5 * np.abs(dense).sum(axis=1).max())


def test_operators_refuse_what_they_cannot_use(problem):
    x, y = problem["x"], problem["y"]
    with pytest.raises(ValueError, match="model.compile"):
        cv.ggn_operator(pearlnet.Model([nn.Dense(2, input_shape=(4,))]), None, (x, y))
    with pytest.raises(TypeError, match="pair"):
        cv.ggn_operator(object(), None, x)
    with pytest.raises(ValueError, match="block"):
        cv.hessian_operator(problem["model"], None, (x, y), block="nope")
    with pytest.raises(ValueError, match="mc_samples"):
        cv.ggn_operator(problem["model"], None, (x, y), mc_samples=-1)
    # the data in the parameters' place: the model's tree is expected, and the slip is named
    with pytest.raises(ValueError, match=r"hessian_operator: params has structure \(\*, \*\), "
                                         r"expected \{'dense'.* \(the data go third, or as "
                                         r"data=\(x, y\)"):
        cv.hessian_operator(problem["model"], (x, y))
    with pytest.raises(ValueError, match=r"params has structure \{'dense': \{'W': \*\}\}"):
        cv.hessian_operator(problem["model"], {"dense": {"W": problem["flat"]}}, (x, y))
    # dicts match by key: the model's parameters in another key order are its parameters
    params = problem["model"].params
    swapped = {name: dict(reversed(list(params[name].items()))) for name in reversed(params)}
    op = cv.hessian_operator(problem["model"], swapped, (x, y))
    assert op.shape == problem["H"].shape


# ---- estimators on dense matrices ----------------------------------------------------------------
def test_top_eigenvalues_to_1e8_relative(problem):
    G, H = problem["G"], problem["H"]
    op = cv.ggn_operator(problem["model"], None, (problem["x"], problem["y"]))
    exact = np.linalg.eigvalsh(G)[::-1]
    got = cv.top_eigenvalues(op, k=4)
    np.testing.assert_allclose(got.values, exact[:4], rtol=1e-8)
    for j in range(4):  # unit eigenvectors
        np.testing.assert_allclose(G @ got.vectors[:, j], got.values[j] * got.vectors[:, j],
                                   atol=1e-8 * exact[0])
    got_h = cv.top_eigenvalues(H, k=2)
    np.testing.assert_allclose(got_h.values, np.linalg.eigvalsh(H)[::-1][:2], rtol=1e-8)
    power = cv.top_eigenvalues(G, k=1, method="power", tol=1e-10, maxiter=2000)
    np.testing.assert_allclose(power.values, exact[:1], rtol=1e-6)


def test_hutchinson_trace_and_diagonal_within_three_standard_errors(problem):
    G = problem["G"]
    for method, samples in (("hutchinson", 60), ("hutch++", 30)):
        est = cv.trace(G, method, samples=samples, seed=1)
        assert abs(est.value - np.trace(G)) < 3 * est.stderr, (method, est)
    d = cv.diagonal(G, samples=200, seed=2)
    z = np.abs(d.value - np.diag(G)) / d.stderr
    assert np.mean(z < 3) > 0.95
    # hutch++ spends its first third exactly: with samples >= 3 n it is exact
    exact = cv.trace(G, "hutch++", samples=3 * G.shape[0] + 3, seed=0)
    assert abs(exact.value - np.trace(G)) < 1e-10 * np.trace(G)


def test_slq_at_full_dimension_has_the_exact_eigenvalues_and_moments(problem):
    G = problem["G"]
    n = G.shape[0]
    lam, u = np.linalg.eigh(G)
    sd = cv.spectral_density(G, lanczos_steps=n, runs=2, seed=5)
    rng = np.random.default_rng(5)
    for t, w in zip(sd.nodes, sd.weights):
        v = cv.estimators.rademacher(rng, (n,))
        v /= np.linalg.norm(v)
        exact_w = (u.T @ v) ** 2  # the probe's exact spectral measure
        for node in t[w > 1e-12]:  # every node that carries weight is an eigenvalue
            assert np.abs(lam - node).min() < 1e-9 * lam[-1]
        for k in range(6):
            assert np.isclose(np.sum(w * t ** k), np.sum(exact_w * lam ** k), rtol=1e-9,
                              atol=1e-13), k
    top = max(t.max() for t in sd.nodes)
    assert abs(top - lam[-1]) < 1e-9 * lam[-1]
    assert np.isclose(np.trapezoid(sd.density, sd.grid), 1.0, atol=1e-3)
    # density smoothing choices
    assert cv.spectral_density(G, 10, sigma="pyhessian").sigma > 0
    assert cv.spectral_density(G, 10, sigma=0.1).sigma == 0.1


# ---- the exact GGN diagonal ----------------------------------------------------------------------
def test_diag_ggn_is_exact_for_dense_conv_and_pairs(problem):
    m, x, y = problem["model"], problem["x"], problem["y"]
    np.testing.assert_allclose(cv.diag_ggn(m, None, (x, y), batch_size=7),
                               np.diag(problem["G"]), rtol=0, atol=1e-10)
    mc = cv.diag_ggn(m, None, (x, y), mc_samples=3000, seed=1)
    assert np.abs(mc - np.diag(problem["G"])).max() < 0.02 * np.diag(problem["G"]).max()

    def net(p, batch):
        return m.forward(p, batch[0])[0]

    def loss(z, batch):
        return m._loss(batch[1], z)

    for likelihood in (None, "categorical"):  # the exact per-case blocks, or the closed form
        got = cv.diag_ggn((net, loss), m.params, (x[:9], y[:9]), likelihood=likelihood)
        want = np.diag(cv.ggn_operator(m, None, (x[:9], y[:9])).to_dense())
        np.testing.assert_allclose(got, want, atol=1e-10)
    rng = np.random.default_rng(1)
    cnn = pearlnet.Model([nn.Conv2D(3, 3, padding=1, activation="tanh", input_shape=(2, 5, 5),
                                    dtype=F64),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Dense(2, dtype=F64)], seed=0)
    cnn.compile(loss="squared_error", optimizer="sgd")
    xc, yc = rng.standard_normal((6, 2, 5, 5)), rng.standard_normal((6, 2))
    G = cv.ggn_operator(cnn, None, (xc, yc)).to_dense()
    np.testing.assert_allclose(cv.diag_ggn(cnn, None, (xc, yc), batch_size=4), np.diag(G),
                               rtol=0, atol=1e-10)


def test_a_comm_sums_the_ranks_products():
    """Two 'ranks' in one process: a communicator whose allreduce doubles (both ranks hold the
    same data), so the operator over N cases per rank is the one over 2N identical cases."""
    from pearlnet.distributed import SingleProcess

    class Twice(SingleProcess):
        size = 2

        def allreduce(self, tree, op="sum", scale=None):
            from pearlnet.autodiff import tree_map
            return tree_map(lambda a: np.asarray(a) * 2 * (1 if scale is None else scale), tree)

    rng = np.random.default_rng(0)
    model = mlp()
    x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    single = cv.ggn_operator(model, None, (x, y)).to_dense()
    both = cv.ggn_operator(model, None, (x, y), comm=Twice()).to_dense()
    np.testing.assert_allclose(both, single, atol=1e-15)  # 2 ranks x (N/2N) weight x sum 2
    np.testing.assert_allclose(cv.diag_ggn(model, None, (x, y), comm=Twice()), np.diag(single),
                               atol=1e-15)
