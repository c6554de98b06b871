"""Products: matmul and einsum are primitives (BLAS does the work); dot, tensordot and outer
are compositions of them with reshapes and transposes, as NumPy itself builds tensordot."""

from __future__ import annotations

import string
from typing import Any, Sequence

import numpy as np

from ._batch import pad_after_batch, to_front
from ._util import Primitive, dtype_of, shape_of
from .elementwise import multiply
from .shapes import (
    broadcast_to,
    expand_dims,
    reshape,
    swapaxes,
    transpose,
    unbroadcast,
    untake_p,
)
from .shapes import (
    moveaxis as moveaxis_,
)

__all__ = ["matmul", "dot", "tensordot", "einsum", "outer", "inner"]

# OpenBLAS multiplies a product with few rows and columns but a long contraction (a
# convolution's weight gradient, 6 x 100,352 @ 100,352 x 25) 3-5 times slower in one call than
# as a sum over slices of the contraction: its kernels for small products stop at about 10^6
# multiply-adds, and the general kernels pack for large blocks (docs/jit.md, "Where the time
# goes"). Below SMALL_OUTPUT entries, a contraction longer than two slices is summed in slices.
SMALL_OUTPUT = 256
SMALL_PRODUCT = 600_000


def _matmul_impl(x: Any, y: Any, out: Any = None) -> Any:
    if (type(x) is np.ndarray and type(y) is np.ndarray and x.ndim == 2 and y.ndim == 2
            and x.dtype.kind == "f" and x.dtype == y.dtype):
        m, k = x.shape
        n = y.shape[1]
        if m * n <= SMALL_OUTPUT and y.shape[0] == k:
            step = SMALL_PRODUCT // max(m * n, 1)
            if k > 2 * step:
                out = np.matmul(x[:, :step], y[:step], out=out)
                part = np.empty_like(out)
                for start in range(step, k, step):
                    np.matmul(x[:, start:start + step], y[start:start + step], out=part)
                    out += part
                return out
    return np.matmul(x, y, out=out)


matmul = Primitive("matmul", _matmul_impl)
"""x @ y, NumPy's matmul: vectors (k,), matrices (n, k) @ (k, m), stacks of matrices broadcast
over the leading axes. Bilinear: d(x y) = dx y + x dy; the reverse rules are g y^T for x and
x^T g for y, summed over the batch axes broadcasting added.

>>> import pearlnet, pearlnet.numpy as pnp
>>> x, y = pnp.array([[1.0, 2.0]]), pnp.array([[3.0], [4.0]])
>>> pnp.matmul(x, y)
array([[11.]])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.matmul(x, y)))(x)
array([[3., 4.]])
"""


def _matmul_vjp_x(g, ans, x, y):
    xs, ys = shape_of(x), shape_of(y)
    if len(xs) == 1 and len(ys) == 1:
        return multiply(g, y)
    if len(ys) == 1:  # (..., n, k) @ (k,) -> (..., n)
        return unbroadcast(multiply(expand_dims(g, -1), y), xs)
    if len(xs) == 1:  # (k,) @ (..., k, m) -> (..., m)
        return unbroadcast(matmul(y, expand_dims(g, -1))[..., 0], xs)
    return unbroadcast(matmul(g, swapaxes(y, -1, -2)), xs)


def _matmul_vjp_y(g, ans, x, y):
    xs, ys = shape_of(x), shape_of(y)
    if len(xs) == 1 and len(ys) == 1:
        return multiply(g, x)
    if len(ys) == 1:  # (..., n, k) @ (k,): g (..., n)
        return unbroadcast(matmul(expand_dims(g, -2), x), ys)
    if len(xs) == 1:  # (k,) @ (..., k, m): g (..., m)
        return unbroadcast(multiply(expand_dims(x, -1), expand_dims(g, -2)), ys)
    return unbroadcast(matmul(swapaxes(x, -1, -2), g), ys)


def _matmul_jvp_x(t, ans, x, y):
    return matmul(t, y)


def _matmul_jvp_y(t, ans, x, y):
    return matmul(x, t)


def _matmul_output_spec(x, y):
    xs, ys = np.shape(x), np.shape(y)
    if len(xs) < 2 or len(ys) < 2 or xs[-1] != ys[-2]:
        return None  # vectors, or a shape error NumPy should report now
    try:
        batch = np.broadcast_shapes(xs[:-2], ys[:-2])
    except ValueError:
        return None
    # nested lists count by their values' type, not as a Python object
    return batch + (xs[-2], ys[-1]), np.result_type(*(np.asarray(a) if isinstance(a, (list, tuple))
                                                      else a for a in (x, y)))


