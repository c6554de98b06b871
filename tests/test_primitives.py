"""Spec-table tests of every registered primitive (JAX op tests / autograd check_grads style).

One table, SPECS, lists every public operation of ``pearlnet.numpy``: the callable, the
primitives it records on a tape, its input shapes and keyword variants, and an input domain that
keeps the point away from kinks, ties and singularities. Each (spec, variant) is scalarised as

    L(inputs) = sum(w * f(inputs)) + 0.5 * sum(w2 * f(inputs)**2)

with fixed random weights (so linear ops have a non-zero Hessian too) and checked, for every
differentiable input, against the complex step (gradient, Hessian-vector product), central
differences (Hessian-vector product), the jvp/vjp adjoint identity, and for float32 and
complex128 inputs. Hand-computed values cover ties, zeros and overflow-prone inputs.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import pearlnet
import pearlnet.numpy as pnp
from pearlnet.autodiff.core import ReverseTrace, Tracer, primitives
from pearlnet.check import GradientCheckError, check_grad, check_hvp, check_jvp, complex_step
from pearlnet.distributed import SingleProcess, sum_across
from pearlnet.numpy.elementwise import sigmoid_grad, tanh_grad

DIRECTIONS = 2


# ---- input domains: (rng, shapes) -> list of float64 arrays ---------------------------------
def _real(rng, shapes):
    return [np.asarray(rng.uniform(-1.5, 1.5, s), dtype=np.float64) for s in shapes]


def _wide(rng, shapes):
    return [np.asarray(rng.uniform(-4.0, 4.0, s), dtype=np.float64) for s in shapes]


def _positive(rng, shapes):
    return [np.asarray(rng.uniform(0.5, 2.0, s), dtype=np.float64) for s in shapes]


def _away(rng, shapes):
    """|x| in [0.3, 2] with a random sign: away from the kink of abs and the pole of 1/x."""
    out = []
    for s in shapes:
        mag = rng.uniform(0.3, 2.0, s)
        out.append(np.asarray(np.where(rng.random(s) < 0.5, -mag, mag), dtype=np.float64))
    return out


def _distinct(rng, shapes):
    """All entries of all inputs pairwise at least 0.2 apart and |x| >= 0.48: no ties for
    max/min/maximum/minimum (whatever the broadcasting) and no entry near 0. The points sit
    within 0.02 of the grid 0.25 * k, so the clip bounds -0.625, 0.875 are >= 0.1 away."""
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    n = sum(sizes)
    grid = 0.25 * np.array([k for k in range(-n - 2, n + 3) if abs(k) >= 2], dtype=np.float64)
    vals = rng.choice(grid, n, replace=False) + rng.uniform(-0.02, 0.02, n)
    out, start = [], 0
    for s, size in zip(shapes, sizes):
        out.append(vals[start:start + size].reshape(s))
        start += size
    return out


def _per_input(*domains):
    """A domain drawing input i from domains[i]."""
    def domain(rng, shapes):
        return [d(rng, [s])[0] for d, s in zip(domains, shapes)]
    return domain


# ---- the spec table --------------------------------------------------------------------------
@dataclass
class Case:
    shapes: tuple
    kwargs: dict
    id: str


def _shape_id(s: tuple) -> str:
    return "x".join(map(str, s)) if s else "s"


def _value_id(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype.kind}arr{_shape_id(v.shape)}"
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_value_id(a) for a in v) + ")"
    if isinstance(v, slice):
        return ":".join("" if a is None else str(a) for a in (v.start, v.stop, v.step))
    if v is Ellipsis:
        return "..."
    if isinstance(v, type):
        return v.__name__
    return str(v)


def case(shapes, id: str | None = None, **kwargs) -> Case:
    """A variant: input shapes (one shape, or a list for several inputs) and keywords."""
    if isinstance(shapes, tuple) and all(isinstance(s, int) for s in shapes):
        shapes = [shapes]
    shapes = tuple(tuple(s) for s in shapes)
    if id is None:
        parts = ["&".join(_shape_id(s) for s in shapes)]
        parts += [f"{k}={_value_id(v)}" for k, v in kwargs.items()]
        id = "-".join(parts)
    return Case(shapes, kwargs, id)


@dataclass
class Spec:
    name: str
    fun: Callable
    prims: tuple
    cases: list
    domain: Callable = _real
    argnums: tuple | None = None  # the differentiable inputs (default: all)
    analytic: bool = True  # False: the op cannot take a complex step (a cast to a real dtype)
    in_dtype: Any = np.float64
    float32_out: Any = np.float32  # dtype of f(float32 inputs)

    def diff_argnums(self, case: Case) -> tuple:
        return tuple(range(len(case.shapes))) if self.argnums is None else self.argnums


UNARY = [case(()), case((4,)), case((3, 4))]
BINARY = [case([(), ()]), case([(4,), (4,)]), case([(3, 4), (3, 4)]), case([(3, 1), (1, 4)]),
          case([(4,), (3, 4)]), case([(3, 4), ()]), case([(2, 3, 4), (3, 1)])]
REDUCE = ([case((3, 4), axis=a, keepdims=k) for a in (None, 0, -1, (0, 1)) for k in (False, True)]
          + [case((), axis=None, keepdims=False), case((2, 3, 4), axis=(2, 0), keepdims=False),
             case((2, 3, 4), axis=1, keepdims=True)])


def _unary(name, fun, prims, domain=_real, cases=UNARY):
    return Spec(name, fun, prims, cases, domain)


def _binary(name, fun, prims, domain=_real, cases=BINARY):
    return Spec(name, fun, prims, cases, domain)


def _reduction(name, fun, prims, domain=_real, cases=REDUCE):
    return Spec(name, fun, prims, cases, domain)


_untake = primitives["untake"]
_MASK5 = np.array([True, False, True, True, False])
_MASK45 = np.array([[True, False, False, True, True], [False, False, True, False, False],
                    [True, True, False, False, True], [False, True, True, False, False]])
_COND34 = _MASK45[:3, :4]
_COND31 = np.array([[True], [False], [True]])

GETITEM = [
    case((5,), "int", index=2), case((5,), "neg_int", index=-1),
    case((5,), "slice", index=slice(1, 4)), case((5,), "reverse", index=slice(None, None, -1)),
    case((5,), "neg_step", index=slice(4, 0, -2)),
    case((5,), "repeat_list", index=[0, 0, 1]),
    case((5,), "repeat_array", index=np.array([3, 1, 3, 3])),
    case((5,), "mask", index=_MASK5),
    case((4, 5), "row", index=1), case((4, 5), "column", index=(slice(None), 2)),
    case((4, 5), "element", index=(2, 3)),
    case((4, 5), "block_neg_step", index=(slice(1, 3), slice(None, None, -1))),
    case((4, 5), "pairs_repeat", index=(np.array([0, 2, 2]), np.array([1, 1, 4]))),
    case((4, 5), "rows_2d_array", index=np.array([[0, 1], [1, 3]])),
    case((4, 5), "mask2d", index=_MASK45),
    case((4, 5), "row_mask", index=np.array([True, False, True, True])),
    case((4, 5), "list_and_slice", index=([0, 2, 0], slice(1, 4))),
    case((4, 5), "newaxis_ellipsis", index=(None, Ellipsis, slice(None, None, 2))),
]

SPECS: list[Spec] = [
    # the cross-rank sum of data parallelism; in one process the identity, with its rules
    Spec("sum_across", lambda x: sum_across(x, SingleProcess()), ("sum_across",), UNARY),
    # the identity with a check of the values' range (labels, targets), made at every call
    _unary("check_range", lambda x: pnp.check_range(x, -1e6, 1e6), ("check_range",)),
    # ---- elementwise unary
    _unary("negative", lambda x: pnp.negative(x), ("negative",)),
    _unary("neg_operator", lambda x: -x, ("negative",)),
    _unary("exp", lambda x: pnp.exp(x), ("exp",)),
    _unary("log", lambda x: pnp.log(x), ("log",), _positive),
    _unary("log1p", lambda x: pnp.log1p(x), ("log1p",), _positive),
    _unary("expm1", lambda x: pnp.expm1(x), ("expm1",)),
    _unary("sqrt", lambda x: pnp.sqrt(x), ("sqrt",), _positive),
    _unary("square", lambda x: pnp.square(x), ("square",)),
    _unary("abs", lambda x: pnp.abs(x), ("abs",), _away),
    _unary("tanh", lambda x: pnp.tanh(x), ("tanh",)),
    _unary("sinh", lambda x: pnp.sinh(x), ("sinh",)),
    _unary("cosh", lambda x: pnp.cosh(x), ("cosh",)),
    _unary("sin", lambda x: pnp.sin(x), ("sin",)),
    _unary("cos", lambda x: pnp.cos(x), ("cos",)),
    _unary("sigmoid", lambda x: pnp.sigmoid(x), ("sigmoid",), _wide),
    _unary("softplus", lambda x: pnp.softplus(x), ("softplus",), _wide),
    _unary("relu", lambda x: pnp.relu(x), ("relu",), _away),
    _unary("reciprocal", lambda x: pnp.reciprocal(x), ("divide",), _away),
    _unary("log2", lambda x: pnp.log2(x), ("log", "divide"), _positive),
    _unary("log10", lambda x: pnp.log10(x), ("log", "divide"), _positive),
    # real and imag are not complex-linear (cos x and sin x through e^(ix)): no complex step
    Spec("real", lambda x: pnp.real(pnp.exp(x * 1j)), ("real", "exp"), UNARY, analytic=False),
    Spec("imag", lambda x: pnp.imag(pnp.exp(x * 1j)), ("imag", "exp"), UNARY, analytic=False),
    # the fused derivative factors of tanh and sigmoid, g (1 - y^2) and g y (1 - y): both
    # arguments of one shape (a cotangent and the output it belongs to)
    _binary("tanh_grad", lambda g, y: tanh_grad(g, y), ("tanh_grad",), cases=BINARY[:3]),
    _binary("sigmoid_grad", lambda g, y: sigmoid_grad(g, y), ("sigmoid_grad",),
            cases=BINARY[:3]),
    # ---- elementwise binary (broadcasting)
    _binary("add", lambda x, y: pnp.add(x, y), ("add",)),
    _binary("subtract", lambda x, y: pnp.subtract(x, y), ("subtract",)),
    _binary("multiply", lambda x, y: pnp.multiply(x, y), ("multiply",)),
    _binary("divide", lambda x, y: pnp.divide(x, y), ("divide",), _per_input(_real, _away)),
    _binary("operators",
            lambda x, y: ((x + y) * (x - y) / (3.0 + y * y) - 2.0 * x ** 2
                          + (1.0 - x) / (2.0 + y ** 2)),
            ("add", "subtract", "multiply", "divide", "power")),
    _unary("numpy_dispatch", lambda x: np.sum(np.sin(x) * np.exp(x), axis=-1),
           ("sin", "exp", "multiply", "sum"), cases=UNARY[1:]),
    _binary("power", lambda x, y: pnp.power(x, y), ("power",), _per_input(_positive, _real)),
    _binary("maximum", lambda x, y: pnp.maximum(x, y), ("maximum",), _distinct),
    _binary("minimum", lambda x, y: pnp.minimum(x, y), ("minimum",), _distinct),
    Spec("power_scalar", lambda x, p: pnp.power(x, p), ("power",),
         [case((3, 4), p=p) for p in (2, 3, 0.5, -1.5, 0, 1)] + [case((), p=2.5)], _positive),
    Spec("power_int_negative_base", lambda x, p: x ** p, ("power",),
         [case((3, 4), p=p) for p in (2, 3, -2)], _away),
    Spec("rpow", lambda y: pnp.power(2.0, y), ("power",), UNARY),
    Spec("where", lambda x, y, cond: pnp.where(cond, x, y), ("where",),
         [case([(3, 4), (3, 4)], cond=_COND34), case([(3, 4), (4,)], cond=_COND31),
          case([(), (3, 4)], cond=_COND34), case([(3, 1), (1, 4)], cond=_COND34)]),
    Spec("clip", lambda x, lo, hi: pnp.clip(x, lo, hi), ("maximum", "minimum"),
         [case(s, lo=-0.625, hi=0.875) for s in ((), (4,), (3, 4))]
         + [case((3, 4), lo=-0.625, hi=None), case((3, 4), lo=None, hi=0.875)], _distinct),
    Spec("clip_array_bounds", lambda x, lo, hi: pnp.clip(x, lo, hi), ("maximum", "minimum"),
         [case([(3, 4), (4,), (3, 1)]), case([(4,), (), ()])], _distinct),
    # ---- reductions
    _reduction("sum", lambda x, axis, keepdims: pnp.sum(x, axis, keepdims), ("sum",)),
    _reduction("mean", lambda x, axis, keepdims: pnp.mean(x, axis, keepdims), ("sum", "divide")),
    _reduction("var", lambda x, axis, keepdims, ddof=0: pnp.var(x, axis, keepdims, ddof),
               ("sum", "subtract", "square", "divide"),
               cases=[c for c in REDUCE if c.shapes != ((),)]
               + [case((3, 4), axis=0, keepdims=False, ddof=1)]),
    _reduction("std", lambda x, axis, keepdims, ddof=0: pnp.std(x, axis, keepdims, ddof),
               ("sum", "subtract", "square", "divide", "sqrt"),
               cases=[c for c in REDUCE if c.shapes != ((),)]
               + [case((3, 4), axis=None, keepdims=False, ddof=1)]),
    _reduction("max", lambda x, axis, keepdims: pnp.max(x, axis, keepdims), ("max",), _distinct),
    _reduction("min", lambda x, axis, keepdims: pnp.min(x, axis, keepdims), ("min",), _distinct),
    _reduction("prod", lambda x, axis, keepdims: pnp.prod(x, axis, keepdims), ("prod",), _away),
    _reduction("logsumexp", lambda x, axis, keepdims: pnp.logsumexp(x, axis, keepdims),
               ("logsumexp",), _wide),
    # ---- structure
    Spec("reshape", lambda x, shape: pnp.reshape(x, shape), ("reshape",),
         [case((3, 4), shape=(4, 3)), case((3, 4), shape=(-1,)), case((), shape=(1, 1)),
          case((2, 3, 4), shape=(6, 4)), case((12,), shape=(2, 2, 3))]),
    Spec("reshape_method", lambda x: x.reshape(2, -1), ("reshape",), [case((3, 4))]),
    Spec("ravel", lambda x: pnp.ravel(x), ("reshape",), [case((3, 4)), case((2, 1, 3))]),
    Spec("expand_dims", lambda x, axis: pnp.expand_dims(x, axis), ("reshape",),
         [case((3, 4), axis=a) for a in (0, 1, -1)]),
    Spec("squeeze", lambda x, axis: pnp.squeeze(x, axis), ("reshape",),
         [case((3, 1, 4), axis=None), case((3, 1, 4), axis=1), case((1, 4, 1), axis=-1)]),
    Spec("transpose", lambda x, axes: pnp.transpose(x, axes), ("transpose",),
         [case((3, 4), axes=None), case((2, 3, 4), axes=None), case((2, 3, 4), axes=(1, 0, 2)),
          case((2, 3, 4), axes=(2, 0, 1)), case((2, 3, 4), axes=(-1, 0, 1))]),
    Spec("T_property", lambda x: x.T, ("transpose",), [case((3, 4)), case((2, 3, 4))]),
    Spec("swapaxes", lambda x, a, b: pnp.swapaxes(x, a, b), ("transpose",),
         [case((2, 3, 4), a=0, b=2), case((3, 4), a=-1, b=0)]),
    Spec("moveaxis", lambda x, s, d: pnp.moveaxis(x, s, d), ("transpose",),
         [case((2, 3, 4), s=0, d=-1), case((2, 3, 4), s=2, d=0)]),
    Spec("broadcast_to", lambda x, shape: pnp.broadcast_to(x, shape), ("broadcast_to",),
         [case((4,), shape=(3, 4)), case((3, 1), shape=(3, 4)), case((), shape=(2, 3)),
          case((1, 4), shape=(2, 3, 4))]),
    Spec("getitem", lambda x, index: x[index], ("getitem",), GETITEM),
    Spec("untake", lambda g, index, shape: _untake(g, index=index, shape=shape), ("untake",),
         [case((3,), "repeat_list", index=[0, 0, 1], shape=(5,)),
          case((2,), "slice", index=slice(1, 3), shape=(5,)),
          case((3,), "mask", index=_MASK5, shape=(5,)),
          case((3, 3), "rows_repeat", index=(np.array([0, 2, 2]), slice(None)), shape=(4, 3))]),
    Spec("concatenate", lambda *xs, axis: pnp.concatenate(xs, axis=axis), ("concatenate",),
         [case([(2, 4), (3, 4)], axis=0), case([(3, 2), (3, 1), (3, 4)], axis=-1),
          case([(3, 2), (3, 1)], axis=1), case([(4,), (2,)], axis=0)]),
    Spec("stack", lambda *xs, axis: pnp.stack(xs, axis=axis), ("concatenate", "reshape"),
         [case([(3,), (3,)], axis=0), case([(2, 3), (2, 3), (2, 3)], axis=1),
          case([(2, 3), (2, 3)], axis=-1), case([(), ()], axis=0)]),
    Spec("split", lambda x, n, axis: pnp.split(x, n, axis), ("getitem",),
         [case((4, 6), n=2, axis=0), case((4, 6), n=[1, 4], axis=1), case((4, 6), n=3, axis=-1)]),
    Spec("astype", lambda x, dtype: pnp.astype(x, dtype), ("astype",),
         [case((3, 4), dtype=np.float64), case((), dtype=np.float64)],
         analytic=False, in_dtype=np.float32, float32_out=np.float64),
    # ---- products
    Spec("matmul", lambda x, y: pnp.matmul(x, y), ("matmul",),
         [case([(3, 4), (4, 5)]), case([(4,), (4, 5)]), case([(3, 4), (4,)]),
          case([(4,), (4,)]), case([(2, 3, 4), (4, 5)]), case([(2, 1, 3, 4), (5, 4, 2)]),
          case([(4,), (2, 4, 3)]), case([(2, 3, 4), (4,)])]),
    Spec("matmul_operator", lambda x, y: x @ y, ("matmul",), [case([(3, 4), (4, 5)])]),
    Spec("dot", lambda x, y: pnp.dot(x, y), ("matmul",),
         [case([(3,), (3,)]), case([(2, 3), (3,)]), case([(3,), (3, 4)]), case([(2, 3), (3, 4)]),
          case([(2, 3, 4), (4, 5)]), case([(2, 3, 4), (5, 4, 2)]), case([(3,), (2, 3, 4)])]),
    Spec("dot_scalar", lambda x, y: pnp.dot(x, y), ("multiply",),
         [case([(), (3,)]), case([(2, 3), ()])]),
    Spec("tensordot", lambda x, y, axes: pnp.tensordot(x, y, axes), ("matmul",),
         [case([(3, 4), (4, 5)], axes=1), case([(2, 3, 4), (3, 4, 5)], axes=2),
          case([(3, 4), (4, 5)], axes=([1], [0])), case([(3, 4, 2), (4, 3)], axes=([0, 1], [1, 0])),
          case([(3, 4), (3, 5)], axes=(0, 0))]),
    Spec("outer", lambda x, y: pnp.outer(x, y), ("multiply",), [case([(3,), (4,)])]),
    Spec("inner", lambda x, y: pnp.inner(x, y), ("matmul",),
         [case([(4,), (4,)]), case([(3, 4), (2, 4)])]),
    Spec("einsum", lambda *xs, spec: pnp.einsum(spec, *xs), ("einsum",),
         [case([(3, 4), (4, 5)], spec="ij,jk->ik"), case([(3, 4)], spec="ij->"),
          case([(4,), (4,)], spec="i,i->"), case([(2, 3, 4), (2, 4, 5)], spec="bij,bjk->bik"),
          case([(2, 3, 4), (4, 5)], spec="...ij,jk->...ik"), case([(3, 4), (4, 5)], spec="ij,jk"),
          case([(3, 4)], spec="ij->j"), case([(3, 4)], spec="ij->ji"),
          case([(3,), (4,)], spec="i,j"),
          case([(3, 4), (4, 5)], spec="ij,jk->i"),
          case([(2, 3), (3, 4), (4, 2)], spec="ij,jk,kl->il"),
          case([(2, 3, 4), (1, 4, 5)], spec="...ij,...jk->...ik")]),
    # ---- fused recurrent cells
    Spec("lstm_cell", lambda z, c: pnp.lstm_cell(z, c), ("lstm_cell",),
         [case([(8,), (2,)]), case([(3, 8), (3, 2)]), case([(2, 3, 4), (2, 3, 1)])], _wide),
    # ---- windows of NCHW arrays (convolution, pooling)
    Spec("im2col", lambda x, kernel, stride, padding: pnp.im2col(x, kernel, stride, padding),
         ("im2col",),
         [case((2, 3, 5, 5), kernel=3, stride=1, padding=0),
          case((1, 2, 6, 7), kernel=(3, 2), stride=(2, 1), padding=((1, 0), (2, 1))),
          case((2, 1, 4, 4), kernel=2, stride=2, padding=1)]),
    Spec("col2im", lambda c, shape, kernel, stride, padding: pnp.col2im(c, shape, kernel, stride,
                                                                        padding),
         ("col2im",),
         [case((3, 3, 3, 3, 3, 2), shape=(2, 3, 5, 5), kernel=3, stride=1, padding=0),
          case((2, 3, 2, 3, 9, 1), shape=(1, 2, 6, 7), kernel=(3, 2), stride=(2, 1),
               padding=((1, 0), (2, 1))),
          case((1, 2, 2, 3, 3, 2), shape=(2, 1, 4, 4), kernel=2, stride=2, padding=1)]),
    Spec("window_max", lambda x, kernel, stride: pnp.window_max(x, kernel, stride),
         ("window_max",),
         [case((2, 2, 4, 4), kernel=2, stride=None),
          case((1, 2, 5, 6), kernel=(2, 3), stride=(1, 2)),
          case((1, 1, 5, 5), kernel=3, stride=1)], _distinct),
]

SPEC_BY_NAME = {s.name: s for s in SPECS}
assert len(SPEC_BY_NAME) == len(SPECS), "spec names must be unique"


def _np_untake(g, index, shape):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


def _window_geometry(shape, kernel, stride, padding):
    """(kh, kw), (sh, sw), ((top, bottom), (left, right)), (OH, OW) of NCHW windows."""
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    kernel, stride = pair(kernel), pair(stride)
    padding = tuple(pair(p) for p in pair(padding))
    out = tuple((shape[2 + a] + sum(padding[a]) - kernel[a]) // stride[a] + 1 for a in (0, 1))
    return kernel, stride, padding, out


def _np_im2col(x, kernel, stride, padding):
    (kh, kw), (sh, sw), pad, (oh, ow) = _window_geometry(x.shape, kernel, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), *pad))
    out = np.zeros((x.shape[1], kh, kw, oh, ow, x.shape[0]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            for p in range(oh):
                for q in range(ow):
                    out[:, i, j, p, q, :] = xp[:, :, p * sh + i, q * sw + j].T
    return out


def _np_col2im(cols, shape, kernel, stride, padding):
    (kh, kw), (sh, sw), pad, (oh, ow) = _window_geometry(shape, kernel, stride, padding)
    (top, bottom), (left, right) = pad
    out = np.zeros((*shape[:2], shape[2] + top + bottom, shape[3] + left + right), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            for p in range(oh):
                for q in range(ow):
                    out[:, :, p * sh + i, q * sw + j] += cols[:, i, j, p, q, :].T
    return out[:, :, top:top + shape[2], left:left + shape[3]]


def _np_window_max(x, kernel, stride):
    (kh, kw), (sh, sw), _, (oh, ow) = _window_geometry(x.shape, kernel,
                                                       kernel if stride is None else stride, 0)
    out = np.zeros((*x.shape[:2], oh, ow), dtype=x.dtype)
    for p in range(oh):
        for q in range(ow):
            out[:, :, p, q] = x[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw].max(axis=(2, 3))
    return out


def _np_lstm_cell(z, c):
    """The LSTM step written out (seed 003, exercise 51), gates [i, f, o, g] along z's last axis."""
    i, f, o, g = np.split(z, 4, axis=-1)
    sigma = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    i, f, o, g = sigma(i), sigma(f), sigma(o), np.tanh(g)
    c_new = f * c + i * g
    return np.stack([o * np.tanh(c_new), c_new, i, f, o, g])


