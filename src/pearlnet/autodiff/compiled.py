"""jit: run a function once per input signature under a recording trace, then replay what it did.

``jit(f)`` returns a function that behaves like f. The first call with a signature (the
arguments' tree structure, each array's shape, dtype and strides, the values of the static
arguments) runs f on ``JitTracer``s of a ``JitTrace``, the outermost trace: every value is
computed as usual, and every primitive applied to a program value is appended to a
straight-line program, derivatives included (grad, hvp and gauss_newton_vp run their rules,
which are primitives, on program values). The passes (passes.py, fusion.py) shorten the
program and plan its buffers, and later calls with that signature replay it (program.py) on
plain arrays, with no tracer. It is an execution strategy, not a second semantics: a replay
calls the functions the recording called, on the same kinds of values.

What is *static* (part of the signature, baked into the program): arguments named in
``static_argnums``, Python numbers, strings and None (pass a 0-d NumPy array for a number that
changes between calls), anything f reads that is not an argument (a closure's array is a
constant of the program: the object, so an operation on it and a traced value reads it at every
call, but what f computes from constants alone is computed once, while recording; pass arrays
that change between calls as arguments, as with jax.jit). What is *traced*:
NumPy arrays and NumPy scalars among the other arguments. A program value is opaque: Python
control flow on it (``if x > 0``, ``bool(x)``, ``x.item()``) raises a TypeError naming the line,
because it would bake one branch into the program. Shapes and dtypes are static and free to
branch on.

Composition: jit(grad(f)), jit(hvp(...)) and the like compile the whole derivative. Called
with values of an enclosing transform (grad(jit(f))), or from inside another jit's recording,
a jitted function runs f as it is, so the enclosing transform sees every primitive (as jax.jit
inlines under an enclosing trace); the same happens when f reads a value of an enclosing
transform through a closure.

The cache holds up to ``cache_size`` programs per jitted function (the least recently used
goes first); ``cache_info()`` tells what it holds.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import fusion, passes
from .core import Primitive, Tracer, new_level
from .program import Eqn, Program, Spec, Var
from .tree import tree_flatten, tree_unflatten

__all__ = ["jit", "Jitted", "JitTracer", "JitTrace", "context_keys"]

#: functions () -> hashable whose values are part of every signature (a mode that changes what
#: the recorded functions compute: the complex-step switch)
context_keys: list[Callable[[], Any]] = []

#: the fusion pass (fusion.py: a no-op without Numba, pearlnet[fast]); None: no fusion
fuser: list[Any] = [fusion.fuse]

_HERE = os.path.dirname(os.path.abspath(__file__))


class _Captured(Exception):
    """f applied a primitive to a value of an enclosing transform (read through a closure)."""


def _branch_error(what: str) -> TypeError:
    """A TypeError naming the user's line that asked a program value for a Python value."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(_HERE) or
                                 "pearlnet/numpy/tracer_ops" in frame.f_code.co_filename):
        frame = frame.f_back
    where = "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return TypeError(f"jit: {what} of a traced value at {where}: under jit an array argument's "
                     f"data are not known while compiling, and a Python branch on them would "
                     f"bake one branch into the program. Use pearlnet.numpy.where (or another "
                     f"array operation), or make the argument static (static_argnums)")


class JitTracer(Tracer):
    """A program value: the value the recording computed, its id, shape and dtype."""

    __slots__ = ("value", "var", "shape", "dtype")
    opaque = True

    def __init__(self, value: Any, trace: JitTrace, var: int) -> None:
        self.value = value
        self.trace = trace
        self.var = var
        self.shape = np.shape(value)
        self.dtype = value.dtype if isinstance(value, (np.ndarray, np.generic)) \
            else np.result_type(value)

    def __repr__(self) -> str:
        return f"JitTracer(v{self.var}, shape={self.shape}, dtype={self.dtype})"

    def __bool__(self) -> bool:
        raise _branch_error("bool()")

    def item(self, *args: Any) -> Any:
        raise _branch_error(".item()")

    def tolist(self) -> Any:
        raise _branch_error(".tolist()")


