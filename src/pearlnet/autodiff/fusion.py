"""Fusion: a chain of elementwise arithmetic in a program becomes one compiled loop.

A group is a tree of equations applying + - * / negative, square and sqrt (the operations IEEE
754 rounds exactly, so a loop computes NumPy's bits) to arrays of one shape and one real dtype
and to scalars, and selections ``where(c, x, y)`` on a 0-d condition (``x if c else y``), each
intermediate read once, inside the group. The group becomes one equation
calling a kernel: ``out[i] = expression(a[i], b[i], c)`` for every i, written as Python source
and compiled by Numba (``pearlnet[fast]``): one pass over memory instead of one per operation,
and no intermediate array. Transcendental functions (exp, tanh) are left to NumPy, whose SIMD
versions round differently from a compiled loop's libm calls. Scalars are cast to the group's
dtype first, as NumPy casts a Python float in an operation with a float32 array.

Kernels are cached on disk (``PEARLNET_CACHE``, default ~/.cache/pearlnet/kernels), so a
process compiles each expression once per machine. Without Numba there is no fusion; jit still
removes the tracer and reuses buffers (passes.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .passes import hoist
from .program import Eqn, Program, Spec, Var

__all__ = ["fuse", "available"]

_BINARY = {np.add: "({} + {})", np.subtract: "({} - {})", np.multiply: "({} * {})",
           np.true_divide: "({} / {})"}
_UNARY = {np.negative: "(-{})", np.square: "({0} * {0})", np.sqrt: "np.sqrt({})"}
_KERNELS: dict[str, Any] = {}
MIN_SIZE = 2048  # entries: smaller groups stay NumPy calls (a kernel call costs microseconds)
_AVAILABLE: list = []


def available() -> bool:
    """Is Numba installed (and fusion not switched off by PEARLNET_FUSION=0)?"""
    if not _AVAILABLE:
        ok = os.environ.get("PEARLNET_FUSION", "1") != "0"
        if ok:
            try:
                import numba  # noqa: F401
            except ImportError:
                ok = False
        _AVAILABLE.append(ok)
    return _AVAILABLE[0]


def _operand_ok(v: Any, shape: tuple, dtype: np.dtype) -> bool:
    if type(v) is Spec:
        return v.dtype == dtype and (v.shape == shape or (v.array and v.shape == ()))
    if isinstance(v, np.ndarray):
        return v.dtype == dtype and (v.shape == shape or v.ndim == 0)
    if isinstance(v, np.generic):
        return v.dtype == dtype
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_select(e: Eqn, specs: list) -> bool:
    """``where(c, x, y)`` with one condition for the whole array (0-d): ``x if c else y``,
    a selection, so the loop keeps NumPy's bits (Model.fit's guarded update)."""
    if getattr(e.prim, "name", None) != "where" or len(e.args) != 3:
        return False
    c = e.args[0]
    v = specs[c.id] if type(c) is Var else c
    return (v.shape == () and v.dtype is not None) if type(v) is Spec else (
        isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.ndim == 0))


def _candidate(e: Eqn, specs: list) -> bool:
    ufunc = getattr(e.prim, "elementwise", None)
    select = _is_select(e, specs)
    if e.params or e.effect or not select and (
            (ufunc not in _BINARY and ufunc not in _UNARY) or e.fn is not ufunc):
        return False
    out = specs[e.out]
    if not (out.array and out.shape and out.dtype in (np.float32, np.float64) and out.c):
        return False
    for a in e.args[1:] if select else e.args:
        v = specs[a.id] if type(a) is Var else a
        if not _operand_ok(v, out.shape, out.dtype):
            return False
    return True


def _hoist_selects(program: Program) -> None:
    """Move each select (``where`` on a 0-d condition) up to just after the equation making
    the last of its arguments, so that it is next to the chain making its operand and joins
    that chain's group: an optimizer's guarded slots, ``where(ok, m_new, m)``, recorded after
    all of a leaf's new slots."""
    specs = program.specs
    hoist(program, lambda e: _is_select(e, specs))