#: plain-NumPy references for the forward values, same signature as the spec's callable
REFERENCE: dict[str, Callable] = {
    "sum_across": lambda x: x,
    "check_range": lambda x: x,
    "negative": np.negative, "neg_operator": np.negative, "exp": np.exp, "log": np.log,
    "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "square": np.square, "abs": np.abs,
    "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "sin": np.sin, "cos": np.cos,
    "relu": lambda x: np.maximum(x, 0.0), "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "tanh_grad": lambda g, y: g * (1.0 - y * y), "sigmoid_grad": lambda g, y: g * y * (1.0 - y),
    "reciprocal": lambda x: 1.0 / x, "log2": np.log2, "log10": np.log10,
    "real": lambda x: np.real(np.exp(x * 1j)), "imag": lambda x: np.imag(np.exp(x * 1j)),
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "operators": lambda x, y: ((x + y) * (x - y) / (3.0 + y * y) - 2.0 * x ** 2
                               + (1.0 - x) / (2.0 + y ** 2)),
    "numpy_dispatch": lambda x: np.sum(np.sin(x) * np.exp(x), axis=-1),
    "power": np.power, "maximum": np.maximum, "minimum": np.minimum,
    "power_scalar": lambda x, p: np.power(x, p),
    "power_int_negative_base": lambda x, p: np.power(x, p),
    "rpow": lambda y: np.power(2.0, y),
    "where": lambda x, y, cond: np.where(cond, x, y),
    "clip": lambda x, lo, hi: np.clip(x, lo, hi),
    "clip_array_bounds": lambda x, lo, hi: np.clip(x, lo, hi),
    "sum": lambda x, axis, keepdims: np.sum(x, axis, keepdims=keepdims),
    "mean": lambda x, axis, keepdims: np.mean(x, axis, keepdims=keepdims),
    "var": lambda x, axis, keepdims, ddof=0: np.var(x, axis, keepdims=keepdims, ddof=ddof),
    "std": lambda x, axis, keepdims, ddof=0: np.std(x, axis, keepdims=keepdims, ddof=ddof),
    "max": lambda x, axis, keepdims: np.max(x, axis, keepdims=keepdims),
    "min": lambda x, axis, keepdims: np.min(x, axis, keepdims=keepdims),
    "prod": lambda x, axis, keepdims: np.prod(x, axis, keepdims=keepdims),
    "logsumexp": lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims)),
    "reshape": np.reshape, "reshape_method": lambda x: x.reshape(2, -1), "ravel": np.ravel,
    "expand_dims": np.expand_dims, "squeeze": np.squeeze, "transpose": np.transpose,
    "T_property": lambda x: x.T,
    "swapaxes": lambda x, a, b: np.swapaxes(x, a, b),
    "moveaxis": lambda x, s, d: np.moveaxis(x, s, d),
    "broadcast_to": np.broadcast_to, "getitem": lambda x, index: x[index],
    "untake": _np_untake,
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis: np.stack(xs, axis=axis),
    "split": lambda x, n, axis: np.split(x, n, axis),
    "astype": lambda x, dtype: x.astype(dtype),
    "matmul": np.matmul, "matmul_operator": np.matmul, "dot": np.dot, "dot_scalar": np.dot,
    "tensordot": np.tensordot, "outer": np.outer, "inner": np.inner,
    "einsum": lambda *xs, spec: np.einsum(spec, *xs),
    "im2col": lambda x, kernel, stride, padding: _np_im2col(x, kernel, stride, padding),
    "col2im": lambda c, shape, kernel, stride, padding: _np_col2im(c, shape, kernel, stride,
                                                                   padding),
    "window_max": lambda x, kernel, stride: _np_window_max(x, kernel, stride),
    "lstm_cell": lambda z, c: _np_lstm_cell(z, c),
}


