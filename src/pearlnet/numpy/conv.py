"""Window primitives for convolutions and pooling on NCHW arrays: im2col, col2im, window_max.

``im2col`` copies every kh x kw window of the zero-padded input (a strided view, no Python loop
over positions) into an array of shape (C, kh, kw, OH, OW, N), so that a convolution is one large
matrix product, (O, C kh kw) times (C kh kw, OH OW N) (problem book, exercise 43 b: a
convolutional layer as H = X W). ``col2im`` is its transpose: it adds every window back to its
place (overlaps accumulate) and crops the padding. Both are linear, so each is the other's
reverse rule and its own forward rule, and derivatives of any order come for free.

The batch axis is last (innermost in memory) so that every copy and every add over a window
position runs along N contiguous numbers rather than along a short image row; results are
returned as NCHW views of that batch-last memory, which the next window operation reads without
a copy.

``window_max`` is the max-pooling primitive: the largest entry of each window, decided on the
real part as every kinked pearlnet function (for traced values and inside ``complex_step()``;
plain complex arrays otherwise get NumPy's lexicographic maximum). Its rules route the
(co)tangent through the one entry that won, with im2col/col2im and a constant 0/1 mask, so they
are differentiable again.
On ties the first maximum in row-major window order takes it all (as PyTorch does).

Output size per spatial axis: (H + pad_top + pad_bottom - kh) // stride + 1, rounding down:
rows and columns that no window reaches are left out of the forward pass and get zero gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._batch import batch_size, to_front_or_broadcast
from ._util import Primitive, nondiff, numpy_own, real_dtype, shape_of
from .elementwise import multiply
from .shapes import reshape, sum_p, transpose

__all__ = ["im2col", "col2im", "window_max"]


def _is_int(value: Any) -> bool:
    """A Python or NumPy integer (not a bool, a float or a string): sizes are never rounded."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pair(value: Any, what: str, who: str) -> tuple[int, int]:
    pair = (value, value) if _is_int(value) else value
    try:
        a, b = pair
    except (TypeError, ValueError):
        a = b = None
    if not (_is_int(a) and _is_int(b)):
        raise ValueError(f"{who}: {what} must be an int or a pair of ints, got {value!r}")
    return int(a), int(b)


def _padding(value: Any, who: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """int p, pair (ph, pw) or pair of pairs ((top, bottom), (left, right))."""
    if _is_int(value):
        value = (value, value)
    try:
        rows, cols = value
        rows = (rows, rows) if _is_int(rows) else tuple(rows)
        cols = (cols, cols) if _is_int(cols) else tuple(cols)
        if any(len(side) != 2 or not all(_is_int(p) for p in side) for side in (rows, cols)):
            raise ValueError
        out = tuple(tuple(int(p) for p in side) for side in (rows, cols))
    except (TypeError, ValueError):
        raise ValueError(f"{who}: padding must be an int, a pair or a pair of pairs, got "
                         f"{value!r}") from None
    if min(out[0] + out[1]) < 0:
        raise ValueError(f"{who}: padding must be non-negative, got {value!r}")
    return out


def conv_output_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """(size + pad - kernel) // stride + 1: positions of a window along one axis (pad is the
    total padding of that axis)."""
    return (size + pad - kernel) // stride + 1


def _geometry(xshape: tuple, kernel: Any, stride: Any, padding: Any, who: str):
    """Normalised (kernel, stride, padding) for an NCHW shape, validated."""
    if len(xshape) != 4:
        raise ValueError(f"{who}: expected an NCHW array (4 axes), got shape {xshape}")
    kernel, stride = _pair(kernel, "kernel", who), _pair(stride, "stride", who)
    padding = _padding(padding, who)
    if min(kernel) <= 0:
        raise ValueError(f"{who}: kernel sizes must be positive, got {kernel}")
    if min(stride) <= 0:
        raise ValueError(f"{who}: strides must be positive, got {stride}")
    padded = (xshape[2] + sum(padding[0]), xshape[3] + sum(padding[1]))
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"{who}: kernel {kernel} is larger than the padded input {padded} "
                         f"(input {xshape}, padding {padding})")
    return kernel, stride, padding


def _batch_last(x: np.ndarray, padding: tuple) -> np.ndarray:
    """x (N, C, H, W) zero-padded, as a (C, Hp, Wp, N) array: a view when there is no padding
    and the batch axis is already innermost in memory, else one transposing copy."""
    (top, bottom), (left, right) = padding
    xt = x.transpose(1, 2, 3, 0)
    if not (top or bottom or left or right) and x.strides[0] == min(x.strides):
        return xt
    n, c, h, w = x.shape
    out = np.zeros((c, h + top + bottom, w + left + right, n), dtype=x.dtype)
    out[:, top:top + h, left:left + w] = xt
    return out


