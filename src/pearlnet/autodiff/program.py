"""A compiled program: the straight-line list of primitive applications jit recorded, and the
Python function generated to run it.

An equation applies one function (a primitive's impl, a fused kernel) to program values
(``Var``) and constants, and defines one value. The passes (passes.py) shorten the list and give
equations buffers; ``build`` then writes the program as Python source, one line per equation
(``v7 = f3(v2, c1, out=b0)``), with ``del`` where a value dies, and compiles it: replaying costs
one Python call per equation and nothing else (no tracer, no dictionary, no loop).
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable

import numpy as np

__all__ = ["Var", "Eqn", "Program", "Spec", "walk_vars", "map_vars"]


class Var:
    """A reference to program value number ``id`` inside an equation's arguments."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def __repr__(self) -> str:
        return f"v{self.id}"


def walk_vars(obj: Any, out: list) -> list:
    """The ids of the Vars in an argument (a Var, or a tuple/list holding some)."""
    if type(obj) is Var:
        out.append(obj.id)
    elif type(obj) in (tuple, list):
        for o in obj:
            walk_vars(o, out)
    return out


def map_vars(obj: Any, f: Callable[[int], Any]) -> Any:
    """The argument with each Var replaced by f(its id)."""
    if type(obj) is Var:
        return f(obj.id)
    if type(obj) in (tuple, list):
        return type(obj)(map_vars(o, f) for o in obj)
    return obj


class Spec:
    """What the passes need of a value: is it an array (and C-ordered), its shape, dtype and
    size, is it real. Recorded instead of the value, which is freed as soon as the function
    being compiled lets go of it."""

    __slots__ = ("array", "shape", "dtype", "size", "c", "real", "order")

    def __init__(self, value: Any) -> None:
        self.array = type(value) is np.ndarray
        self.shape = np.shape(value) if self.array or isinstance(value, np.generic) else ()
        self.dtype = value.dtype if isinstance(value, (np.ndarray, np.generic)) else None
        self.size = value.size if self.array else 1
        self.c = self.array and value.flags.c_contiguous
        self.real = not (isinstance(value, (np.ndarray, np.generic, complex))
                         and np.iscomplexobj(value))
        # the axes in memory order when the array is dense in some order (a transposed view's
        # result, NCHW arrays over batch-last memory): a buffer made in that order has its
        # layout, so what reads it runs as it did when recorded; None when not dense
        self.order = None
        if self.array and value.ndim:
            order = tuple(sorted(range(value.ndim), key=lambda a: -abs(value.strides[a])))
            if value.transpose(order).flags.c_contiguous:
                self.order = order


def empty(shape: tuple, dtype: Any, order: tuple) -> np.ndarray:
    """An array of ``shape`` whose memory runs through the axes in ``order``."""
    base = np.empty([shape[a] for a in order], dtype)
    return base.transpose(np.argsort(order))


class Eqn:
    """``out = fn(*args, **params)``; ``prim`` the primitive it came from (None for a fused
    kernel or a helper), ``effect`` a collective (kept, in order, never merged), ``out_buf``
    the buffer the planner gave its result (None: the function allocates), ``inplace`` the
    argument position it overwrites (its buffer), ``ufunc``/``out_impl`` how to write into it."""

    __slots__ = ("fn", "prim", "args", "params", "out", "effect", "out_buf", "call_out")

    def __init__(self, fn: Callable, prim: Any, args: list, params: dict, out: int,
                 effect: bool = False) -> None:
        self.fn, self.prim, self.args, self.params = fn, prim, args, params
        self.out, self.effect = out, effect
        self.out_buf: Any = None  # ("arg", position) or ("slot", k)
        self.call_out: Callable | None = None  # fn writing into out=: call_out(out, *args)

    def uses(self) -> list[int]:
        ids: list[int] = []
        walk_vars(self.args, ids)
        walk_vars(tuple(self.params.values()), ids)
        return ids

    def __repr__(self) -> str:
        name = getattr(self.prim, "name", None) or getattr(self.fn, "__name__", "fn")
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"v{self.out} = {name}({', '.join(map(_short, self.args))}{params})"