# ---- harness ---------------------------------------------------------------------------------
def _seed(*parts: Any) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _leaves(tree):
    return pearlnet.tree_flatten(tree)[0]


class Problem:
    """One (spec, variant): inputs, f, and its scalarisation L with fixed weights."""

    def __init__(self, spec: Spec, c: Case, dtype: Any = None) -> None:
        self.spec, self.case = spec, c
        rng = np.random.default_rng(_seed(spec.name, c.id))
        dtype = spec.in_dtype if dtype is None else dtype
        self.xs = [np.asarray(x, dtype=dtype) for x in spec.domain(rng, list(c.shapes))]
        out = self.f(*self.xs)
        out_leaves, self.out_def = pearlnet.tree_flatten(out)
        wdt = np.float32 if np.dtype(dtype) == np.float32 else np.float64
        self.w = [rng.standard_normal(np.shape(o)).astype(wdt) for o in out_leaves]
        self.w2 = [rng.standard_normal(np.shape(o)).astype(wdt) for o in out_leaves]
        self.rng = rng

    def f(self, *xs):
        return self.spec.fun(*xs, **self.case.kwargs)

    def L(self, *xs):
        total = 0.0
        for o, w, w2 in zip(_leaves(self.f(*xs)), self.w, self.w2):
            total = total + pnp.sum(pnp.multiply(w, o)) \
                + 0.5 * pnp.sum(pnp.multiply(w2, pnp.multiply(o, o)))
        return total

    def only(self, fun: Callable, i: int) -> Callable:
        """fun viewed as a function of input i alone."""
        xs = list(self.xs)

        def g(xi):
            args = list(xs)
            args[i] = xi
            return fun(*args)
        return g