matmul.out_impl = lambda out, x, y: _matmul_impl(x, y, out=out)  # jit's out= form
matmul.defvjp(_matmul_vjp_x, _matmul_vjp_y)
matmul.defjvp(_matmul_jvp_x, _matmul_jvp_y)
matmul.output_spec = _matmul_output_spec  # its forward rules never read the product


def _matmul_batch(args, dims):
    """Batched matmul, as one large product where a side is shared by all examples (the
    common cases: a batch of inputs times a weight matrix, a weight matrix times a batch)."""
    (x, y), (dx, dy) = args, dims
    a, b = len(shape_of(x)) - (dx is not None), len(shape_of(y)) - (dy is not None)
    if dy is None and b == 2:  # (B, ..., k) @ (k, m): the examples' rows stacked, one product
        x = to_front(x, dx)
        xs = shape_of(x)
        out = matmul(reshape(x, (-1, xs[-1])), y)
        return reshape(out, xs[:-1] + (shape_of(y)[-1],)), 0
    if dx is None and b == 2 and a in (1, 2):  # (.., k) @ (B, k, m): columns side by side
        y = moveaxis_(to_front(y, dy), 0, 1)  # (k, B, m)
        k, size, m = shape_of(y)
        out = matmul(x, reshape(y, (k, size * m)))
        return reshape(out, shape_of(out)[:-1] + (size, m)), a - 1
    # general: both batch-first (an unbatched side gets a batch axis of 1), vectors made
    # matrices, ranks matched behind the batch axis; NumPy broadcasts the rest
    x = expand_dims(x, 0) if dx is None else to_front(x, dx)
    y = expand_dims(y, 0) if dy is None else to_front(y, dy)
    if a == 1:
        x = expand_dims(x, -2)
    if b == 1:
        y = expand_dims(y, -1)
    rank = max(len(shape_of(x)), len(shape_of(y))) - 1
    x, y = pad_after_batch(x, rank), pad_after_batch(y, rank)
    if shape_of(x)[-1] == 1:  # outer products (a per-example weight gradient from one row):
        out = multiply(x, y)  # NumPy's stacked matmul runs these ~20x slower than a multiply
    else:
        out = matmul(x, y)
    if b == 1:
        out = out[..., 0]
    if a == 1:
        out = out[..., 0, :] if b != 1 else out[..., 0]
    return out, 0


matmul.defbatch(_matmul_batch)


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """NumPy's tensordot, as NumPy computes it: transpose, reshape to matrices, one matmul."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, (int, np.integer)):
        axes_a = list(range(len(sa) - axes, len(sa)))
        axes_b = list(range(axes))
    else:
        axes_a, axes_b = ([axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                          [axes[1]] if isinstance(axes[1], int) else list(axes[1]))
    axes_a = [x % len(sa) for x in axes_a]
    axes_b = [x % len(sb) for x in axes_b]
    if len(axes_a) != len(axes_b) or any(sa[i] != sb[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError(f"tensordot: shapes {sa} and {sb} do not match on axes "
                         f"{axes_a} and {axes_b}")
    free_a = [i for i in range(len(sa)) if i not in axes_a]
    free_b = [j for j in range(len(sb)) if j not in axes_b]
    n = int(np.prod([sa[i] for i in axes_a], dtype=np.int64))
    at = reshape(transpose(a, free_a + axes_a), (-1, n))
    bt = reshape(transpose(b, axes_b + free_b), (n, -1))
    return reshape(matmul(at, bt), tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def dot(a: Any, b: Any) -> Any:
    """NumPy's dot: a product with a scalar, matmul up to 2-D, and for N-D a sum over the last
    axis of a and the second-to-last of b."""
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [max(len(sb) - 2, 0)]))


def outer(a: Any, b: Any) -> Any:
    """The outer product a_i b_j of a and b flattened (NumPy's outer), shape (a.size, b.size), as
    a broadcast multiply: d(a b^T) = da b^T + a db^T.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> a, b = pnp.array([1.0, 2.0]), pnp.array([3.0, 4.0, 5.0])
    >>> pnp.outer(a, b)
    array([[ 3.,  4.,  5.],
           [ 6.,  8., 10.]])
    >>> pearlnet.grad(lambda a: pnp.sum(pnp.outer(a, b)))(a)  # sum(b) for each a_i
    array([12., 12.])
    """
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def inner(a: Any, b: Any) -> Any:
    """NumPy's inner: the sum of products over the last axis of a and of b (a scalar operand
    multiplies instead), a tensordot, so one matmul; bilinear: d<a, b> = <da, b> + <a, db>.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> a, b = pnp.array([1.0, 2.0]), pnp.array([3.0, 4.0])
    >>> float(pnp.inner(a, b))
    11.0
    >>> pearlnet.grad(lambda a: pnp.inner(a, b))(a)
    array([3., 4.])
    """
    if len(shape_of(a)) == 0 or len(shape_of(b)) == 0:  # NumPy: a scalar operand multiplies
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


# ---- einsum ----------------------------------------------------------------------------------
def _einsum_spec(subscripts: str, shapes: Sequence[tuple]) -> tuple[tuple[str, ...], str]:
    """Explicit form of an einsum specification: one letter string per operand and the output,
    with '...' replaced by letters the specification does not use."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, out = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, got {len(shapes)}")
    free = [c for c in string.ascii_letters if c not in subscripts]
    nell = max([len(s) - len(i.replace("...", "")) for i, s in zip(ins, shapes) if "..." in i],
               default=0)
    ell = "".join(free[:nell])
    spec = []
    for i, s in zip(ins, shapes):
        if "..." in i:
            k = len(s) - len(i.replace("...", ""))
            i = i.replace("...", ell[nell - k:])
        if len(i) != len(s):
            raise ValueError(f"einsum: operand {i!r} has {len(i)} indices but shape {s}")
        spec.append(i)
    if arrow:
        out = out.replace("...", ell)
    else:
        letters = "".join(spec)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    return tuple(spec), out


