"""Recurrent layers: RNN (Elman), LSTM (forget gate, optional peepholes), GRU, Bidirectional.

Inputs are (batch, time, features). Backpropagation through time is the autodiff core
differentiating a Python loop over the time steps, so ``grad``, ``hvp`` and ``gauss_newton_vp``
see through every layer here; nothing in this file computes a derivative.

Notation of the problem book (seed 003, sheet 7): x_t the input (m features), h_t the state
(n units), V the input weights, W the recurrent weights, b the bias. Weights are stored as
Dense stores them, (in, out), and the gates' blocks side by side along the columns.

Arguments shared by RNN, LSTM and GRU (Keras' meanings): ``units`` (n); ``use_bias``;
``return_sequences`` (the states of every step, (batch, time, n), instead of the last one);
``return_state`` (also return the final state(s): (y, h_T), for the LSTM (y, h_T, c_T));
``go_backwards`` (read the sequence from its end); ``kernel_initializer`` (V, default
"glorot_uniform"), ``recurrent_initializer`` (W, default "orthogonal"), ``bias_initializer``;
``input_shape`` = (time, features); ``name``; ``dtype``. ``forward`` also takes
``initial_state`` (h_0, or the LSTM's pair (h_0, c_0); zeros by default).

Speed. The tracer costs microseconds per operation and a step does little work per operation, so
a step is written with few of them: the input part V x_t + b of all steps is one matrix product
before the loop (the bias as a row of the kernel, met by a column of ones), and an LSTM step is
h_{t-1} W, a sum and ``pearlnet.numpy.lstm_cell``, a primitive for the gates and the state
update (its rules next to it, as PyTorch fuses the same part). Under a nested transform (hvp)
each step multiplies its own x_t by V instead: slicing a product traced twice would cost a
full-size cotangent per step. Under jit (``pearlnet.jit``, Model.fit's default) the time loop
is unrolled into the recorded program: one line per operation of every step, replayed without
tracers.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

import pearlnet.numpy as pnp
from pearlnet.autodiff import Tracer

from . import activations as act
from . import initializers
from .layers import initializer_name
from .module import Module, flag

__all__ = ["RNN", "LSTM", "GRU", "Bidirectional"]


def orthogonal(rng: np.random.Generator, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), from the QR
    decomposition of a Gaussian matrix (Saxe et al. 2014): the recurrent weights' default."""
    rows, cols = shape
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))  # a uniformly distributed orthogonal matrix (Mezzadri 2007)
    return (q if rows >= cols else q.T).astype(dtype, order="C")  # row-major, as matmul likes


def _initializer(spec: Any) -> Any:
    return orthogonal if spec == "orthogonal" else initializers.get(spec)


def _initializer_spec_name(fn: Any) -> str | None:
    """The name ``_initializer`` maps back to ``fn`` (as ``layers.initializer_name``, plus
    "orthogonal"); None for an initializer no name stands for, which a saved model leaves out."""
    return "orthogonal" if fn is orthogonal else initializer_name(fn)


def _stack_time(outs: list) -> Any:
    """[h_1, ..., h_T], each (batch, n) -> (batch, T, n): one concatenate and one reshape (the
    concatenate's backward pass only slices)."""
    batch, n = pnp.shape(outs[0])
    return pnp.reshape(pnp.concatenate(outs, axis=1), (batch, len(outs), n))


def _nested(x: Any) -> bool:
    """Is x traced by a transform that is itself traced (hvp's grad inside a jvp)? (A program
    value of jit below does not count: jit records the in-place adds too.)"""
    return isinstance(x, Tracer) and not x.opaque and isinstance(x.value, Tracer) \
        and not x.value.opaque


def _step_slices(xs: Any) -> list:
    """[xs[t] for each t] of a time-major array (T, batch, ...). The reverse pass adds each
    step's cotangent into one buffer in place, except under a nested transform (hvp), whose
    cotangents are traced: there each slice's reverse rule writes an array of the size it was
    cut from, so xs is sliced in two levels, blocks of about sqrt(T) steps and then steps,
    for about 2 sqrt(T) full-size arrays instead of T."""
    steps = pnp.shape(xs)[0]
    if not _nested(xs) or steps <= 4:
        return [xs[t] for t in range(steps)]
    k = math.isqrt(steps - 1) + 1
    out = []
    for start in range(0, steps, k):
        block = xs[start:start + k]
        out.extend(block[j] for j in range(pnp.shape(block)[0]))
    return out