def _params(pred: Callable[[Spec], bool] = lambda s: True, per_argnum: bool = True):
    out = []
    for s in SPECS:
        if not pred(s):
            continue
        for c in s.cases:
            if per_argnum:
                for i in s.diff_argnums(c):
                    out.append(pytest.param(s, c, i, id=f"{s.name}-{c.id}-d{i}"))
            else:
                out.append(pytest.param(s, c, id=f"{s.name}-{c.id}"))
    return out


ALL_ARG = _params()
ALL = _params(per_argnum=False)
ANALYTIC_ARG = _params(lambda s: s.analytic)


def _close(a: complex, b: complex, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


# ---- 1. forward values are NumPy's ------------------------------------------------------------
def test_every_spec_has_a_reference():
    assert set(REFERENCE) == set(SPEC_BY_NAME)


@pytest.mark.parametrize("spec, c", ALL)
def test_value_matches_numpy(spec, c):
    p = Problem(spec, c)
    got = _leaves(p.f(*p.xs))
    want = _leaves(REFERENCE[spec.name](*p.xs, **c.kwargs))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14 * max(np.max(np.abs(b)), 1))


#: NumPy references for complex input where REFERENCE's has no complex loop
COMPLEX_REFERENCE: dict[str, Callable] = {
    "softplus": lambda x: np.log1p(np.exp(x)),  # the principal log(1 + e^x)
    "untake": lambda g, index, shape: _np_untake(g.real, index, shape)
    + 1j * _np_untake(g.imag, index, shape),
}