class JitTrace:
    """The recording trace: equations in the order they ran, and every value they made."""

    __slots__ = ("level", "eqns", "specs", "shares")
    records = True

    def __init__(self) -> None:
        self.level = new_level()
        self.eqns: list[Eqn] = []
        self.specs: list[Spec] = []  # of every value (the values themselves are not kept)
        self.shares: dict[int, int] = {}  # a view's value id -> its argument's (-1: a constant)

    def new_input(self, value: Any) -> JitTracer:
        self.specs.append(Spec(value))
        return JitTracer(value, self, len(self.specs) - 1)

    def _ref(self, a: Any) -> tuple[Any, Any]:
        """(plain value, reference) of an argument: a Var for a program value, a tuple of
        them for an index holding some, the constant itself otherwise."""
        if isinstance(a, Tracer):
            if a.trace is not self:
                raise _Captured
            return a.value, Var(a.var)
        if type(a) in (tuple, list) and any(isinstance(i, Tracer) for i in a):
            pairs = [self._ref(i) for i in a]
            t = type(a)
            return t(p[0] for p in pairs), t(p[1] for p in pairs)
        return a, a

    def record(self, prim: Primitive, args: Sequence, params: dict, fn: Callable) -> Any:
        vals, refs = [], []
        for a in args:
            v, r = self._ref(a)
            vals.append(v)
            refs.append(r)
        pvals, prefs = {}, {}
        for k, a in params.items():
            pvals[k], prefs[k] = self._ref(a)
        ans = fn(*vals, **pvals)
        var = len(self.specs)
        self.specs.append(Spec(ans))
        if type(ans) is np.ndarray:  # a view of an argument's memory?
            for v, r in zip(vals, refs):
                if isinstance(v, np.ndarray) and np.may_share_memory(ans, v):
                    self.shares[var] = r.id if type(r) is Var else -1
                    break
        self.eqns.append(Eqn(fn, prim, refs, prefs, var, prim.effect))
        return JitTracer(ans, self, var)

    def process(self, prim: Primitive, args: tuple, params: dict) -> Any:
        """A primitive called with program values only (no enclosing transform): it runs what
        a call on plain values runs, ``eager``."""
        return self.record(prim, args, params, prim.eager)


# ---- the signature -----------------------------------------------------------------------
_STATIC = (bool, int, float, complex, str, bytes, type(None), np.dtype, type)


def _leaf_key(leaf: Any, who: str, where: str) -> tuple[Any, bool]:
    """(the leaf's part of the signature, is it traced?)."""
    t = type(leaf)
    if t is np.ndarray:
        return (leaf.shape, leaf.dtype.str, leaf.strides), True
    if isinstance(leaf, np.generic):
        return (t, leaf.dtype.str), True
    if isinstance(leaf, _STATIC):
        return (t, leaf), False
    raise TypeError(f"{who}: {where} is a {t.__name__}, neither an array nor a static value "
                    f"(a number, a string, None); pass it through static_argnums to key the "
                    f"program on it, or pass its arrays")


def _argnums(nums: Any, what: str) -> tuple[int, ...]:
    out = (nums,) if isinstance(nums, int) else tuple(nums)
    if any(not isinstance(n, int) or isinstance(n, bool) for n in out):
        raise TypeError(f"jit: {what} must be ints, got {nums!r}")
    return out


