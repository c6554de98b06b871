"""The passes over a recorded program (program.py), run in this order by ``optimize``:

- ``fold``: equations whose arguments are all known (constants, or inputs bound with
  ``fold(program, {input id: value})``) become constants, their values computed once;
- ``cse``: an equation repeating an earlier one (same function, arguments and parameters)
  is dropped and its value replaced by the earlier one's;
- ``dce``: equations no output needs are dropped (collectives are kept);
- fusion (fusion.py): elementwise chains become one kernel each;
- ``plan_buffers``: from liveness, each result that can be written into ``out=`` goes into
  an argument that dies there (in place) or a persistent buffer of its shape and dtype, never
  into memory an input, a constant or a live value can see; an output goes into the array the
  previous call returned, when the caller has let go of it (program.py).

Each pass keeps the numbers: a removed equation computed a value nobody reads, a merged one
the same value from the same arguments, a buffer only changes where a result is stored.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .program import Eqn, Program, Spec, Var, map_vars, walk_vars

__all__ = ["fold", "cse", "dce", "choose_out", "plan_buffers", "optimize"]


def _rename(program: Program, alias: dict[int, Any]) -> None:
    """Replace uses of value ids by what ``alias`` maps them to (a Var or a constant)."""
    if not alias:
        return

    def sub(i: int) -> Any:
        return alias.get(i, Var(i))

    for e in program.eqns:
        e.args = [map_vars(a, sub) for a in e.args]
        e.params = {k: map_vars(v, sub) for k, v in e.params.items()}
    program.outputs = [map_vars(o, sub) for o in program.outputs]


# ---- folding -----------------------------------------------------------------------------
def fold(program: Program, known: dict[int, Any] | None = None) -> None:
    """Compute now every equation whose arguments are constants or ``known`` values
    (input id -> value); their results become constants of the program."""
    known = dict(known or {})
    kept = []
    for e in program.eqns:
        if e.effect or any(i not in known for i in e.uses()):
            kept.append(e)
            continue
        args = [map_vars(a, known.__getitem__) for a in e.args]
        params = {k: map_vars(v, known.__getitem__) for k, v in e.params.items()}
        known[e.out] = e.fn(*args, **params)
        if program.specs is not None:
            program.specs[e.out] = Spec(known[e.out])
    program.eqns = kept
    program.inputs = [i for i in program.inputs if i not in known]
    _rename(program, known)


# ---- common subexpressions ---------------------------------------------------------------
def _freeze(x: Any) -> Any:
    t = type(x)
    if t is Var:
        return ("v", x.id)
    if t in (tuple, list):
        return (t.__name__, *[_freeze(a) for a in x])
    if t is dict:
        return ("d", *[(k, _freeze(v)) for k, v in x.items()])
    if t is slice:
        return ("s", _freeze(x.start), _freeze(x.stop), _freeze(x.step))
    if t in (bool, int, float, complex, str, type(None)) or isinstance(x, np.dtype):
        return (t, x)
    return ("o", id(x))  # arrays and other objects: the same object only


def cse(program: Program) -> None:
    """Drop equations that repeat an earlier one; their uses read the earlier value."""
    seen: dict[Any, int] = {}
    alias: dict[int, Any] = {}
    kept = []

    def sub(i: int) -> Any:
        return alias.get(i, Var(i))

    for e in program.eqns:
        e.args = [map_vars(a, sub) for a in e.args]
        e.params = {k: map_vars(v, sub) for k, v in e.params.items()}
        if e.effect:
            kept.append(e)
            continue
        key = (id(e.fn), _freeze(e.args), _freeze(e.params))
        first = seen.get(key)
        if first is None:
            seen[key] = e.out
            kept.append(e)
        else:
            alias[e.out] = Var(first)
    program.eqns = kept
    program.outputs = [map_vars(o, sub) for o in program.outputs]


# ---- dead code ---------------------------------------------------------------------------
def dce(program: Program) -> None:
    """Drop equations whose values no output (and no collective) needs: one walk backwards."""
    live: set[int] = set()
    for o in program.outputs:
        live.update(walk_vars(o, []))
    kept = []
    for e in reversed(program.eqns):
        if e.effect or e.out in live:
            kept.append(e)
            live.update(e.uses())
    kept.reverse()
    program.eqns = kept


# ---- buffers -----------------------------------------------------------------------------
def _is_array(s: Spec) -> bool:
    """An array an out= buffer can stand for: dense in some axis order, which the buffer then
    has too (a result in another layout would be read, and summed, in another order)."""
    return s.array and len(s.shape) > 0 and s.order is not None


def _ufunc_out(ufunc: Any):
    def call(out, *args):
        return ufunc(*args, out=out)
    call.__name__ = f"{ufunc.__name__}_out"
    call.ufunc = ufunc  # the generated code calls the ufunc itself, with out=
    return call


def _real(v: Any) -> bool:
    if type(v) is Spec:
        return v.real
    return not (isinstance(v, (np.ndarray, np.generic, complex)) and np.iscomplexobj(v))


def choose_out(program: Program) -> None:
    """Which equations can write into ``out=``: a primitive that is a NumPy ufunc
    (``elementwise``) or has an ``out_impl``, given real arguments. (Complex arithmetic
    written in place may take another SIMD loop, with other roundings: complex values, which
    only the complex step computes, keep fresh arrays.)"""
    specs = program.specs
    for e in program.eqns:
        if e.call_out is not None or e.prim is None:
            continue
        if not (_real(specs[e.out]) and all(_real(specs[i]) for i in e.uses())
                and all(_real(a) for a in e.args)):
            continue
        ufunc = e.prim.elementwise
        if isinstance(ufunc, np.ufunc) and e.fn is ufunc:
            e.call_out = _ufunc_out(ufunc)
        elif e.prim.out_impl is not None:
            e.call_out = e.prim.out_impl


def _storages(program: Program) -> tuple[dict, set]:
    """Each value's storage (the id of the value whose memory it lives in: views share their
    argument's) and the storages the program may not write (inputs', constants', outputs')."""
    storage: dict[int, int] = {i: i for i in program.inputs}
    foreign: set[int] = set(program.inputs) - program.donated  # donated: writable once dead
    for e in program.eqns:
        shared = program.shares.get(e.out)
        if shared is None or shared not in storage:  # its own memory (or a folded value's)
            storage[e.out] = e.out
            if shared is not None:
                foreign.add(e.out)
        else:
            storage[e.out] = storage[shared]
    program.pooled = set()
    for o in program.outputs:
        if type(o) is Var:
            if storage[o.id] == o.id and o.id not in foreign:
                program.pooled.add(o.id)  # an output with memory of its own: recyclable
            foreign.add(storage[o.id])
    return storage, foreign


def plan_buffers(program: Program) -> None:
    """Give each equation that can write into ``out=`` a buffer: an argument that dies there
    (in place; elementwise only) or a persistent buffer of the result's dtype, large enough,
    whose last reader has run (a flat buffer, which results of other shapes share: each is a
    view of its first entries, in the result's layout). Never written: the memory of an input,
    a constant or an output (returned, so fresh each call), nor any memory a live value can
    see. A donated input (``jit(..., donate_argnums=...)``) is the exception: once its last
    reader has run, a result of its shape, dtype and layout may be written over it, an output
    included (which then comes back in the caller's array, as with jax.jit's donation)."""
    choose_out(program)
    specs = program.specs
    storage, foreign = _storages(program)
    last: dict[int, int] = {}  # storage -> index of the last equation reading (or making) it
    for k, e in enumerate(program.eqns):
        last.setdefault(storage[e.out], k)
        for i in e.uses():
            last[storage[i]] = k
    free: dict[Any, list[int]] = {}  # dtype -> persistent buffers whose last reader has run
    slot_of: dict[int, int] = {}
    moved: dict[int, int] = {}  # a storage taken over by another (in place)

    def where(i: int) -> int:
        s = storage[i]
        while s in moved:
            s = moved[s]
        return s

    for k, e in enumerate(program.eqns):
        out, s = specs[e.out], where(e.out)
        pooled = e.out in program.pooled
        if e.call_out is not None and _is_array(out) and (pooled or (
                s == e.out and s not in foreign)):
            inplace = None
            if e.prim is None or isinstance(getattr(e.prim, "elementwise", None), np.ufunc):
                positions = range(len(e.args))  # elementwise: any argument
            else:  # an out_impl that says which arguments it may overwrite (add_at's total)
                positions = getattr(e.call_out, "inplace", ())
            for pos in positions:
                a = e.args[pos]
                if type(a) is not Var:
                    continue
                v, sa = specs[a.id], where(a.id)
                # an output may take over only a donated input's memory (the caller's, and
                # given up), never a persistent buffer's (the next call would overwrite it)
                if (sa not in foreign and last[sa] == k and v.array
                        and (not pooled or sa in program.donated)
                        and v.shape == out.shape and v.dtype == out.dtype
                        and v.order is not None and v.order == out.order):
                    inplace = (pos, sa)
                    break
            if inplace is not None:  # the result takes over the dying argument's memory
                pos, sa = inplace
                e.out_buf = ("arg", pos)
                if s in foreign:  # an output in a donated input's memory: never written again
                    foreign.add(sa)
                moved[s] = sa
                last[sa] = last.pop(s)
                s = sa
            elif getattr(e.call_out, "inplace_only", False):
                pass  # over a dying argument or not at all (where's selection)
            elif pooled:
                # an output: written into the array the previous call returned, if the caller
                # has let go of it (program.py checks the reference count), else a fresh one
                e.out_buf = ("pool", len(program.pool_specs))
                program.pool_specs.append((out.shape, out.dtype, out.order))
            else:
                # a persistent buffer: the smallest free one of this dtype that is large
                # enough (its first entries, in this result's shape and layout), else a new one
                pool = free.setdefault(out.dtype, [])
                fits = [b for b in pool if program.slots[b][0][0] >= out.size]
                if fits:
                    slot = min(fits, key=lambda b: (program.slots[b][0][0], b))
                    pool.remove(slot)
                else:
                    slot = len(program.slots)
                    program.slots.append(((out.size,), out.dtype, (0,)))
                slot_of[s] = slot
                e.out_buf = ("slot", len(program.views))
                program.views.append((slot, out.shape, out.dtype, out.order))
        for sd in {where(i) for i in e.uses()} | {s}:
            if last.get(sd) == k and sd in slot_of:
                slot = slot_of.pop(sd)
                free.setdefault(program.slots[slot][1], []).append(slot)


def hoist(program: Program, movable: Callable[[Eqn], bool]) -> None:
    """Move each equation ``movable`` picks (a collective never) up to just after the equation
    making the latest of its arguments, and after the last collective before it, keeping the
    order of those met at one place. The program is pure, so every value is the same, bit for
    bit."""
    # each equation gets a sort key: (its index,) where it stays; a moved one gets the key of
    # its anchor extended by its index, which sorts it just after the anchor
    keys: dict[int, tuple] = {i: (-1,) for i in program.inputs}
    placed: list[tuple] = []
    last_effect: tuple = (-1,)
    for n, e in enumerate(program.eqns):
        if not e.effect and movable(e):
            key = max([keys[i] for i in e.uses() if i in keys] + [last_effect]) + (n,)
        else:
            key = (n,)
            if e.effect:
                last_effect = key
        keys[e.out] = key
        placed.append((key, e))
    placed.sort(key=lambda p: p[0])
    program.eqns = [e for _, e in placed]


def hoist_accumulations(program: Program) -> None:
    """Move each accumulation (an equation whose out_impl adds into its argument 0, such as
    the reverse pass's index-add of a slice's cotangent) up to just after its arguments are
    made. A reverse pass adds the cotangents of a value's slices only when it reaches the value
    itself, at the end (an LSTM's 50 steps' gate cotangents, 6 MB, all alive until then); added
    as soon as each is made, each dies at once. The chain of additions keeps its order (each
    reads the one before)."""
    hoist(program, lambda e: e.prim is not None
          and bool(getattr(e.prim.out_impl, "inplace", ())))


def optimize(program: Program, fuse: Any = None) -> Program:
    """The passes in order (fusion when a fuser is given), then the buffer plan."""
    fold(program)
    cse(program)
    dce(program)
    if fuse is not None:
        fuse(program)
        dce(program)
    hoist_accumulations(program)
    plan_buffers(program)
    return program