@pytest.mark.parametrize("spec, c", _params(lambda s: s.analytic, per_argnum=False))
def test_plain_complex_values_are_numpys(spec, c):
    """Outside complex_step(), plain complex input gets NumPy's result (the module's promise),
    with imaginary parts large enough that abs, sign and softplus's branches differ from the
    continuation (ties of kinked functions: test_boundaries_autodiff.py)."""
    p = Problem(spec, c)
    rng = np.random.default_rng(_seed("plain-complex", c.id))
    zs = [x + 1j * rng.uniform(-4.0, 4.0, x.shape) for x in p.xs]
    ref = COMPLEX_REFERENCE.get(spec.name, REFERENCE[spec.name])
    got, want = _leaves(p.spec.fun(*zs, **c.kwargs)), _leaves(ref(*zs, **c.kwargs))
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(np.max(np.abs(b)), 1))


# ---- 2. the table covers every primitive ------------------------------------------------------
@pytest.fixture(scope="module")
def library_primitives() -> set:
    """The names pearlnet itself registers, read in a fresh interpreter so that primitives
    other test modules define for their own purposes do not count."""
    code = ("import pearlnet, pearlnet.numpy\n"
            "from pearlnet.autodiff.core import primitives\n"
            "print('\\n'.join(primitives))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    names = set(out.split())
    assert names <= set(primitives)
    return names


def test_differentiable_primitives_have_rules_and_specs(library_primitives):
    covered = {p for s in SPECS for p in s.prims}
    unknown = covered - library_primitives
    assert not unknown, f"specs name primitives that do not exist: {unknown}"
    for name in sorted(library_primitives):
        prim = primitives[name]
        if not prim.differentiable:
            continue
        assert prim.vjps is not None and len(prim.vjps) > 0, f"{name} has no vjp rules"
        assert prim.jvps is not None and len(prim.jvps) > 0, f"{name} has no jvp rules"
        assert any(prim.vjps[i] is not None for i in range(min(len(prim.vjps), 4))), name
        assert any(prim.jvps[i] is not None for i in range(min(len(prim.jvps), 4))), name
        assert callable(prim.vjps[0]) or prim.vjps[0] is None, name
        assert name in covered, f"differentiable primitive {name!r} has no SPECS entry"


@pytest.mark.parametrize("spec, c", ALL)
def test_spec_records_its_primitives(spec, c):
    """Each variant records some of the primitives its spec claims (all of them, over the
    variants: checked below)."""
    p = Problem(spec, c)
    trace = ReverseTrace()
    boxed = [trace.new_input(x) for x in p.xs]
    p.f(*boxed)
    recorded = {node.prim.name for node in trace.tape if node.prim is not None}
    assert set(spec.prims) & recorded, f"recorded {recorded}"


def test_every_differentiable_primitive_is_recorded_by_some_spec(library_primitives):
    recorded = set()
    for s in SPECS:
        mine = set()
        for c in s.cases:
            p = Problem(s, c)
            trace = ReverseTrace()
            p.f(*[trace.new_input(x) for x in p.xs])
            mine |= {n.prim.name for n in trace.tape if n.prim is not None}
        assert set(s.prims) <= mine, f"{s.name} claims {s.prims}, records {mine}"
        recorded |= mine
    missing = {n for n in library_primitives if primitives[n].differentiable} - recorded
    assert not missing


NONDIFF = {
    "sign": lambda x, y: pnp.sign(x),
    "stop_gradient": lambda x, y: pnp.stop_gradient(x),
    "greater": lambda x, y: pnp.greater(x, y),
    "greater_equal": lambda x, y: pnp.greater_equal(x, y),
    "less": lambda x, y: pnp.less(x, y),
    "less_equal": lambda x, y: pnp.less_equal(x, y),
    "equal": lambda x, y: pnp.equal(x, y),
    "not_equal": lambda x, y: pnp.not_equal(x, y),
}


def test_nondiff_table_is_complete(library_primitives):
    assert set(NONDIFF) == {n for n in library_primitives if not primitives[n].differentiable}


@pytest.mark.parametrize("name", sorted(NONDIFF))
def test_nondifferentiable_primitive(name):
    fn = NONDIFF[name]
    rng = np.random.default_rng(_seed(name))
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    expected = {"sign": np.sign(x), "stop_gradient": x, "greater": x > y,
                "greater_equal": x >= y, "less": x < y, "less_equal": x <= y,
                "equal": x == y, "not_equal": x != y}[name]
    seen = []

    def f(a, b):
        out = fn(a, b)
        seen.append(out)
        return pnp.sum(pnp.multiply(pnp.astype(out, np.float64), a * 0 + 1.0))

    g = pearlnet.grad(f, argnums=(0, 1))(x, y)
    assert not isinstance(seen[-1], Tracer)
    np.testing.assert_array_equal(seen[-1], expected)
    for gi in g:
        np.testing.assert_array_equal(gi, np.zeros_like(x))
    _, t = pearlnet.jvp(lambda a, b: fn(a, b), (x, y), (np.ones_like(x), np.ones_like(y)))
    assert not isinstance(seen[-1], Tracer)
    np.testing.assert_array_equal(t, np.zeros(np.shape(expected)))
    hv = pearlnet.hvp(lambda a: f(a, y), x, np.ones_like(x))
    np.testing.assert_array_equal(hv, np.zeros_like(x))


def test_stop_gradient_blocks_only_its_path():
    x = np.array([0.5, -1.0, 2.0])
    g = pearlnet.grad(lambda a: pnp.sum(pnp.stop_gradient(a) * a))(x)
    np.testing.assert_array_equal(g, x)


# ---- 3a. gradient of L against the complex step ------------------------------------------------
@pytest.mark.parametrize("spec, c, i", ALL_ARG)
def test_grad_vs_complex_step(spec, c, i):
    p = Problem(spec, c)
    Li = p.only(p.L, i)
    if spec.analytic:
        check_grad(Li, p.xs[i], method="complex", rtol=1e-10, directions=DIRECTIONS,
                   seed=_seed(c.id, i))
    else:  # a cast to a real dtype drops the imaginary part; f is linear, L quadratic, so
        # central differences are exact up to rounding, and the gradient is float32
        check_grad(Li, p.xs[i], method="central", rtol=1e-6, directions=DIRECTIONS,
                   seed=_seed(c.id, i))
    g = pearlnet.grad(Li)(p.xs[i])
    assert g.shape == p.xs[i].shape and g.dtype == p.xs[i].dtype


# ---- 3b. forward and reverse mode are adjoint --------------------------------------------------
@pytest.mark.parametrize("spec, c, i", ALL_ARG)
def test_jvp_vjp_adjoint(spec, c, i):
    p = Problem(spec, c)
    fi = p.only(p.f, i)
    xi = p.xs[i]
    rng = np.random.default_rng(_seed("adjoint", c.id, i))
    out, pullback = pearlnet.vjp(fi, xi)
    out_leaves = _leaves(out)
    u = [rng.standard_normal(np.shape(o)) for o in out_leaves]
    v = rng.standard_normal(xi.shape).astype(xi.dtype)
    out2, jv = pearlnet.jvp(fi, (xi,), (v,))
    for a, b in zip(_leaves(out2), out_leaves):
        np.testing.assert_array_equal(a, b)
    (jtu,) = pullback(pearlnet.tree_unflatten(p.out_def, u))
    assert jtu.shape == xi.shape and jtu.dtype == xi.dtype
    jv_leaves = _leaves(jv)
    for t, o in zip(jv_leaves, out_leaves):
        assert np.shape(t) == np.shape(o)
    lhs = sum(float(np.sum(a * b)) for a, b in zip(u, jv_leaves))
    rhs = float(np.sum(jtu * v))
    rtol = 1e-12 if xi.dtype == np.float64 else 1e-6  # J^T u is rounded to a float32 input
    assert _close(lhs, rhs, rtol), (lhs, rhs)


# ---- 3c. Hessian-vector products of L ----------------------------------------------------------
@pytest.mark.parametrize("spec, c, i", ALL_ARG)
def test_hvp_vs_central_and_complex(spec, c, i):
    p = Problem(spec, c)
    Li = p.only(p.L, i)
    seed = _seed("hvp", c.id, i)
    check_hvp(Li, p.xs[i], method="central", directions=DIRECTIONS, seed=seed)
    if spec.analytic:
        check_hvp(Li, p.xs[i], method="complex", rtol=1e-10, directions=DIRECTIONS, seed=seed)
    # the same H v by reverse over reverse, and v^T H v by forward over forward
    xi = p.xs[i]
    v = np.random.default_rng(seed).standard_normal(xi.shape).astype(xi.dtype)
    hv = pearlnet.hvp(Li, xi, v)
    rr = pearlnet.grad(lambda a: pnp.sum(pnp.multiply(pearlnet.grad(Li)(a), v)))(xi)
    tol = 1e-12 if xi.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(rr, hv, rtol=tol, atol=tol * max(np.max(np.abs(hv)), 1.0))
    _, vhv = pearlnet.jvp(lambda a: pearlnet.jvp(Li, (a,), (v,))[1], (xi,), (v,))
    assert _close(float(vhv), float(np.sum(hv * v)), tol), (vhv, np.sum(hv * v))


MULTI = [prm for prm in _params(per_argnum=False)
         if len(prm.values[0].diff_argnums(prm.values[1])) > 1]


@pytest.mark.parametrize("spec, c", MULTI)
def test_joint_inputs_mixed_partials(spec, c):
    """All differentiable inputs at once (a tuple): the mixed second derivatives too."""
    p = Problem(spec, c)
    nums = spec.diff_argnums(c)

    def L(xs):
        args = list(p.xs)
        for k, x in zip(nums, xs):
            args[k] = x
        return p.L(*args)

    x0 = tuple(p.xs[k] for k in nums)
    seed = _seed("joint", c.id)
    check_grad(L, x0, method="complex", rtol=1e-10, directions=DIRECTIONS, seed=seed)
    check_hvp(L, x0, method="central", directions=DIRECTIONS, seed=seed)
    check_hvp(L, x0, method="complex", rtol=1e-10, directions=DIRECTIONS, seed=seed)


# ---- 3d. float32 in, float32 out ----------------------------------------------------------------
@pytest.mark.parametrize("spec, c, i", ALL_ARG)
def test_float32_stays_float32(spec, c, i):
    p = Problem(spec, c, dtype=np.float32)
    for o in _leaves(p.f(*p.xs)):
        assert np.result_type(o) == spec.float32_out
    xi = p.xs[i]
    g = pearlnet.grad(p.only(p.L, i))(xi)
    assert g.dtype == np.float32 and g.shape == xi.shape
    v = np.ones_like(xi)
    _, t = pearlnet.jvp(p.only(p.f, i), (xi,), (v,))
    for leaf in _leaves(t):
        assert np.result_type(leaf) == spec.float32_out
    hv = pearlnet.hvp(p.only(p.L, i), xi, v)
    assert hv.dtype == np.float32 and hv.shape == xi.shape
    # and the float32 gradient is the float64 one, rounded
    p64 = Problem(spec, c)
    g64 = pearlnet.grad(p64.only(p64.L, i))(p64.xs[i])
    scale = max(np.max(np.abs(g64), initial=0.0), 1.0)
    np.testing.assert_allclose(g, g64, rtol=2e-3, atol=2e-3 * scale)


# ---- 3e. complex128 in, complex128 out; the complex step of f is its jvp ---------------------
@pytest.mark.parametrize("spec, c, i", ANALYTIC_ARG)
def test_complex_input_and_jvp_vs_complex_step(spec, c, i):
    p = Problem(spec, c)
    rng = np.random.default_rng(_seed("complex", c.id, i))
    zs = [x + 1e-3j * rng.standard_normal(x.shape) for x in p.xs]
    with complex_step():  # plain complex arrays: the analytic continuation, as traced ones
        for o in _leaves(p.f(*zs)):
            assert np.result_type(o) == np.complex128
    check_jvp(p.only(p.f, i), p.xs[i], method="complex", rtol=1e-10, directions=DIRECTIONS,
              seed=_seed(c.id, i))
    # holomorphic derivatives at a complex point: the jvp is the complex step there too
    zi = zs[i]
    v = rng.standard_normal(zi.shape)
    _, jv = pearlnet.jvp(lambda z: p.f(*(zs[:i] + [z] + zs[i + 1:])), (zi,), (v,))
    h = 1e-7
    with complex_step():
        plus = p.f(*(zs[:i] + [zi + h * v] + zs[i + 1:]))
        minus = p.f(*(zs[:i] + [zi - h * v] + zs[i + 1:]))
    for t, a, b in zip(_leaves(jv), _leaves(plus), _leaves(minus)):
        np.testing.assert_allclose(t, (a - b) / (2 * h), rtol=1e-6, atol=1e-8)


# ---- 5. hvp through an op composed with itself ------------------------------------------------
COMPOSABLE = ["negative", "exp", "expm1", "square", "tanh", "sinh", "cos", "sigmoid",
              "softplus", "sin"]


@pytest.mark.parametrize("name", COMPOSABLE)
def test_hvp_of_composition(name):
    spec = SPEC_BY_NAME[name]
    c = spec.cases[-1]
    p = Problem(spec, c)
    x = p.xs[0] * 0.5

    def L(a):
        return p.L(p.f(a))

    check_hvp(L, x, method="central", directions=DIRECTIONS, seed=1)
    check_hvp(L, x, method="complex", rtol=1e-10, directions=DIRECTIONS, seed=1)


# ---- 4. hand-computed values ------------------------------------------------------------------
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_extremum_tie_splits_gradient(op):
    fn = getattr(pnp, op)
    x = np.array([1.0, 2.0, -3.0])
    y = np.array([1.0, 0.0, -3.0])
    gx, gy = pearlnet.grad(lambda a, b: pnp.sum(fn(a, b)), argnums=(0, 1))(x, y)
    big = 1.0 if op == "maximum" else 0.0
    np.testing.assert_array_equal(gx, [0.5, big, 0.5])
    np.testing.assert_array_equal(gy, [0.5, 1.0 - big, 0.5])
    _, t = pearlnet.jvp(fn, (x, y), (np.array([2.0, 2.0, 2.0]), np.array([4.0, 4.0, 4.0])))
    np.testing.assert_array_equal(t, [3.0, 2.0 if big else 4.0, 3.0])


def test_clip_at_bound_gets_half():
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    g = pearlnet.grad(lambda a: pnp.sum(pnp.clip(a, -1.0, 1.0)))(x)
    np.testing.assert_array_equal(g, [0.5, 1.0, 0.5, 0.0])


@pytest.mark.parametrize("op", ["max", "min"])
def test_extreme_reduction_ties_share_gradient(op):
    fn = getattr(pnp, op)
    sgn = 1.0 if op == "max" else -1.0
    x = sgn * np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(pearlnet.grad(lambda a: fn(a))(x), [0, 0.5, 0.5, 0])
    m = sgn * np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0], [0.0, 5.0, 1.0]])
    g = pearlnet.grad(lambda a: pnp.sum(fn(a, axis=1)))(m)
    np.testing.assert_allclose(g, [[0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1, 0]],
                               rtol=1e-15)
    _, t = pearlnet.jvp(lambda a: fn(a, axis=1), (m,), (np.arange(9.0).reshape(3, 3),))
    np.testing.assert_allclose(t, [0.5, 4.0, 7.0], rtol=1e-15)
    g0 = pearlnet.grad(lambda a: pnp.sum(fn(a, axis=0, keepdims=True)))(m)
    np.testing.assert_allclose(g0, [[0, 0, 0], [1, 0, 1], [0, 1, 0]])