def _root(a: np.ndarray) -> Any:
    """The object owning a view's memory (the array itself when it owns its memory)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a if a.base is None else a.base


def _check_donated(name: str, leaves: list, donated: tuple) -> None:
    """A donated array must be writable and share no memory with another argument: the
    program writes over it while it may still read the other."""
    roots: dict[int, int] = {}
    for k, a in enumerate(leaves):
        if type(a) is np.ndarray:
            r = id(_root(a))
            j = roots.get(r)
            if j is not None and (k in donated or j in donated):
                raise ValueError(f"jit({name}): argument leaves {j} and {k} share memory and "
                                 f"{'the first' if j in donated else 'the second'} is donated: "
                                 f"the program would write over it while reading the other. "
                                 f"Pass a copy")
            roots.setdefault(r, k)
    for k in donated:
        if not leaves[k].flags.writeable:
            raise ValueError(f"jit({name}): donated argument leaf {k} is read-only; donate only "
                             f"arrays the program may write over")


class Jitted:
    """The compiled form of f (see the module docstring); call it as f."""

    def __init__(self, f: Callable, static_argnums: int | Sequence[int] = (),
                 cache_size: int = 16, name: str | None = None,
                 donate_argnums: int | Sequence[int] = ()) -> None:
        if not callable(f):
            raise TypeError(f"jit: expected a function, got {type(f).__name__}")
        nums = _argnums(static_argnums, "static_argnums")
        donate = _argnums(donate_argnums, "donate_argnums")
        if set(nums) & set(donate):
            raise ValueError(f"jit: an argument cannot be both static and donated: "
                             f"static_argnums {nums}, donate_argnums {donate}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"jit: cache_size must be a positive int, got {cache_size!r}")
        self.f, self.static_argnums, self.cache_size = f, nums, cache_size
        self.donate_argnums = donate
        self.name = name or getattr(f, "__name__", "f")
        self.cache: collections.OrderedDict = collections.OrderedDict()
        self.compiles = 0
        self.compile_seconds = 0.0
        self.inlined = 0
        self._lock = threading.Lock()
        self.__wrapped__ = f
        self.__name__ = f"jit({self.name})"
        self.__doc__ = getattr(f, "__doc__", None)

    def __repr__(self) -> str:
        return f"jit({self.name}, {len(self.cache)} programs)"

    def cache_info(self) -> dict:
        """{"programs": held, "compiles": so far, "compile_seconds": their total time,
        "inlined": calls that ran f as it is (under an enclosing transform)}."""
        return {"programs": len(self.cache), "compiles": self.compiles,
                "compile_seconds": self.compile_seconds, "inlined": self.inlined}

    def program(self, *args: Any, **kwargs: Any) -> Program | None:
        """The compiled program for these arguments' signature (None before the first call)."""
        key, _, _ = self._signature(args, kwargs)
        entry = None if key is None else self.cache.get(key)
        return None if entry is None else entry[0]

    def _split(self, args: tuple) -> tuple[list[int], list[int]]:
        n = len(args)
        static = []
        for s in self.static_argnums:
            if not -n <= s < n:
                raise ValueError(f"jit({self.name}): static_argnums {self.static_argnums} does "
                                 f"not fit {n} arguments")
            static.append(s % n)
        return static, [i for i in range(n) if i not in static]

    def _signature(self, args: tuple, kwargs: dict) -> tuple[Any, list, Any]:
        static, dynamic = self._split(args)
        leaves, treedef = tree_flatten(([args[i] for i in dynamic], kwargs))
        who = f"jit({self.name})"
        keys, traced = [], []
        for k, leaf in enumerate(leaves):
            if type(leaf) is np.ndarray:  # the common case first: this runs on every call
                keys.append((leaf.shape, leaf.dtype.str, leaf.strides))
                traced.append(True)
                continue
            if isinstance(leaf, Tracer):
                return None, None, None
            lk, is_traced = _leaf_key(leaf, who, f"argument leaf {k}")
            keys.append(lk)
            traced.append(is_traced)
        skeys = []
        for i in static:
            try:
                hash(args[i])
            except TypeError:
                raise TypeError(f"{who}: static argument {i} must be hashable, got a "
                                f"{type(args[i]).__name__}") from None
            skeys.append((i, type(args[i]), args[i]))
        key = (len(args), tuple(static), treedef, tuple(keys), tuple(skeys),
               tuple(k() for k in context_keys))
        return key, leaves, (treedef, traced, static, dynamic)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key, leaves, layout = self._signature(args, kwargs)
        if key is None or any(isinstance(args[i], Tracer) for i in layout[2]):
            self.inlined += 1  # called with values of an enclosing transform: run f as it is
            return self.f(*args, **kwargs)
        entry = self.cache.get(key)
        if entry is not None:
            self.cache.move_to_end(key)
            return self._replay(entry, leaves)
        return self._compile(key, args, kwargs, leaves, layout)

    def call_into(self, into: list, *args: Any, **kwargs: Any) -> Any:
        """``self(*args, **kwargs)``, offering ``into`` (one array or None per leaf of the
        flattened output) as the memory of the outputs: an output the program writes with
        ``out=`` lands in the offered array, which is returned itself (``result is into[k]``);
        the others come back as usual. For a caller that wants results in a buffer of its own
        (a data-parallel step's gradients in the allreduce buffer) without copying them."""
        key, leaves, layout = self._signature(args, kwargs)
        if key is None or any(isinstance(args[i], Tracer) for i in layout[2]):
            return self(*args, **kwargs)
        entry = self.cache.get(key)
        if entry is None:
            return self._compile(key, args, kwargs, leaves, layout)
        self.cache.move_to_end(key)
        return self._replay(entry, leaves, into)

    def _replay(self, entry: tuple, leaves: list, into: list | None = None) -> Any:
        """A cached program run on the traced leaves (``into``: see call_into)."""
        program, out_def, traced, donated = entry
        ins = [leaf for leaf, t in zip(leaves, traced) if t]
        if donated:
            _check_donated(self.name, ins, donated)
        return tree_unflatten(out_def, program(ins, into))

    def _compile(self, key: Any, args: tuple, kwargs: dict, leaves: list, layout: Any) -> Any:
        treedef, traced, static, dynamic = layout
        t0 = time.perf_counter()
        trace = JitTrace()
        boxed = [trace.new_input(leaf) if t else leaf for leaf, t in zip(leaves, traced)]
        inputs = [b.var for b, t in zip(boxed, traced) if t]
        dyn_args, kwargs2 = tree_unflatten(treedef, boxed)
        full = list(args)
        for i, a in zip(dynamic, dyn_args):
            full[i] = a
        try:
            out = self.f(*full, **kwargs2)
            out_leaves, out_def = tree_flatten(out)
            refs = [self._output(o) for o in out_leaves]
        except _Captured:  # f reads a value of an enclosing transform: run it as it is
            self.inlined += 1
            return self.f(*args, **kwargs)
        result = tree_unflatten(out_def, [o.value if isinstance(o, JitTracer) else o
                                          for o in out_leaves])
        donated = self._donated_leaves(args, dynamic, leaves, traced)
        if donated:
            _check_donated(self.name, [leaf for leaf, t in zip(leaves, traced) if t], donated)
        program = Program(inputs, trace.eqns, refs, trace.specs, self.name, trace.shares,
                          {inputs[k] for k in donated})
        passes.optimize(program, fuser[0])
        program.build()
        with self._lock:
            self.cache[key] = (program, out_def, traced, donated)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
            self.compiles += 1
            self.compile_seconds += time.perf_counter() - t0
        if _CHECK:  # PEARLNET_JIT_CHECK=1: replay at once and compare (the test suite)
            replay = tree_unflatten(out_def, program([leaf for leaf, t in zip(leaves, traced)
                                                      if t]))
            _compare(self.name, result, replay)
            return replay
        return result

    def _donated_leaves(self, args: tuple, dynamic: list, leaves: list,
                        traced: list) -> tuple:
        """Positions, among the traced leaves, of the donated arguments' arrays."""
        if not self.donate_argnums:
            return ()
        n = len(args)
        for d in self.donate_argnums:
            if not -n <= d < n:
                raise ValueError(f"jit({self.name}): donate_argnums {self.donate_argnums} does "
                                 f"not fit {n} arguments")
        donate = {d % n for d in self.donate_argnums}
        leaf_arg: list[int] = []  # the argument of each leaf, in flattening order
        for i in dynamic:
            leaf_arg += [i] * len(tree_flatten(args[i])[0])
        positions, k = [], 0
        for j, t in enumerate(traced):
            if t:
                if j < len(leaf_arg) and leaf_arg[j] in donate and type(leaves[j]) is np.ndarray:
                    positions.append(k)
                k += 1
        return tuple(positions)

    def _output(self, o: Any) -> Any:
        if isinstance(o, JitTracer):
            return Var(o.var)
        if isinstance(o, Tracer):
            raise TypeError(f"jit({self.name}): f returned a value traced by a transform inside "
                            f"it (a tracer leaked out of grad or jvp)")
        return o