def _short(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array{a.shape}"
    return repr(a)


class Program:
    """Inputs (value ids), equations, outputs (a Var or a constant each), and while compiling
    what the passes read of each value: its ``Spec`` (``specs``, by id) and the value whose
    memory it shares (``shares``: a view's argument; -1 for a constant's memory)."""

    def __init__(self, inputs: list[int], eqns: list[Eqn], outputs: list, specs: Any,
                 name: str = "f", shares: dict | None = None,
                 donated: set | None = None) -> None:
        self.inputs, self.eqns, self.outputs = inputs, eqns, outputs
        self.donated: set = set() if donated is None else donated  # inputs it may write over
        self.specs: Any = specs
        self.shares: dict = {} if shares is None else shares
        self.name = name
        self.slots: list[tuple] = []  # ((size,), dtype, (0,)) of each persistent flat buffer
        self.views: list[tuple] = []  # (slot, shape, dtype, axis order): a result in a slot
        self.pool_specs: list[tuple] = []  # (shape, dtype, axis order) of each recycled output
        self.pooled: set = set()
        self.run: Callable | None = None
        self.output_pool: list = []  # per output: its pool slot (None: not recyclable)
        self.busy = threading.Lock()  # held by a replay (another call meanwhile, re-entrant or
        self.run_fresh: Callable | None = None  # from another thread, runs without buffers)

    def __repr__(self) -> str:
        lines = [f"program {self.name}({', '.join(f'v{i}' for i in self.inputs)}):"]
        lines += [f"  {e!r}" for e in self.eqns]
        lines.append(f"  return {', '.join(map(_short, self.outputs))}")
        return "\n".join(lines)

    def build(self) -> None:
        """Write and compile the replay functions (with and without the persistent buffers)."""
        pool_of = {e.out: e.out_buf[1] for e in self.eqns
                   if e.out_buf is not None and e.out_buf[0] == "pool"}
        self.output_pool = [pool_of.get(o.id) if type(o) is Var else None
                            for o in self.outputs]
        self.run = _generate(self, buffers=True)
        self.run_fresh = _generate(self, buffers=False) if self.slots or self.pool_specs \
            else self.run
        self.specs = None

    def __call__(self, leaves: list, into: list | None = None) -> list:
        """The outputs for these input leaves. ``into`` (a list aligned with the outputs, None
        where no matter) offers arrays the outputs may be written into: an output the program
        writes with ``out=`` (a recyclable one) whose shape, dtype and C-ordered layout match
        is computed right there, and returned as that very array; the others are returned as
        usual (the caller checks identity). Same numbers either way: only the memory differs."""
        if not self.busy.acquire(blocking=False):  # a replay is in progress
            return self.run_fresh(*leaves)
        dest = self.run.dest
        try:
            if into is not None:
                for k, arr in enumerate(into):
                    n = self.output_pool[k] if k < len(self.output_pool) else None
                    if arr is None or n is None or dest[n] is not None:
                        continue
                    shape, dtype, order = self.pool_specs[n]
                    if (arr.shape == tuple(shape) and arr.dtype == dtype
                            and tuple(order) == tuple(range(len(shape)))
                            and arr.flags.c_contiguous and arr.flags.writeable):
                        dest[n] = arr
            return self.run(*leaves)
        finally:
            if into is not None:
                dest[:] = [None] * len(dest)
            self.busy.release()


def _view(flat: np.ndarray, shape: tuple, order: tuple) -> np.ndarray:
    """The first entries of a flat buffer as an array of ``shape`` whose memory runs through
    the axes in ``order`` (what ``empty`` makes, in memory a buffer may lend to others)."""
    size = int(np.prod(shape, dtype=np.int64))
    return flat[:size].reshape([shape[a] for a in order]).transpose(np.argsort(order))


def _recycler(specs: list[tuple]) -> tuple[Callable, Callable, list]:
    """(take, give, dest): ``take(k)`` is the array the caller offered for output k (``dest``),
    else one of the arrays output k had in the last three calls that nobody else holds any
    more (its reference count says so: then no caller can see it change), else a new one;
    ``give(k, a)`` remembers output k's new array (not one the caller offered: that stays
    the caller's alone). Three, not one: a caller that keeps the last result while passing it
    back in, and the one before as well (a loop keeping the last two states), frees the one
    before those. The kept arrays the caller still holds cost no memory of their own."""
    pool: list = [[] for _ in specs]
    dest: list = [None] * len(specs)
    offered: list = [False] * len(specs)  # output k went into the caller's array this call
    refcount = sys.getrefcount

    def take(k: int) -> np.ndarray:
        a = dest[k]
        if a is not None:
            dest[k] = None
            offered[k] = True
            return a
        kept = pool[k]
        for i in range(len(kept)):
            if refcount(kept[i]) == 2:  # the list's reference and the call's argument alone
                return kept.pop(i)
        return empty(*specs[k])

    def give(k: int, a: np.ndarray) -> None:
        if offered[k]:  # the caller's own array: not the recycler's to keep
            offered[k] = False
            return
        kept = pool[k]
        kept.append(a)
        if len(kept) > 3:
            del kept[0]

    return take, give, dest


def _generate(program: Program, buffers: bool) -> Callable:
    """The program as one Python function: a line per equation, ``del`` after last uses."""
    glob: dict[str, Any] = {}
    consts: dict[int, str] = {}

    def const(value: Any) -> str:
        if value is None or type(value) in (bool, int, str):
            return repr(value)
        key = id(value)
        if key not in consts:
            consts[key] = f"c{len(consts)}"
            glob[consts[key]] = value
        return consts[key]

    def expr(a: Any) -> str:
        if type(a) is Var:
            return f"v{a.id}"
        if type(a) in (tuple, list) and walk_vars(a, []):
            inner = ", ".join(expr(x) for x in a)
            return f"({inner},)" if type(a) is tuple else f"[{inner}]"
        return const(a)

    last: dict[int, int] = {}
    for k, e in enumerate(program.eqns):
        for i in e.uses():
            last[i] = k
    keep = {o.id for o in program.outputs if type(o) is Var}
    if buffers:
        flat = [np.empty(shape, dtype) for shape, dtype, _ in program.slots]
        for k, (slot, shape, _, order) in enumerate(program.views):
            glob[f"b{k}"] = _view(flat[slot], shape, order)
        glob["_take"], glob["_give"], glob["_dest"] = _recycler(program.pool_specs)
    lines = [f"def run({', '.join(f'v{i}' for i in program.inputs)}):"]
    for k, e in enumerate(program.eqns):
        args = [expr(a) for a in e.args]
        dynamic = {key: v for key, v in e.params.items() if walk_vars(v, [])}
        fixed = {key: v for key, v in e.params.items() if key not in dynamic}
        kw = [f"{key}={expr(v)}" for key, v in dynamic.items()]
        buf = e.out_buf if buffers else None
        if buf is not None:
            kind, n = buf
            out = args[n] if kind == "arg" else f"b{n}" if kind == "slot" else f"_take({n})"
            ufunc = getattr(e.call_out, "ufunc", None)
            if ufunc is not None and not fixed and not kw:  # one Python call, not two
                call = f"{const(ufunc)}({', '.join(args)}, out={out})"
            else:
                fn = e.call_out if not fixed else functools.partial(e.call_out, **fixed)
                call = f"{const(fn)}({', '.join([out, *args, *kw])})"
        else:
            fn = e.fn if not fixed else functools.partial(e.fn, **fixed)
            call = f"{const(fn)}({', '.join([*args, *kw])})"
        lines.append(f"    v{e.out} = {call}")
        if buf is not None and buf[0] == "pool":
            lines.append(f"    _give({buf[1]}, v{e.out})")
        dead = sorted(i for i in set(e.uses()) if last.get(i) == k and i not in keep)
        if dead:
            lines.append(f"    del {', '.join(f'v{i}' for i in dead)}")
    outs = ", ".join(expr(o) for o in program.outputs)
    lines.append(f"    return [{outs}]")
    source = "\n".join(lines)
    code = compile(source, f"<jit program {program.name}>", "exec")
    exec(code, glob)  # noqa: S102  (our own generated straight-line code)
    run = glob["run"]
    run.source = source
    run.dest = glob.get("_dest", [])
    return run