def test_abs_derivative_is_sign():
    x = np.array([-2.0, -0.3, 0.3, 1.5])
    np.testing.assert_array_equal(pearlnet.grad(lambda a: pnp.sum(pnp.abs(a)))(x), np.sign(x))
    np.testing.assert_array_equal(pearlnet.grad(lambda a: pnp.sum(abs(a)))(x), np.sign(x))
    np.testing.assert_array_equal(pearlnet.hvp(lambda a: pnp.sum(pnp.abs(a)), x, np.ones(4)),
                                  np.zeros(4))


def test_getitem_repeated_indices_accumulate():
    x = np.arange(5.0)
    g = pearlnet.grad(lambda a: pnp.sum(a[[0, 0, 1]]))(x)
    np.testing.assert_array_equal(g, [2, 1, 0, 0, 0])
    g = pearlnet.grad(lambda a: pnp.sum(a[np.array([4, 4, 4, 0])]))(x)
    np.testing.assert_array_equal(g, [1, 0, 0, 0, 3])
    m = np.arange(12.0).reshape(3, 4)
    g = pearlnet.grad(lambda a: pnp.sum(a[[0, 2, 0], [1, 1, 1]]))(m)
    expect = np.zeros((3, 4))
    expect[0, 1], expect[2, 1] = 2, 1
    np.testing.assert_array_equal(g, expect)
    # second order: L = 2 x0^2 + x1^2 + x3^2 (x0 taken twice) has Hessian diag(4, 2, 0, 2, 0)
    h = pearlnet.hessian(lambda a: pnp.sum(pnp.square(a[[0, 0, 1, 3]])))(x)
    np.testing.assert_array_equal(h, np.diag([4.0, 2.0, 0.0, 2.0, 0.0]))


