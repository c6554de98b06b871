"""Fused recurrent cells: one primitive per time step instead of a dozen.

A traced operation costs microseconds whatever its size, and a step of an LSTM is a dozen small
elementwise operations around one matrix product, so the step's elementwise part is one
primitive here (PyTorch fuses the same part, ``_thnn_fused_lstm_cell``). Its rules are written
with differentiable operations, so grad, hvp and gauss_newton_vp see through it like through
any other primitive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._batch import batch_size, to_front_or_broadcast
from ._util import Primitive, dtype_of, shape_of
from .elementwise import sigmoid_grad, tanh, tanh_grad
from .shapes import concatenate, stack

__all__ = ["lstm_cell"]


def _check(z_shape: tuple, c_shape: tuple) -> int:
    if (len(z_shape) < 1 or len(c_shape) != len(z_shape) or z_shape[:-1] != c_shape[:-1]
            or z_shape[-1] != 4 * c_shape[-1] or c_shape[-1] < 1):
        raise ValueError(f"lstm_cell: expected z of shape (..., 4n) and c of shape (..., n) "
                         f"with the same leading axes, got z {z_shape} and c {c_shape}")
    return c_shape[-1]


def _lstm_cell_impl(z, c):
    z, c = np.asarray(z), np.asarray(c)
    _check(z.shape, c.shape)
    dtype = np.result_type(z, c, np.float32)  # integers become floats, float32 stays
    # block-major output: every block is contiguous, and NumPy runs an elementwise operation on
    # a contiguous (batch, n) block several times faster than on a strided column block
    return _lstm_cell_out(np.empty((6, *c.shape), dtype), z, c)


def _lstm_cell_out(out, z, c):  # also jit's out= form
    z, c = np.asarray(z), np.asarray(c)
    n = _check(z.shape, c.shape)
    np.copyto(out[2:], np.moveaxis(z.reshape(*c.shape[:-1], 4, n), -2, 0))
    h, c_new, ifo, i, f, o, g = out[0], out[1], out[2:5], out[2], out[3], out[4], out[5]
    # sigma(z) = (1 + tanh(z/2)) / 2: one vectorised tanh for the three sigmoid gates
    np.multiply(ifo, 0.5, out=ifo)
    np.tanh(ifo, out=ifo)
    np.multiply(ifo, 0.5, out=ifo)
    np.add(ifo, 0.5, out=ifo)
    np.tanh(g, out=g)
    np.multiply(f, c, out=c_new)
    np.multiply(i, g, out=h)  # h is scratch until its turn
    np.add(c_new, h, out=c_new)
    np.tanh(c_new, out=h)
    np.multiply(h, o, out=h)
    return out


lstm_cell_p = Primitive("lstm_cell", _lstm_cell_impl)
lstm_cell_p.out_impl = _lstm_cell_out


def lstm_cell(z: Any, c: Any) -> Any:
    """One LSTM step after its matrix products (Hochreiter & Schmidhuber 1997, with the forget
    gate of Gers et al. 2000; problem book, seed 003, exercise 51), z = V x_t + W h_{t-1} + b
    in gate blocks [i, f, o, g] and c = c_{t-1}:

        i, f, o = sigma(z_i), sigma(z_f), sigma(z_o)    g = tanh(z_g)
        c_t = f * c + i * g                            h_t = o * tanh(c_t)

    Returns [h_t, c_t, i, f, o, g] stacked on a new first axis, shape (6, ..., n): the new state
    (``out[0]``, ``out[1]``) and the gates the derivatives need. Indexing it differentiates too.

    >>> import numpy as np
    >>> lstm_cell(np.zeros((1, 4)), np.ones((1, 1)))[:, 0, 0].round(4)  # i = f = o = 1/2, g = 0
    array([0.2311, 0.5   , 0.5   , 0.5   , 0.5   , 0.    ])
    """
    return lstm_cell_p(z, c)


def _parts(a: Any) -> list:
    """The six blocks [h, c, i, f, o, g] of an lstm_cell output (or of its cotangent)."""
    return [a[k] for k in range(6)]


def _vjp_joint(g, ans, z, c):
    """Cotangents of (z, c_{t-1}): each gate's cotangent through its sigmoid (tanh for g), and
    f times the cotangent of c_t."""
    tc = tanh(ans[1])
    gh, gc, gi, gf, go, gg = _parts(g)
    _, _, i, f, o, a = _parts(ans)
    dc = gc + tanh_grad(gh * o, tc)  # c_t's own cotangent and that through h_t = o tanh(c_t)
    dz = concatenate([sigmoid_grad(dc * a + gi, i), sigmoid_grad(dc * c + gf, f),
                      sigmoid_grad(gh * tc + go, o), tanh_grad(dc * i + gg, a)], axis=-1)
    return dz, dc * f


def _jvp_joint(tangents, ans, z, c):
    """Tangent of [h, c_t, i, f, o, g] from the tangents of z and c (either may be None)."""
    tz, tc_prev = tangents
    n = shape_of(c)[-1]
    _, c_new, i, f, o, a = _parts(ans)
    tc = tanh(c_new)
    if tz is None:  # only c moves: the gates stay put
        zeros = np.zeros(shape_of(c), np.result_type(dtype_of(tc_prev), dtype_of(ans)))
        dgates = [zeros] * 4
        dc = f * tc_prev
        dh = tanh_grad(dc, tc) * o
    else:
        di, df = sigmoid_grad(tz[..., :n], i), sigmoid_grad(tz[..., n:2 * n], f)
        do, da = sigmoid_grad(tz[..., 2 * n:3 * n], o), tanh_grad(tz[..., 3 * n:], a)
        dgates = [di, df, do, da]
        dc = df * c + di * a + i * da
        if tc_prev is not None:
            dc = dc + f * tc_prev
        dh = tanh_grad(dc, tc) * o + do * tc
    return stack([dh, dc, *dgates])


lstm_cell_p.defvjp(lambda g, ans, z, c: _vjp_joint(g, ans, z, c)[0],
                   lambda g, ans, z, c: _vjp_joint(g, ans, z, c)[1])
lstm_cell_p.vjp_joint = _vjp_joint
lstm_cell_p.defjvp(lambda t, ans, z, c: _jvp_joint([t, None], ans, z, c),
                   lambda t, ans, z, c: _jvp_joint([None, t], ans, z, c))
lstm_cell_p.jvp_joint = _jvp_joint


def _lstm_cell_batch(args, dims):
    """Both operands batch-first (the cell works on any leading axes): output axis 1, behind
    the six stacked blocks."""
    size = batch_size(args, dims)
    z, c = (to_front_or_broadcast(a, d, size) for a, d in zip(args, dims))
    return lstm_cell_p(z, c), 1


lstm_cell_p.defbatch(_lstm_cell_batch)