class _Recurrent(Module):
    """The time loop shared by RNN, LSTM and GRU. A subclass sets ``gates`` (blocks of n
    columns in V, W and b), ``carries`` (1: h; 2: h and c) and writes ``_step``."""

    gates = 1
    carries = 1

    def __init__(self, units: int, use_bias: bool = True, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 input_shape: tuple | None = None, name: str | None = None,
                 dtype: Any = np.float32) -> None:
        super().__init__(input_shape, name, dtype)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{kind}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.use_bias = flag(kind, "use_bias", use_bias)
        self.return_sequences = flag(kind, "return_sequences", return_sequences)
        self.return_state = flag(kind, "return_state", return_state)
        self.go_backwards = flag(kind, "go_backwards", go_backwards)
        self._init_specs = {"kernel_initializer": kernel_initializer,
                            "recurrent_initializer": recurrent_initializer,
                            "bias_initializer": bias_initializer}
        self.kernel_initializer = _initializer(kernel_initializer)
        self.recurrent_initializer = _initializer(recurrent_initializer)
        self.bias_initializer = _initializer(bias_initializer)

    # -- construction ------------------------------------------------------------------------
    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        if len(input_shape) != 2:
            raise ValueError(f"{self.describe()}: expects sequences of shape (time, features), "
                             f"got input shape {tuple(input_shape)}")
        m, n, k = input_shape[1], self.units, self.gates
        self.params = {"V": self.kernel_initializer(rng, (m, k * n), self.dtype),
                       "W": self.recurrent_initializer(rng, (n, k * n), self.dtype)}
        if self.use_bias:
            self.params["b"] = self._bias(rng)
        self.state = {}
        return self.output_shape(input_shape)

    def _bias(self, rng: np.random.Generator) -> np.ndarray:
        return self.bias_initializer(rng, (self.gates * self.units,), self.dtype)

    def output_shape(self, input_shape: tuple) -> tuple:
        n = self.units
        out = (input_shape[0], n) if self.return_sequences else (n,)
        if self.return_state:
            return (out, *[(n,)] * self.carries)
        return out

    # -- computation -------------------------------------------------------------------------
    def forward(self, params, x, *, state=None, training=False, rng=None, initial_state=None):
        """(y, {}): y = h_T, (batch, n); the whole sequence (batch, T, n) with
        ``return_sequences`` (in processing order: reversed with ``go_backwards``, as Keras);
        with ``return_state`` the tuple (y, h_T) (LSTM: (y, h_T, c_T)). ``initial_state``:
        h_0 (LSTM: a pair (h_0, c_0)); zeros by default."""
        outs, carry = self._scan(params, x, initial_state)
        y = _stack_time(outs) if self.return_sequences else outs[-1]
        return ((y, *carry) if self.return_state else y), {}

    def _scan(self, params: dict, x: Any, initial_state: Any = None) -> tuple[list, tuple]:
        """([h_t in processing order], final carry)."""
        if not isinstance(x, Tracer):
            x = np.asarray(x)
        self._check_input(params, x)
        batch, steps, m = pnp.shape(x)
        if isinstance(x, Tracer):
            x_tm = pnp.transpose(x, (1, 0, 2))  # time-major: each step's rows contiguous
        else:
            x_tm = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        V, b = self._input_kernel(params)
        if b is not None:  # a column of ones meets b as the last row of the kernel: the
            # products then add the bias, and their transposes sum b's gradient, for free
            dtype = x.dtype if x.dtype.kind in "fc" else self.dtype
            x_tm = pnp.concatenate([x_tm, np.ones((steps, batch, 1), dtype)], axis=2)
            V = pnp.concatenate([V, pnp.reshape(b, (1, -1))], axis=0)
            m += 1
        if _nested(V) or _nested(x_tm):
            # under a transform of a transform (hvp) the reverse pass cannot add slices of a
            # traced product in place, so each step multiplies its own x_t by V
            inputs = [x_t @ V for x_t in _step_slices(x_tm)]
        else:
            # the input's part V x_t + b of all steps in one matrix product; the loop then
            # multiplies only h_{t-1} by W
            xv = pnp.reshape(x_tm, (steps * batch, m)) @ V
            inputs = _step_slices(pnp.reshape(xv, (steps, batch, pnp.shape(V)[1])))
        if self.go_backwards:
            inputs.reverse()
        carry = self._initial(params, x, batch, initial_state)
        prepared = self._prepare(params)
        outs = []
        for xv_t in inputs:
            carry = self._step(prepared, xv_t, carry)
            outs.append(carry[0])
        return outs, carry

    def _input_kernel(self, params: dict) -> tuple:
        """(V, b) of the input part V x_t + b (b None without bias)."""
        return params["V"], (params["b"] if self.use_bias else None)

    def _prepare(self, params: dict) -> Any:
        """What every step needs of the parameters besides the input part: W by default."""
        return params["W"]

    def _step(self, prepared: Any, xv_t: Any, carry: tuple) -> tuple:
        """The next carry from the input part xv_t = V x_t + b of step t and the carry."""
        raise NotImplementedError

    def _check_input(self, params: dict, x: Any) -> None:
        m = pnp.shape(params["V"])[0]
        shape = pnp.shape(x)
        if len(shape) != 3 or shape[2] != m or shape[1] < 1:
            raise ValueError(f"{self.describe()}: expected inputs of shape (batch, time, {m}) "
                             f"with time >= 1, got {shape}")

    def _initial(self, params: dict, x: Any, batch: int, initial_state: Any) -> tuple:
        n = self.units
        if initial_state is None:
            dtype = np.result_type(x.dtype, params["W"].dtype)
            return tuple(np.zeros((batch, n), dtype) for _ in range(self.carries))
        given = tuple(initial_state) if isinstance(initial_state, (tuple, list)) else (
            initial_state,)
        if len(given) != self.carries or any(pnp.shape(s) != (batch, n) for s in given):
            what = "h_0" if self.carries == 1 else "(h_0, c_0)"
            raise ValueError(f"{self.describe()}: initial_state must be {what}, each of shape "
                             f"({batch}, {n}), got "
                             f"{[pnp.shape(s) for s in given]}")
        return given

    def get_config(self) -> dict:
        config = {"units": self.units, "use_bias": self.use_bias,
                  "return_sequences": self.return_sequences, "return_state": self.return_state,
                  "go_backwards": self.go_backwards}
        for key in self._init_specs:
            name = _initializer_spec_name(getattr(self, key))
            if name is not None:
                config[key] = name
        return config


