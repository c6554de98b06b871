"""Numerical checks of derivatives: forward differences, central differences and the complex step.

For random directions p, the automatic-differentiation result is compared with
(a) forward differences (f(x + eps p) - f(x)) / eps with eps = sqrt(machine eps), the rule of the
    autoencoder assignment (section 1.5, formula 6);
(b) central differences (f(x + eps p) - f(x - eps p)) / (2 eps) with eps = cbrt(machine eps);
(c) the complex step Im f(x + i eps p) / eps with eps = 1e-20 (formula 7; Squire & Trapp 1998),
    which has no subtraction and so agrees to about machine precision.
The numerical side always runs in float64 / complex128, whatever the dtype of x, and inside
``complex_step()``: functions with kinks then compute the analytic continuation on plain complex
arrays, the function automatic differentiation differentiates (see pearlnet.numpy).
f must return a scalar (check_grad, check_hvp) or an array or tree of arrays (check_jvp); a
function returning None (a forgotten ``return``), a tuple or a dict is refused with a TypeError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pearlnet.numpy._util import complex_step

from .transforms import _grad, _hvp, _jvp
from .tree import ravel, tree_leaves_like, tree_structure

__all__ = ["GradientCheckError", "CheckReport", "check_grad", "check_hvp", "check_jvp",
           "complex_step"]

METHODS = ("forward", "central", "complex")


class GradientCheckError(AssertionError):
    """A derivative disagrees with its numerical estimate beyond the tolerance."""


@dataclass
class CheckReport:
    """Per-direction results of one check: the AD values, the numerical estimates, and
    their relative errors |ad - num| / max(|ad|, |num|) (vector norms for vector results)."""

    check: str
    method: str
    eps: float
    rtol: float
    atol: float
    ad: list = field(default_factory=list)
    numeric: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)

    def __str__(self) -> str:
        lines = [f"{self.check} ({self.method}, eps={self.eps:.3g}, rtol={self.rtol:.3g}, "
                 f"atol={self.atol:.3g})"]
        for k, (a, n, e) in enumerate(zip(self.ad, self.numeric, self.errors)):
            lines.append(f"  direction {k}: AD {_show(a)}  numeric {_show(n)}  "
                         f"relative error {e:.3e}")
        return "\n".join(lines)


def _show(v: Any) -> str:
    v = np.asarray(v)
    return f"{v.item():+.12e}" if v.size == 1 else f"|{np.linalg.norm(v):.12e}|"


_DEFAULT_RTOL = {  # float64 / float32 AD side
    "complex": (1e-10, 2e-3),
    "central": (1e-6, 2e-3),
    "forward": (1e-5, 2e-2),
}


def _defaults(method: str, eps: float | None, rtol: float | None, atol: float | None,
              dtype: np.dtype) -> tuple[float, float, float]:
    if method not in METHODS:
        raise ValueError(f"check: method must be one of {METHODS}, got {method!r}")
    mach = np.finfo(np.float64).eps
    if eps is None:
        eps = {"forward": np.sqrt(mach), "central": np.cbrt(mach), "complex": 1e-20}[method]
    low = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
    if rtol is None:
        rtol = _DEFAULT_RTOL[method][1 if low else 0]
    if atol is None:
        atol = rtol * 1e-3
    return float(eps), float(rtol), float(atol)


def _numeric(fun: Callable, x: np.ndarray, p: np.ndarray, method: str, eps: float) -> Any:
    """The directional derivative of fun at x along p by the chosen formula (float64), with
    kinked functions continued analytically on complex input (what AD differentiates)."""
    with complex_step():
        if method == "complex":
            return np.imag(fun(x.astype(np.complex128) + 1j * eps * p)) / eps
        if method == "central":
            return (np.asarray(fun(x + eps * p)) - np.asarray(fun(x - eps * p))) / (2 * eps)
        return (np.asarray(fun(x + eps * p)) - np.asarray(fun(x))) / eps


def _flat_like(treedef: Any, tree: Any, who: str, what: str) -> np.ndarray:
    """The leaves of tree, in treedef's order (dicts by key), as one vector."""
    leaves = tree_leaves_like(treedef, tree, who, what)
    if not leaves:
        return np.zeros(0)
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in leaves])