def _windows(xb: np.ndarray, kernel: tuple, stride: tuple) -> np.ndarray:
    """The read-only strided view (C, kh, kw, OH, OW, N) of a batch-last (C, Hp, Wp, N) array:
    view[c, i, j, p, q, n] = xb[c, p * sh + i, q * sw + j, n]."""
    c, h, w, n = xb.shape
    (kh, kw), (sh, sw) = kernel, stride
    s0, s1, s2, s3 = xb.strides
    shape = (c, kh, kw, (h - kh) // sh + 1, (w - kw) // sw + 1, n)
    return as_strided(xb, shape, (s0, s1, s2, s1 * sh, s2 * sw, s3), writeable=False)


# ---- im2col / col2im: each the other's transpose ---------------------------------------------
def _im2col_impl(x, kernel, stride, padding):
    return _windows(_batch_last(np.asarray(x), padding), kernel, stride).copy()


def _im2col_out(out, x, kernel, stride, padding):  # jit's out= form
    np.copyto(out, _windows(_batch_last(np.asarray(x), padding), kernel, stride))
    return out


def _col2im_impl(cols, shape, kernel, stride, padding):
    cols = np.asarray(cols)
    n, c, h, w = shape
    (top, bottom), (left, right) = padding
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = cols.shape[3:5]
    out = np.zeros((c, h + top + bottom, w + left + right, n), dtype=cols.dtype)
    overlap = sh < kh or sw < kw
    for i in range(kh):  # kh * kw strided adds of whole (C, OH, OW, N) slabs
        rows = slice(i, i + sh * (oh - 1) + 1, sh)
        for j in range(kw):
            target = out[:, rows, j:j + sw * (ow - 1) + 1:sw]
            if overlap:
                target += cols[:, i, j]
            else:  # every place is written at most once: no read needed
                target[...] = cols[:, i, j]
    return out[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)


im2col_p = Primitive("im2col", _im2col_impl)
col2im_p = Primitive("col2im", _col2im_impl)


def _im2col_vjp(g, ans, x, kernel, stride, padding):
    return col2im_p(g, shape=shape_of(x), kernel=kernel, stride=stride, padding=padding)


def _im2col_jvp(t, ans, x, kernel, stride, padding):
    return im2col_p(t, kernel=kernel, stride=stride, padding=padding)


def _col2im_vjp(g, ans, cols, shape, kernel, stride, padding):
    return im2col_p(g, kernel=kernel, stride=stride, padding=padding)


def _col2im_jvp(t, ans, cols, shape, kernel, stride, padding):
    return col2im_p(t, shape=shape, kernel=kernel, stride=stride, padding=padding)


im2col_p.out_impl = _im2col_out
im2col_p.defvjp(_im2col_vjp)
im2col_p.defjvp(_im2col_jvp)
col2im_p.defvjp(_col2im_vjp)
col2im_p.defjvp(_col2im_jvp)


# vmap: the kernel is a parameter, never batched, so the batch folds into the sample axis N:
# (B, N, C, H, W) is (B N, C, H, W) to these primitives, one call for the whole batch
def _fold(x: Any, d: Any, size: int) -> Any:
    """A batched NCHW array (B, N, C, H, W) as (B N, C, H, W)."""
    x = to_front_or_broadcast(x, d, size)
    return reshape(x, (-1, *shape_of(x)[2:]))


def _unfold_last(cols: Any, size: int) -> Any:
    """Windows (C, kh, kw, OH, OW, B N) as (C, kh, kw, OH, OW, B, N): batch axis 5."""
    return reshape(cols, (*shape_of(cols)[:5], size, -1))


def _im2col_batch(args, dims, kernel, stride, padding):
    size = batch_size(args, dims)
    cols = im2col_p(_fold(args[0], dims[0], size), kernel=kernel, stride=stride,
                    padding=padding)
    return _unfold_last(cols, size), 5


def _col2im_batch(args, dims, shape, kernel, stride, padding):
    size = batch_size(args, dims)
    cols = to_front_or_broadcast(args[0], dims[0], size)  # (B, C, kh, kw, OH, OW, N)
    cols = reshape(transpose(cols, (1, 2, 3, 4, 5, 0, 6)), (*shape_of(cols)[1:6], -1))
    out = col2im_p(cols, shape=(size * shape[0], *shape[1:]), kernel=kernel, stride=stride,
                   padding=padding)
    return reshape(out, (size, *shape)), 0


im2col_p.defbatch(_im2col_batch)
col2im_p.defbatch(_col2im_batch)


def im2col(x: Any, kernel: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """The kh x kw windows of x (N, C, H, W), zero-padded by ``padding``, batch axis last:
    out[c, i, j, p, q, n] = x_pad[n, c, p * sh + i, q * sw + j], shape (C, kh, kw, OH, OW, N).

    kernel and stride: an int or a pair; padding: an int, a pair (rows, columns) or a pair of
    pairs ((top, bottom), (left, right)). Cost: one copy of C kh kw OH OW N entries.

    >>> im2col(np.arange(9.0).reshape(1, 1, 3, 3), 2)[0, :, :, 0, 0, 0]
    array([[0., 1.],
           [3., 4.]])
    """
    kernel, stride, padding = _geometry(shape_of(x), kernel, stride, padding, "im2col")
    return im2col_p(x, kernel=kernel, stride=stride, padding=padding)


def col2im(cols: Any, shape: Any, kernel: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """The transpose of ``im2col``: an array of ``shape`` (N, C, H, W) in which every window
    entry of cols (C, kh, kw, OH, OW, N) is added at the place im2col took it from."""
    shape = tuple(int(s) for s in shape)
    kernel, stride, padding = _geometry(shape, kernel, stride, padding, "col2im")
    expected = (shape[1], *kernel,
                conv_output_size(shape[2], kernel[0], stride[0], sum(padding[0])),
                conv_output_size(shape[3], kernel[1], stride[1], sum(padding[1])), shape[0])
    if shape_of(cols) != expected:
        raise ValueError(f"col2im: expected windows of shape {expected} for an input of shape "
                         f"{shape}, got {shape_of(cols)}")
    return col2im_p(cols, shape=shape, kernel=kernel, stride=stride, padding=padding)


# ---- window_max ------------------------------------------------------------------------------
_NO_PAD = ((0, 0), (0, 0))


def _winner_mask_impl(x: Any, ans: Any, kernel: tuple, stride: tuple) -> np.ndarray:
    """0/1 array (C, kh, kw, OH, OW, N) in x's real dtype: 1 at the first entry of each window
    equal to its maximum ``ans`` (real parts), 0 elsewhere. Built slab by slab: NumPy's
    comparisons and reductions over small strided axes are many times slower."""
    r = np.real(x).transpose(1, 2, 3, 0)
    m = np.real(ans).transpose(1, 2, 3, 0)
    view = _windows(r, kernel, stride)
    mask = np.empty(view.shape, dtype=real_dtype(x))
    seen = np.zeros(m.shape, dtype=bool)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            win = view[:, i, j] == m
            win &= ~seen  # a tie goes to the first maximum only
            seen |= win
            mask[:, i, j] = win
    return mask


_winner_mask = nondiff(_winner_mask_impl, "winner_mask")


def _winner_mask_batch(args, dims):
    x, ans, kernel, stride = args
    size = batch_size(args, dims)
    mask = _winner_mask(_fold(x, dims[0], size), _fold(ans, dims[1], size), kernel, stride)
    return _unfold_last(mask, size), 5


_winner_mask.defbatch(_winner_mask_batch)


def _window_max_impl(x, kernel, stride):
    x = np.asarray(x)
    view = _windows(np.real(x).transpose(1, 2, 3, 0), kernel, stride)
    out = view[:, 0, 0].copy()  # (C, OH, OW, N)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            if i or j:
                np.maximum(out, view[:, i, j], out=out)
    out = out.transpose(3, 0, 1, 2)
    if np.iscomplexobj(x):  # the entry whose real part won, imaginary part included
        picked = _windows(x.transpose(1, 2, 3, 0), kernel, stride) * _winner_mask_impl(
            x, out, kernel, stride)
        return picked.sum(axis=(1, 2)).transpose(3, 0, 1, 2)
    return out


window_max_p = Primitive("window_max", _window_max_impl)


def _window_max_numpy(x, kernel, stride):
    """NumPy's maximum of each window, lexicographic on complex numbers (plain complex input
    outside complex_step(); see pearlnet.numpy)."""
    view = _windows(np.asarray(x).transpose(1, 2, 3, 0), kernel, stride)
    return view.max(axis=(1, 2)).transpose(3, 0, 1, 2)


numpy_own(window_max_p, _window_max_numpy)


def _window_max_vjp(g, ans, x, kernel, stride):
    n, c, oh, ow = shape_of(g)
    g = reshape(transpose(g, (1, 2, 3, 0)), (c, 1, 1, oh, ow, n))
    picked = multiply(g, _winner_mask(x, ans, kernel, stride))
    return col2im_p(picked, shape=shape_of(x), kernel=kernel, stride=stride, padding=_NO_PAD)


def _window_max_jvp(t, ans, x, kernel, stride):
    windows = im2col_p(t, kernel=kernel, stride=stride, padding=_NO_PAD)
    picked = sum_p(multiply(windows, _winner_mask(x, ans, kernel, stride)), axis=(1, 2),
                   keepdims=False)
    return transpose(picked, (3, 0, 1, 2))


window_max_p.defvjp(_window_max_vjp)
window_max_p.defjvp(_window_max_jvp)


def _window_max_batch(args, dims, kernel, stride):
    size = batch_size(args, dims)
    out = window_max_p(_fold(args[0], dims[0], size), kernel=kernel, stride=stride)
    return reshape(out, (size, -1, *shape_of(out)[1:])), 0


window_max_p.defbatch(_window_max_batch)


def window_max(x: Any, kernel: Any, stride: Any = None) -> Any:
    """Max pooling: out[n, c, p, q] = max over the kh x kw window at (p * sh, q * sw) of x
    (N, C, H, W), decided on real parts; stride defaults to the kernel (no overlap). The
    gradient goes to the first maximum of each window."""
    kernel, stride, _ = _geometry(shape_of(x), kernel, kernel if stride is None else stride, 0,
                                  "window_max")
    return window_max_p(x, kernel=kernel, stride=stride)