class RNN(_Recurrent):
    """Elman's simple recurrent layer (problem book, exercise 50):
    h_t = f(b_h + W h_{t-1} + V x_t), h_0 = 0.

    Parameters: V (m, n), W (n, n), b (n,): n(n + m) + n in all (n(n + m) without bias).

    >>> import numpy as np, pearlnet.nn as nn
    >>> layer = RNN(4, input_shape=(5, 3)); _ = layer.init(0)
    >>> layer(np.ones((2, 5, 3), np.float32)).shape, layer.count_params()
    ((2, 4), 32)
    """

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.activation = act.get(activation)

    def _step(self, W, xv_t, carry):
        (h,) = carry
        return (self.activation(xv_t + h @ W),)

    def get_config(self) -> dict:
        return {"units": self.units,
                "activation": act.config_name(self.activation, self.describe()),
                **{k: v for k, v in super().get_config().items() if k != "units"}}


class LSTM(_Recurrent):
    """Long short-term memory with a forget gate (Hochreiter & Schmidhuber 1997; Gers,
    Schmidhuber & Cummins 2000), sigma the logistic sigmoid:

        i = sigma(V_i x_t + W_i h_{t-1} + b_i)     f = sigma(V_f x_t + W_f h_{t-1} + b_f)
        o = sigma(V_o x_t + W_o h_{t-1} + b_o)     g = tanh(V_g x_t + W_g h_{t-1} + b_g)
        c_t = f * c_{t-1} + i * g                   h_t = o * tanh(c_t)

    Gate blocks in the order [i, f, o, g]: V (m, 4n), W (n, 4n), b (4n,), 4(n(n + m) + n)
    parameters. The forget gate's bias starts at 1 (``unit_forget_bias``, Jozefowicz et al.
    2015), so the memory is kept at first.

    ``peephole=True``: the gates also see the cell through diagonal weights P (3, n), rows
    i, f, o (Gers & Schmidhuber 2000, "Recurrent nets that time and count"): P_i * c_{t-1} and
    P_f * c_{t-1} join i's and f's sums, P_o * c_t joins o's, since the paper computes the output
    gate after the cell update (the problem book, exercise 51, writes c_{t-1} for all three).
    4(n(n + m) + n) + 3n parameters.

    >>> import numpy as np, pearlnet.nn as nn
    >>> layer = LSTM(4, return_sequences=True, input_shape=(5, 3)); _ = layer.init(0)
    >>> layer(np.ones((2, 5, 3), np.float32)).shape, layer.count_params()
    ((2, 5, 4), 128)
    """

    gates = 4
    carries = 2

    def __init__(self, units: int, peephole: bool = False, unit_forget_bias: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.peephole = flag(type(self).__name__, "peephole", peephole)
        self.unit_forget_bias = flag(type(self).__name__, "unit_forget_bias", unit_forget_bias)

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        shape = super().build(input_shape, rng)
        if self.peephole:
            self.params["P"] = np.zeros((3, self.units), self.dtype)
        return shape

    def _bias(self, rng: np.random.Generator) -> np.ndarray:
        b = super()._bias(rng)
        if self.unit_forget_bias:
            b[self.units:2 * self.units] = 1
        return b

    def _prepare(self, params):
        if self.peephole:
            P = params["P"]
            return params["W"], P[0], P[1], P[2]
        return params["W"]

    def _step(self, prepared, xv_t, carry):
        h, c = carry
        n = self.units
        if self.peephole:
            W, p_i, p_f, p_o = prepared
            z = xv_t + h @ W
            i = pnp.sigmoid(z[:, :n] + p_i * c)
            f = pnp.sigmoid(z[:, n:2 * n] + p_f * c)
            c = f * c + i * pnp.tanh(z[:, 3 * n:])
            o = pnp.sigmoid(z[:, 2 * n:3 * n] + p_o * c)
            return o * pnp.tanh(c), c
        # the gates and the state update in one primitive: a step costs five traced
        # operations (two slices, a product, a sum, the cell) instead of fifteen
        out = pnp.lstm_cell(xv_t + h @ prepared, c)
        return out[0], out[1]

    def get_config(self) -> dict:
        return {**super().get_config(), "peephole": self.peephole,
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014), the textbook cell with one bias per gate:

        z = sigma(V_z x_t + W_z h_{t-1} + b_z)      r = sigma(V_r x_t + W_r h_{t-1} + b_r)
        h~ = tanh(V_h x_t + W_h (r * h_{t-1}) + b_h)
        h_t = z * h_{t-1} + (1 - z) * h~

    Gate blocks in the order [z, r, h~]: V (m, 3n), W (n, 3n), b (3n,), 3(n(n + m) + n)
    parameters. (PyTorch's GRU and Keras' default apply the reset gate after W_h and carry a
    second bias per gate: 3n more.)

    >>> import numpy as np, pearlnet.nn as nn
    >>> layer = GRU(4, input_shape=(5, 3)); _ = layer.init(0)
    >>> layer(np.ones((2, 5, 3), np.float32)).shape, layer.count_params()
    ((2, 4), 96)
    """

    gates = 3

    def _prepare(self, params):
        n = self.units
        W = params["W"]
        return W[:, :2 * n], W[:, 2 * n:]

    def _step(self, prepared, xv_t, carry):
        W_zr, W_h = prepared
        (h,) = carry
        n = self.units
        zr = pnp.sigmoid(xv_t[:, :2 * n] + h @ W_zr)
        z, r = zr[:, :n], zr[:, n:]
        candidate = pnp.tanh(xv_t[:, 2 * n:] + (r * h) @ W_h)
        return (candidate + z * (h - candidate),)


_RECURRENT = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}


class Bidirectional(Module):
    """Runs ``layer`` forward in time and a copy of it backward in time (Schuster & Paliwal 1997;
    the problem book's exercise 50) and merges the two: ``merge_mode`` "concat" (features side by
    side, forward first), "sum", "mul", "ave", or None (the pair). With the layer's
    ``return_sequences`` both sequences are aligned in time order before merging; with its
    ``return_state`` the result is (y, *forward states, *backward states).

    Parameters {"forward": ..., "backward": ...}: twice the layer's.

    >>> import numpy as np, pearlnet.nn as nn
    >>> layer = Bidirectional(LSTM(4, return_sequences=True), input_shape=(5, 3))
    >>> _ = layer.init(0); layer(np.ones((2, 5, 3), np.float32)).shape
    (2, 5, 8)
    """

    MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer: Any, merge_mode: str | None = "concat",
                 input_shape: tuple | None = None, name: str | None = None) -> None:
        if isinstance(layer, dict):  # from get_config (load_model)
            layer = _RECURRENT[layer["class"]](**layer["config"])
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional: expected an RNN, LSTM or GRU layer, got "
                            f"{type(layer).__name__}")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {self.MERGE_MODES}, "
                             f"got {merge_mode!r}")
        super().__init__(input_shape if input_shape is not None else layer.input_shape, name,
                         layer.dtype)
        self.layer = layer
        self.merge_mode = merge_mode
        self.forward_layer = copy.copy(layer)
        self.backward_layer = copy.copy(layer)
        self.backward_layer.go_backwards = not layer.go_backwards
        self.forward_layer.name, self.backward_layer.name = "forward", "backward"

    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        for part in (self.forward_layer, self.backward_layer):
            part.input_shape = tuple(input_shape)
            part.output_shape_ = part.build(input_shape, rng)
            part.built = True
        self.params = {"forward": self.forward_layer.params,
                       "backward": self.backward_layer.params}
        self.state = {}
        return self.output_shape(input_shape)

    def output_shape(self, input_shape: tuple) -> tuple:
        layer = self.layer
        n = layer.units * (2 if self.merge_mode == "concat" else 1)
        out = (input_shape[0], n) if layer.return_sequences else (n,)
        if self.merge_mode is None:
            out = (out, out)
        if layer.return_state:
            return (out, *[(layer.units,)] * (2 * layer.carries))
        return out

    def forward(self, params, x, *, state=None, training=False, rng=None, initial_state=None):
        """(y, {}); ``initial_state``: a pair (forward layer's, backward layer's)."""
        init = (None, None) if initial_state is None else tuple(initial_state)
        if len(init) != 2:
            raise ValueError(f"{self.describe()}: initial_state must be a pair (forward, "
                             f"backward), got {len(init)} entries")
        fl, bl = self.forward_layer, self.backward_layer
        outs_f, carry_f = fl._scan(params["forward"], x, init[0])
        outs_b, carry_b = bl._scan(params["backward"], x, init[1])
        if self.layer.return_sequences:
            # each list is in its layer's processing order: put both in time order
            if fl.go_backwards:
                outs_f = outs_f[::-1]
            if bl.go_backwards:
                outs_b = outs_b[::-1]
            yf, yb = _stack_time(outs_f), _stack_time(outs_b)
        else:
            yf, yb = outs_f[-1], outs_b[-1]
        if self.merge_mode == "concat":
            y = pnp.concatenate([yf, yb], axis=-1)
        elif self.merge_mode == "sum":
            y = yf + yb
        elif self.merge_mode == "mul":
            y = yf * yb
        elif self.merge_mode == "ave":
            y = (yf + yb) * 0.5
        else:
            y = (yf, yb)
        if self.layer.return_state:
            return (y, *carry_f, *carry_b), {}
        return y, {}

    def get_config(self) -> dict:
        return {"layer": {"class": type(self.layer).__name__, "config": self.layer.get_config()},
                "merge_mode": self.merge_mode}
