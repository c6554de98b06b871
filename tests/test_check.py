"""The checker itself: it passes right rules and catches a deliberately wrong one."""

import numpy as np
import pytest

import pearlnet.numpy as pnp
from pearlnet import Primitive
from pearlnet.check import GradientCheckError, check_grad, check_hvp, check_jvp

# cube with a wrong reverse rule (2x^2 instead of 3x^2) and a right forward rule
bad_cube = Primitive("test_check.bad_cube", lambda x: x ** 3)


def _bad_cube_vjp(g, ans, x):
    return g * 2 * x ** 2


def _bad_cube_jvp(t, ans, x):
    return t * 3 * x ** 2


bad_cube.defvjp(_bad_cube_vjp)
bad_cube.defjvp(_bad_cube_jvp)

# a second derivative gone wrong: the first-order rule is right but built from a
# non-differentiable piece, so hvp misses a term
stale_square = Primitive("test_check.stale_square", lambda x: x ** 2)


def _stale_square_rule(g, ans, x):
    return g * 2 * pnp.stop_gradient(x)


stale_square.defvjp(_stale_square_rule)
stale_square.defjvp(_stale_square_rule)

X = np.array([0.3, -0.8, 1.7])


def test_gradient_check_error_is_an_assertion_error():
    assert issubclass(GradientCheckError, AssertionError)


@pytest.mark.parametrize("method", ["complex", "central", "forward"])
def test_a_wrong_reverse_rule_is_caught_by_every_method(method):
    with pytest.raises(GradientCheckError, match=f"check_grad: {method} check failed"):
        check_grad(lambda x: pnp.sum(bad_cube(x)), X, method=method)


def test_the_forward_rule_is_checked_on_its_own():
    check_jvp(lambda x: bad_cube(x), X)  # the forward rule is right
    with pytest.raises(GradientCheckError):
        check_grad(lambda x: pnp.sum(bad_cube(x)), X)


def test_a_missing_second_order_term_is_caught():
    f = lambda x: pnp.sum(stale_square(x) * x)  # noqa: E731
    check_grad(f, X)  # first order is right
    with pytest.raises(GradientCheckError, match="check_hvp"):
        check_hvp(f, X)
    with pytest.raises(GradientCheckError, match="check_hvp"):
        check_hvp(f, X, method="central")


def test_report_holds_the_errors_per_direction():
    report = check_grad(lambda x: pnp.sum(pnp.exp(x) * x), X, directions=4)
    assert len(report.errors) == 4
    assert report.max_error < 1e-14  # the complex step is exact to rounding
    assert report.eps == 1e-20
    assert "direction 3" in str(report)


def test_default_steps_follow_the_seed():
    rep = check_grad(lambda x: pnp.sum(x ** 2), X, method="forward")
    assert rep.eps == pytest.approx(np.sqrt(np.finfo(float).eps))  # seed 000, formula (6)
    # the seed's error estimate: forward differences are good to about sqrt(eps)
    assert 1e-10 < rep.max_error < 1e-6


def test_float32_functions_get_float32_tolerances():
    x = X.astype(np.float32)
    rep = check_grad(lambda x: pnp.sum(pnp.tanh(x) ** 2), x)
    assert rep.rtol == 2e-3
    assert rep.max_error < 1e-6


def test_checks_accept_trees():
    tree = {"a": X, "b": [np.array(0.5)]}
    check_grad(lambda t: pnp.sum(t["a"] * t["b"][0] ** 2), tree)
    check_hvp(lambda t: pnp.sum(pnp.sin(t["a"]) * t["b"][0] ** 2), tree)


def test_unknown_method_and_integer_points_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        check_grad(pnp.sum, X, method="spline")
    with pytest.raises(TypeError, match="check: x must hold floats"):
        check_grad(pnp.sum, np.arange(3))


def test_a_non_finite_derivative_never_passes():
    # NaN compares as "no error" and inf - inf is NaN: the checkers must refuse both
    with pytest.raises(GradientCheckError, match="not finite"), \
            np.errstate(divide="ignore", invalid="ignore"):
        check_grad(pnp.std, np.ones(3))  # std at a constant vector: the gradient is NaN
    for method in ("complex", "central", "forward"):
        with pytest.raises(GradientCheckError, match="not finite"), \
                np.errstate(divide="ignore", invalid="ignore"):  # 1/(2 sqrt(0)) = inf
            check_grad(lambda x: pnp.sum(pnp.sqrt(x)), np.array([0.0, 1.0]), method=method)