def _compare(report: CheckReport, ad: Any, num: Any, k: int) -> None:
    ad, num = np.asarray(ad, dtype=np.complex128), np.asarray(num, dtype=np.complex128)
    diff = float(np.linalg.norm((ad - num).ravel()))
    scale = max(float(np.linalg.norm(ad.ravel())), float(np.linalg.norm(num.ravel())))
    err = diff / scale if scale > 0 else 0.0
    report.ad.append(ad.real if not np.iscomplexobj(ad) or not ad.imag.any() else ad)
    report.numeric.append(num.real if not num.imag.any() else num)
    report.errors.append(err)
    if not (np.isfinite(ad).all() and np.isfinite(num).all()):  # NaN compares as no error
        raise GradientCheckError(
            f"{report.check}: {report.method} check failed in direction {k}: not finite: AD "
            f"{_show(ad.real)}, {report.method} {_show(num.real)}\n{report}")
    if diff > report.atol + report.rtol * scale:
        raise GradientCheckError(
            f"{report.check}: {report.method} check failed in direction {k}: AD "
            f"{_show(ad.real)}, {report.method} {_show(num.real)}, relative error {err:.3e} > "
            f"rtol {report.rtol:.1e} (atol {report.atol:.1e})\n{report}")


def _setup(x: Any, directions: int, seed: int):
    flat, unravel = ravel(x)
    flat = np.asarray(flat)
    if flat.dtype.kind not in "fc":
        raise TypeError(f"check: x must hold floats, got dtype {flat.dtype}")
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(flat.shape) for _ in range(directions)]
    return flat, unravel, ps


def check_grad(f: Callable, x: Any, method: str = "complex", eps: float | None = None,
               directions: int = 3, rtol: float | None = None, atol: float | None = None,
               seed: int = 0) -> CheckReport:
    """Compare grad(f)(x) . p with the numerical directional derivative of the scalar f at x
    (an array or a tree) along ``directions`` random directions p. Raises GradientCheckError
    on a disagreement, else returns the report."""
    flat, unravel, ps = _setup(x, directions, seed)
    eps, rtol, atol = _defaults(method, eps, rtol, atol, flat.dtype)
    report = CheckReport("check_grad", method, eps, rtol, atol)
    g = _flat_like(tree_structure(x), _grad(f, 0, False, "check_grad")(x), "check_grad",
                   "the gradient")
    hi = flat.astype(np.complex128 if np.iscomplexobj(flat) else np.float64)

    def fun(z):
        return f(unravel(z))

    for k, p in enumerate(ps):
        _compare(report, np.dot(g, p), _numeric(fun, hi, p, method, eps), k)
    return report


def check_hvp(f: Callable, x: Any, method: str = "complex", eps: float | None = None,
              directions: int = 3, rtol: float | None = None, atol: float | None = None,
              seed: int = 0) -> CheckReport:
    """Compare hvp(f, x, p) with the numerical directional derivative of grad(f) along p:
    differences of gradients (formula 6 for the Hessian), or the complex step on the gradient."""
    flat, unravel, ps = _setup(x, directions, seed)
    eps, rtol, atol = _defaults(method, eps, rtol, atol, flat.dtype)
    report = CheckReport("check_hvp", method, eps, rtol, atol)
    hi = flat.astype(np.complex128 if np.iscomplexobj(flat) else np.float64)
    g = _grad(f, 0, False, "check_hvp")
    xdef = tree_structure(x)

    def fun(z):
        return _flat_like(xdef, g(unravel(z)), "check_hvp", "the gradient")

    for k, p in enumerate(ps):
        hv = _hvp(f, x, unravel(p.astype(flat.dtype)), "check_hvp")
        ad = _flat_like(xdef, hv, "check_hvp", "H v")
        _compare(report, ad, _numeric(fun, hi, p, method, eps), k)
    return report


def check_jvp(f: Callable, x: Any, method: str = "complex", eps: float | None = None,
              directions: int = 3, rtol: float | None = None, atol: float | None = None,
              seed: int = 0) -> CheckReport:
    """Compare the forward-mode jvp(f, (x,), (p,)) with the numerical directional derivative
    of f (of any output shape) along p."""
    flat, unravel, ps = _setup(x, directions, seed)
    eps, rtol, atol = _defaults(method, eps, rtol, atol, flat.dtype)
    report = CheckReport("check_jvp", method, eps, rtol, atol)
    hi = flat.astype(np.complex128 if np.iscomplexobj(flat) else np.float64)
    out_def = None  # the structure of f's output, set by the forward-mode pass

    def fun(z):
        return _flat_like(out_def, f(unravel(z)), "check_jvp", "f's output")

    for k, p in enumerate(ps):
        t = _jvp(f, (x,), (unravel(p.astype(flat.dtype)),), False, "check_jvp")[1]
        out_def = tree_structure(t)
        _compare(report, _flat_like(out_def, t, "check_jvp", "J v"),
                 _numeric(fun, hi, p, method, eps), k)
    return report