def test_prod_with_one_zero():
    x = np.array([2.0, 0.0, 3.0, 4.0])
    np.testing.assert_array_equal(pearlnet.grad(lambda a: pnp.prod(a))(x), [0, 24, 0, 0])
    h = pearlnet.hessian(lambda a: pnp.prod(a))(x)
    expect = np.zeros((4, 4))  # d2/dxi dxj = product of the entries other than i, j
    expect[1, 0] = expect[0, 1] = 12.0
    expect[1, 2] = expect[2, 1] = 8.0
    expect[1, 3] = expect[3, 1] = 6.0
    np.testing.assert_array_equal(h, expect)
    _, t = pearlnet.jvp(pnp.prod, (x,), (np.array([1.0, 2.0, 3.0, 4.0]),))
    assert t == 48.0


def test_prod_with_two_zeros():
    x = np.array([2.0, 0.0, 3.0, 0.0])
    np.testing.assert_array_equal(pearlnet.grad(lambda a: pnp.prod(a))(x), [0, 0, 0, 0])
    h = pearlnet.hessian(lambda a: pnp.prod(a))(x)
    expect = np.zeros((4, 4))
    expect[1, 3] = expect[3, 1] = 6.0  # the product of the two non-zero entries
    np.testing.assert_array_equal(h, expect)