def fuse(program: Program) -> None:
    """Replace each group of two or more fusable equations by one kernel equation."""
    if not available():
        return
    specs = program.specs
    _hoist_selects(program)
    uses: dict[int, int] = {}
    for e in program.eqns:
        for i in e.uses():
            uses[i] = uses.get(i, 0) + 1
    for o in program.outputs:
        if type(o) is Var:
            uses[o.id] = uses.get(o.id, 0) + 2  # an output is never inside a group
    members: dict[int, list[Eqn]] = {}  # root value id -> its group's equations, in order
    start: dict[int, int] = {}  # root value id -> index of its group's first equation
    for k, e in enumerate(program.eqns):
        if not _candidate(e, specs):
            continue
        parts = [a.id for a in e.args if type(a) is Var and a.id in members
                 and uses.get(a.id) == 1 and specs[a.id].shape == specs[e.out].shape]
        # a group spans consecutive equations: fusing across others would keep its inputs
        # alive longer (the 50 gradient contributions of an LSTM's time steps, added up at
        # the end, instead of one at a time)
        group, first = [], k
        for root in sorted(set(parts), key=lambda r: -start[r]):
            if start[root] + len(members[root]) == first:
                group = members.pop(root) + group
                first = start.pop(root)
        members[e.out] = group + [e]
        start[e.out] = first
    fused: dict[int, Eqn] = {}
    dropped: set[int] = set()
    for e in program.eqns:  # primitives that state their arithmetic (tanh_grad): one loop
        form = _form(e, specs)
        if form is not None:
            try:
                fused[e.out] = _kernel_eqn(form[0], [*e.args, *form[1]], specs, e.out)
            except Exception:  # noqa: BLE001  (as below: NumPy's calls then)
                continue
            dropped.add(id(e))
    for root, group in members.items():
        if len(group) < 2 or specs[root].size < MIN_SIZE:  # below it NumPy's calls are cheaper
            continue
        try:
            fused[root] = _fused_eqn(group, specs)
        except Exception:  # noqa: BLE001  (no cache directory, a compiler error: NumPy's calls)
            continue
        dropped.update(id(e) for e in group)
    if not fused:
        return
    program.eqns = [fused.get(e.out, e) if id(e) in dropped else e for e in program.eqns
                    if id(e) not in dropped or e.out in fused]


def _form(e: Eqn, specs: list) -> tuple[str, tuple] | None:
    """(expression, constants) of an equation whose primitive's out_impl states its arithmetic
    as ``fused_form``: a format string over its arguments {0}, {1}, ... and then its constants
    (``tanh_grad``: g (1 - y^2) as ``(({2} - ({1} * {1})) * {0})``, constant 1, in NumPy's
    order of operations, so the loop keeps NumPy's bits); None when it does not apply (not all
    arguments arrays of the output's shape and dtype, or fewer than MIN_SIZE entries)."""
    form = getattr(getattr(e.prim, "out_impl", None), "fused_form", None)
    if form is None or e.params or e.effect:
        return None
    out = specs[e.out]
    if not (out.array and out.shape and out.dtype in (np.float32, np.float64) and out.c
            and out.size >= MIN_SIZE):
        return None
    for a in e.args:
        if not (type(a) is Var and specs[a.id].array and specs[a.id].shape == out.shape
                and specs[a.id].dtype == out.dtype and specs[a.id].c):
            return None
    return form


def _kernel_eqn(template: str, inputs: list, specs: list, out_id: int) -> Eqn:
    """One equation calling a kernel ``out[i] = template.format(a0[i], a1[i], ..., c0, ...)``
    over the inputs (array Vars of the output's shape, then constants cast to its dtype)."""
    names = [f"a{k}[i]" if type(a) is Var else f"a{k}" for k, a in enumerate(inputs)]
    return _kernel_call(template.format(*names), inputs, specs, out_id)