def _einsum_impl(*ops, spec, out):
    path = len(ops) > 2 or any(np.ndim(o) > 2 for o in ops)
    return np.einsum(",".join(spec) + "->" + out, *ops, optimize=path)


einsum_p = Primitive("einsum", _einsum_impl)


def _einsum_vjp(argnum, g, ans, *ops, spec, out):
    target = spec[argnum]
    if len(set(target)) != len(target):
        return _einsum_diagonal_vjp(argnum, g, ans, *ops, spec=spec, out=out)
    others = [s for i, s in enumerate(spec) if i != argnum]
    present = set(out).union(*others) if others else set(out)
    kept = "".join(c for c in target if c in present)
    res = einsum_p(g, *[o for i, o in enumerate(ops) if i != argnum],
                   spec=(out, *others), out=kept)
    xshape = shape_of(ops[argnum])
    # '...' axes of length 1 that einsum broadcast against the other operands: sum them back
    res = unbroadcast(res, tuple(n for c, n in zip(target, xshape) if c in present))
    if kept != target:  # indices only this operand had were summed: broadcast them back
        res = broadcast_to(reshape(res, tuple(n if c in present else 1
                                              for c, n in zip(target, xshape))), xshape)
    return res


def _einsum_diagonal_vjp(argnum, g, ans, *ops, spec, out):
    """An operand with a repeated index ('ii->', 'iji->j') enters only through its diagonal:
    the cotangent of that diagonal (the rule for the operand written with each index once),
    put back on the diagonal positions, zero elsewhere."""
    target = spec[argnum]
    unique = "".join(dict.fromkeys(target))
    xshape = shape_of(ops[argnum])
    ushape = tuple(xshape[target.index(c)] for c in unique)
    ops = list(ops)
    ops[argnum] = np.broadcast_to(np.zeros((), dtype_of(ops[argnum])), ushape)
    spec = tuple(unique if i == argnum else s for i, s in enumerate(spec))
    diagonal = _einsum_vjp(argnum, g, ans, *ops, spec=spec, out=out)
    grids = [np.arange(n).reshape([-1 if j == i else 1 for j in range(len(unique))])
             for i, n in enumerate(ushape)]
    index = tuple(grids[unique.index(c)] for c in target)
    return untake_p(diagonal, index=index, shape=xshape)


def _einsum_jvp(argnum, t, ans, *ops, spec, out):
    ops = list(ops)
    ops[argnum] = t
    return einsum_p(*ops, spec=spec, out=out)


einsum_p.defvjp_variadic(_einsum_vjp)
einsum_p.defjvp_variadic(_einsum_jvp)


def _einsum_batch(args, dims, spec, out):
    """A fresh index letter for the batch axis, on the batched operands and the output."""
    used = set("".join(spec) + out)
    b = next(c for c in string.ascii_letters if c not in used)
    ops = [o if d is None else to_front(o, d) for o, d in zip(args, dims)]
    spec = tuple(s if d is None else b + s for s, d in zip(spec, dims))
    return einsum_p(*ops, spec=spec, out=b + out), 0


einsum_p.defbatch(_einsum_batch)


def einsum(subscripts: str, *operands: Any) -> Any:
    """NumPy's einsum (explicit or implicit output, '...' allowed); multilinear, so each operand
    gets its derivative from one more einsum."""
    spec, out = _einsum_spec(subscripts, [shape_of(o) for o in operands])
    return einsum_p(*operands, spec=spec, out=out)