_CHECK = os.environ.get("PEARLNET_JIT_CHECK", "") not in ("", "0")


def _compare(name: str, recorded: Any, replayed: Any) -> None:
    a, _ = tree_flatten(recorded)
    b, _ = tree_flatten(replayed)
    for x, y in zip(a, b):
        if isinstance(x, (np.ndarray, np.generic)):
            if np.shape(x) != np.shape(y) or np.result_type(x) != np.result_type(y):
                raise AssertionError(f"jit({name}): replay gave {np.shape(y)} "
                                     f"{np.result_type(y)}, recording {np.shape(x)} "
                                     f"{np.result_type(x)}")
            if not np.array_equal(x, y, equal_nan=True):  # fused arithmetic is exact too
                raise AssertionError(f"jit({name}): replay differs from the recording")


def jit(f: Callable, static_argnums: int | Sequence[int] = (), cache_size: int = 16,
        donate_argnums: int | Sequence[int] = ()) -> Jitted:
    """f compiled: the first call per input signature records f's primitives (derivatives
    included) into a straight-line program; later calls replay it without tracers, with
    buffers reused and elementwise chains fused. Same numbers as f (bitwise where no fusion
    applies). See ``pearlnet.autodiff.compiled`` for what is static and what is traced.

    ``donate_argnums`` (as jax.jit's): the arrays of these arguments are given to the
    program, which may write results over them once it has read them for the last time (an
    output of their shape and dtype then comes back in the caller's array). Do not use a
    donated array after the call; its contents are unspecified. A donated array must be
    writable and share no memory with another argument (a ValueError says which).

    >>> import numpy as np, pearlnet, pearlnet.numpy as pnp
    >>> step = pearlnet.jit(pearlnet.grad(lambda w: pnp.sum(pnp.tanh(w) ** 2)))
    >>> step(np.array([0.5, 1.0])).round(4)
    array([0.7269, 0.6397])
    """
    return Jitted(f, static_argnums, cache_size, donate_argnums=donate_argnums)