def _fused_eqn(group: list[Eqn], specs: list) -> Eqn:
    """The group as one equation: its inputs, an expression, a kernel."""
    root = group[-1]
    inside = {e.out: e for e in group}
    inputs: list = []  # the kernel's arguments: Vars and constants
    names: dict[Any, str] = {}

    def operand(a: Any) -> str:
        if type(a) is Var and a.id in inside:
            return expression(inside[a.id])
        key = ("v", a.id) if type(a) is Var else ("c", id(a))
        if key not in names:
            v = specs[a.id] if type(a) is Var else a
            scalar = not (v.array and v.shape) if type(v) is Spec else not (
                isinstance(v, np.ndarray) and v.ndim)
            names[key] = f"a{len(inputs)}" + ("" if scalar else "[i]")
            inputs.append(a)
        return names[key]

    def expression(e: Eqn) -> str:
        if _is_select(e, specs):
            c, x, y = e.args
            return f"({operand(x)} if {operand(c)} else {operand(y)})"
        ufunc = e.prim.elementwise
        if ufunc in _BINARY:
            return _BINARY[ufunc].format(operand(e.args[0]), operand(e.args[1]))
        return _UNARY[ufunc].format(operand(e.args[0]))

    return _kernel_call(expression(root), inputs, specs, root.out)


def _kernel_call(body: str, inputs: list, specs: list, out_id: int) -> Eqn:
    """The equation ``v{out_id} = kernel(inputs)``: scalars (constants, 0-d values) are passed
    as 1-entry arrays of the output's dtype, arrays flat."""
    out = specs[out_id]
    dtype = out.dtype
    scalars = [k for k, a in enumerate(inputs)
               if not (specs[a.id].array and specs[a.id].shape if type(a) is Var
                       else isinstance(a, np.ndarray) and a.ndim)]
    kernel = _kernel(body, len(inputs), scalars)
    dummies = [np.zeros(1, dtype) for _ in inputs]  # compile now, not at the first replay
    with np.errstate(all="ignore"):
        kernel(np.zeros(1, dtype), *dummies)
    kinds = []
    for a in inputs:
        v = specs[a.id] if type(a) is Var else a
        kinds.append(bool(v.array and v.shape) if type(v) is Spec else (
            isinstance(v, np.ndarray) and v.ndim > 0))
    shape = out.shape

    def prepare(args: tuple) -> list:
        return [a.reshape(-1) if k else np.asarray(a, dtype).reshape(1)
                for a, k in zip(args, kinds)]

    in_place: dict[int, Any] = {}  # argument position -> the loop that writes over it

    def call_out(buf, *args):
        for k, a in enumerate(args):
            if a is buf and kinds[k]:
                # written over its own argument: a loop whose output is that argument, not a
                # second pointer to the same memory, which LLVM cannot prove safe and so
                # leaves unvectorised (Adam's update: 480 us instead of 60 on 200,704 entries)
                loop = in_place.get(k)
                if loop is None:
                    loop = in_place[k] = _kernel(body, len(inputs), scalars, k)
                loop(*prepare(args))
                return buf
        kernel(buf.reshape(-1), *prepare(args))
        return buf

    def call(*args):
        return call_out(np.empty(shape, dtype), *args)

    call.__name__ = call_out.__name__ = f"fused[{body}]"
    e = Eqn(call, None, inputs, {}, out_id)
    e.call_out = call_out
    return e


def _cache_dir() -> Path:
    root = os.environ.get("PEARLNET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pearlnet")
    path = Path(root) / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: the temporary directory
        import tempfile
        path = Path(tempfile.gettempdir()) / "pearlnet-kernels"
        path.mkdir(parents=True, exist_ok=True)
    return path


def _kernel(body: str, n: int, scalars: list[int], over: int | None = None) -> Any:
    """A Numba loop ``out[i] = body`` over arguments a0..a(n-1) (arrays, or 1-entry arrays for
    the ``scalars``, read once before the loop), from a file (Numba caches what it compiles
    beside the file). With ``over = k`` the loop has no ``out``: it writes ``a{k}[i]``."""
    args = ", ".join(f"{'s' if k in scalars else 'a'}{k}" for k in range(n))
    hoist = "".join(f"    a{k} = s{k}[0]\n" for k in scalars)
    out = "out" if over is None else f"a{over}"
    params = f"out, {args}" if over is None else args
    source = (f"import numba\nimport numpy as np\n\n\n"
              f"@numba.njit(cache=True, error_model='numpy', nogil=True)\n"
              f"def kernel({params}):\n{hoist}"
              f"    for i in range({out}.shape[0]):\n"
              f"        {out}[i] = {body}\n")
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    found = _KERNELS.get(key)
    if found is not None:
        return found
    path = _cache_dir() / f"k_{key}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"pearlnet_kernel_{key}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _KERNELS[key] = module.kernel
    return module.kernel