def test_prod_with_zeros_along_an_axis():
    m = np.array([[2.0, 0.0, 3.0], [1.0, 2.0, 4.0], [0.0, 5.0, 0.0]])
    g = pearlnet.grad(lambda a: pnp.sum(pnp.prod(a, axis=1)))(m)
    np.testing.assert_array_equal(g, [[0, 6, 0], [8, 4, 2], [0, 0, 0]])
    g = pearlnet.grad(lambda a: pnp.sum(pnp.prod(a, axis=0, keepdims=True)))(m)
    np.testing.assert_array_equal(g, [[0, 10, 0], [0, 0, 0], [2, 0, 12]])
    check_hvp(lambda a: pnp.sum(pnp.prod(a, axis=1) ** 2), m, method="complex", rtol=1e-10)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (2, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_prod_with_zeros_matches_complex_step(axis, keepdims):
    """At exact zeros the rules take the rebuilt-slice branch; the complex step moves the zeros
    to i h p, where prod is a polynomial again, so it checks that branch to rounding."""
    rng = np.random.default_rng(_seed("prod0", axis, keepdims))
    x = rng.uniform(0.5, 2.0, (2, 3, 4))
    x[0, 1, 2] = x[1, 0, 0] = x[1, 0, 3] = 0.0  # two zeros share slices along axes 2, (0, 2)
    w = rng.standard_normal(np.shape(np.prod(x, axis=axis, keepdims=keepdims)))

    def f(a):
        return pnp.prod(a, axis, keepdims)

    def L(a):
        return pnp.sum(w * f(a)) + 0.5 * pnp.sum(w * f(a) * f(a))

    check_grad(L, x, method="complex", rtol=1e-10, directions=DIRECTIONS)
    check_jvp(f, x, method="complex", rtol=1e-10, directions=DIRECTIONS)
    check_hvp(L, x, method="complex", rtol=1e-10, directions=DIRECTIONS)


@pytest.mark.parametrize("x", [800.0, -800.0])
def test_sigmoid_softplus_stable(x):
    a = np.array([x])
    s = pnp.sigmoid(a)
    sp = pnp.softplus(a)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    assert s[0] == (1.0 if x > 0 else 0.0)
    assert sp[0] == (x if x > 0 else 0.0)
    gs = pearlnet.grad(lambda b: pnp.sum(pnp.sigmoid(b)))(a)
    gsp = pearlnet.grad(lambda b: pnp.sum(pnp.softplus(b)))(a)
    assert gs[0] == 0.0
    assert gsp[0] == (1.0 if x > 0 else 0.0)
    for fn in (pnp.sigmoid, pnp.softplus):
        hv = pearlnet.hvp(lambda b, fn=fn: pnp.sum(fn(b)), a, np.ones(1))
        assert np.all(np.isfinite(hv)) and hv[0] == 0.0
        _, t = pearlnet.jvp(fn, (a,), (np.ones(1),))
        assert np.all(np.isfinite(t))


def test_sigmoid_softplus_moderate_values_exact():
    x = np.array([-30.0, -2.0, 0.0, 3.0, 30.0])
    np.testing.assert_allclose(pnp.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(pnp.softplus(x), np.log1p(np.exp(x)), rtol=1e-15)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(pearlnet.grad(lambda b: pnp.sum(pnp.softplus(b)))(x), s,
                               rtol=1e-15)
    np.testing.assert_allclose(pearlnet.grad(lambda b: pnp.sum(pnp.sigmoid(b)))(x), s * (1 - s),
                               rtol=1e-14)


def test_logsumexp_with_minus_inf():
    x = np.array([-np.inf, 0.0])
    assert pnp.logsumexp(x) == 0.0
    g = pearlnet.grad(pnp.logsumexp)(x)
    np.testing.assert_array_equal(g, [0.0, 1.0])
    m = np.array([[-np.inf, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(pnp.logsumexp(m, axis=1), [0.0, 1.0 + np.log(2.0)], rtol=1e-15)


def test_logsumexp_large_values_do_not_overflow():
    x = np.array([1000.0, 1000.0, 999.0])
    expect = 1000.0 + np.log(2.0 + np.exp(-1.0))
    assert np.isclose(pnp.logsumexp(x), expect, rtol=1e-15, atol=0)
    g = pearlnet.grad(pnp.logsumexp)(x)
    # the softmax is exp(x - lse) with lse ~ 1000 rounded to its ulp (1.1e-13): the inputs'
    # own rounding, |x| * eps = 2.2e-13, bounds the attainable relative accuracy
    np.testing.assert_allclose(g, np.array([1.0, 1.0, np.exp(-1.0)]) / (2 + np.exp(-1.0)),
                               rtol=4 * 1000 * np.finfo(float).eps)
    hv = pearlnet.hvp(pnp.logsumexp, x, np.array([1.0, 0.0, 0.0]))
    assert np.all(np.isfinite(hv))
    assert np.isclose(pnp.logsumexp(-x), -999.0 + np.log(1.0 + 2 * np.exp(-1.0)), rtol=1e-15)


def test_power_zero_exponent_at_zero():
    x = np.array([0.0, 1.5, -2.0])
    g = pearlnet.grad(lambda a: pnp.sum(a ** 0))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])
    y = np.zeros(3)
    gx, gy = pearlnet.grad(lambda a, b: pnp.sum(pnp.power(a, b)), argnums=(0, 1))(x[:2], y[:2])
    np.testing.assert_array_equal(gx, [0.0, 0.0])
    np.testing.assert_allclose(gy, [0.0, np.log(1.5)], rtol=1e-15)
    hv = pearlnet.hvp(lambda a: pnp.sum(a ** 0), x, np.ones(3))
    np.testing.assert_array_equal(hv, np.zeros(3))
    # x**2 at 0 and d(x**y)/dy at x = 0 are finite too
    np.testing.assert_array_equal(pearlnet.grad(lambda a: pnp.sum(a ** 2))(np.zeros(2)), [0, 0])
    gy = pearlnet.grad(lambda b: pnp.sum(pnp.power(np.zeros(2), b)))(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(gy, [0.0, 0.0])


def test_where_condition_not_differentiated():
    x = np.array([-1.0, 0.5, 2.0, -0.2])

    def f(a):
        return pnp.sum(pnp.where(a > 0, a ** 2, -3.0 * a))

    np.testing.assert_array_equal(pearlnet.grad(f)(x), np.where(x > 0, 2 * x, -3.0))
    # a traced (float) condition: stripped, only its truth value matters
    cond = np.array([1.0, 0.0, 1.0, 0.0])
    g = pearlnet.grad(lambda c: pnp.sum(pnp.where(c, c * 2.0, 5.0 * c)))(cond)
    np.testing.assert_array_equal(g, [2.0, 5.0, 2.0, 5.0])
    gx, gy = pearlnet.grad(lambda a, b: pnp.sum(pnp.where(x > 0, a, b)), argnums=(0, 1))(x, -x)
    np.testing.assert_array_equal(gx, (x > 0).astype(float))
    np.testing.assert_array_equal(gy, (x <= 0).astype(float))


def test_check_detects_a_wrong_rule():
    """The checks used above would catch a broken rule (guards against vacuous passes)."""
    bad = pearlnet.Primitive("_test_bad_square", np.square)
    try:
        bad.defvjp(lambda g, ans, x: 3.0 * g * x)
        bad.defjvp(lambda t, ans, x: 2.0 * t * x)
        with pytest.raises(GradientCheckError):
            check_grad(lambda a: pnp.sum(bad(a)), np.array([0.5, 1.5]), rtol=1e-10)
        check_jvp(lambda a: bad(a), np.array([0.5, 1.5]), rtol=1e-10)
    finally:
        del primitives["_test_bad_square"]


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_matmul_sums_a_long_contraction_in_slices_to_the_same_product(dtype, rtol):
    """A few rows and columns and a long contraction (a convolution's weight gradient) run as
    a sum over slices (linalg.SMALL_PRODUCT); eager, compiled and reverse mode agree with
    NumPy's one product."""
    import pearlnet
    from pearlnet.numpy import linalg

    rng = np.random.default_rng(0)
    k = 3 * linalg.SMALL_PRODUCT // (6 * 25) + 17  # three slices and a remainder
    x = rng.standard_normal((6, k)).astype(dtype)
    y = rng.standard_normal((25, k)).astype(dtype).T  # a transposed view, as the rules make
    want = np.matmul(x.astype(np.float64), y.astype(np.float64))
    atol = rtol * np.sqrt(k)  # rounding grows with the sum's length (terms of size 1)
    np.testing.assert_allclose(pnp.matmul(x, y), want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(pearlnet.jit(pnp.matmul)(x, y), want, rtol=rtol, atol=atol)
    g = rng.standard_normal((6, 25)).astype(dtype)
    _, pullback = pearlnet.vjp(lambda a: pnp.matmul(a, y), x)
    (gx,) = pullback(g)
    np.testing.assert_allclose(gx, g.astype(np.float64) @ y.T.astype(np.float64), rtol=rtol,
                               atol=atol)
    # the weight gradient of a long contraction is such a product: x^T g summed over k rows
    w = rng.standard_normal((k, 25)).astype(dtype)
    gw = pearlnet.grad(lambda w: pnp.sum(pnp.matmul(x, w) * g))(w)
    np.testing.assert_allclose(gw, x.T.astype(np.float64) @ g.astype(np.float64), rtol=rtol,
                               atol=atol)
