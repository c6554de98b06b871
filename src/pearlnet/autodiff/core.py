"""The tracing engine: primitives, tracers, and the reverse (tape) and forward (tangent) traces.

This module knows nothing about NumPy. A *primitive* is a plain function plus, per argument, a
reverse rule ``vjp(g, ans, *args, **params)`` and a forward rule ``jvp(t, ans, *args, **params)``.
Rules are themselves written with primitives, so every transform can be applied to a transformed
function: hvp = jvp(grad(f)) is Pearlmutter's R{.} operator applied to the backward pass.

Each transform invocation opens a *trace* with a level taken from a global counter, so nested
transforms have strictly increasing levels. A primitive bound to tracers of several traces
handles the innermost (highest level) one first and passes the others through as constants of
that trace, which is what keeps nested derivatives free of perturbation confusion.

The reverse trace is a tape (Wengert list) in creation order: the backward pass is one loop from
the end of the tape to its start, never a recursion, so chains of any length differentiate.

A *recording* trace (jit's, ``compiled.py``) is always the outermost one. Its tracers are opaque:
``strip`` stops at them, so a rule that reads data (a ReLU mask, a sign) gets a program value,
not a constant; non-differentiable primitives are recorded too. vmap's batch tracers
(batching.py) are opaque as well, at any level: a non-differentiable call goes to the
innermost opaque trace, which records (jit) or batches (vmap) it. ``lower`` carries a primitive
from a trace to the traces below it, where plain values run ``impl`` (traced values never take
the ``eager`` path of plain ones).
"""

from __future__ import annotations

import itertools
import operator
import sys
from typing import Any, Callable

__all__ = ["Primitive", "Tracer", "ReverseTrace", "ForwardTrace", "ReverseTracer", "ForwardTracer",
           "new_level", "primitives", "nondiff"]

_levels = itertools.count(1)

#: every primitive ever created, by name; the op tests check each has rules and a spec entry
primitives: dict[str, Primitive] = {}
"""Every registered primitive, by name: ``Primitive(name, impl)`` adds itself (unless made with
``register=False``), and a name is defined once. The op tests check that each has its reverse
and forward rules and a spec entry.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.autodiff.primitives["exp"] is pnp.exp
True
"""


#: ``add_into(total, c)``: total + c where the backward pass owns ``total`` (it made the array
#: and nobody else holds it), so the sum may overwrite it; the array layer installs an in-place
#: add. The default makes a new sum.
add_into: list[Callable] = [operator.add]


def new_level() -> int:
    """A level above every level handed out so far (nested transforms nest their levels)."""
    return next(_levels)


class Primitive:
    """A function the tracers see as atomic, with one reverse and one forward rule per argument.

    ``vjps[i](g, ans, *args, **params)`` returns the cotangent of argument i given the output
    cotangent g; ``jvps[i](t, ans, *args, **params)`` returns the output tangent contributed by
    the tangent t of argument i. A rule of ``None`` marks an argument as not differentiable
    (an index, a condition); a missing rule is a NotImplementedError naming the primitive when a
    transform needs it. A primitive with ``differentiable=False`` (comparisons, argmax,
    stop_gradient) strips every tracer and returns a plain value. A name is defined once:
    running the same definition again (same module, same impl name: a notebook cell, a reloaded
    module) or ``replace=True`` replaces the registered primitive; another clash is an error.
    """

    __slots__ = ("name", "impl", "eager", "module", "vjps", "jvps", "differentiable",
                 "output_spec", "vjp_into", "vjp_joint", "jvp_joint", "out_impl", "elementwise",
                 "effect", "helper", "batch")

    def __init__(self, name: str, impl: Callable, differentiable: bool = True, *,
                 replace: bool = False, register: bool = True) -> None:
        module = sys._getframe(1).f_globals.get("__name__", "?")  # the defining module
        old = primitives.get(name) if register else None
        if old is not None and not replace:
            was, now = (getattr(f, "__qualname__", repr(f)) for f in (old.impl, impl))
            if (old.module, was) != (module, now):
                raise ValueError(f"Primitive: a primitive named {name!r} exists already, defined "
                                 f"in {old.module} (impl {was}); this one comes from {module} "
                                 f"(impl {now}); pick another name or pass replace=True")
        self.name, self.impl, self.module = name, impl, module
        self.differentiable = differentiable
        # run by a call with no tracer among its arguments (the traces run impl); the array
        # layer installs NumPy's own result for plain complex input here (pearlnet.numpy)
        self.eager = impl
        self.vjps: Any = ()  # a tuple of rules, or a _Variadic table
        self.jvps: Any = ()
        # (shape, dtype) of the output from the arguments (None: compute now), where no forward
        # rule reads the output: forward mode computes it when read (under hvp, never)
        self.output_spec: Callable | None = None
        # ``vjp_into(total, g, ans, *args, **params)``: argument 0's reverse rule added into
        # ``total`` (owned by the backward pass; None: fresh zeros), for a mostly-zero cotangent
        # (indexing); NotImplemented when it cannot (then the plain rule runs)
        self.vjp_into: Callable | None = None
        # ``vjp_joint(g, ans, *args, **params)``: the cotangents of all arguments at once (a
        # sequence), for primitives whose per-argument rules would each recompute a shared
        # part (an LSTM cell: the cotangent of its state); used when several are traced
        self.vjp_joint: Callable | None = None
        # ``jvp_joint(tangents, ans, *args, **params)``: the output tangent from the tangents
        # of all arguments at once (a list, None where an argument has none), where per-argument
        # rules would each build an output-sized array (concatenate of T time steps)
        self.jvp_joint: Callable | None = None
        # for jit's compiled programs (compiled.py): ``out_impl(out, *args, **params)`` writes the
        # result into ``out`` (an array of the result's shape and dtype), for real floating
        # arguments; ``elementwise`` the NumPy ufunc impl is (out= and fusion); ``effect``: a
        # collective or other side effect, never removed, merged or folded; ``helper``: made by
        # ``nondiff`` (its program values may sit inside a tuple argument, an index)
        self.out_impl: Callable | None = None
        self.elementwise: Any = None
        self.effect = False
        self.helper = False
        self.batch: Callable | None = None  # vmap's rule (defbatch, batching.py)
        if register:
            primitives[name] = self

    def __call__(self, *args: Any, **params: Any) -> Any:
        top = None
        for a in args:
            if isinstance(a, Tracer) and (top is None or a.trace.level > top.level):
                top = a.trace
        if top is None:
            if self.helper:  # program values may sit inside an index
                for a in args:
                    if type(a) is tuple:
                        for i in a:
                            if isinstance(i, Tracer) and i.opaque:
                                return i.trace.record(self, args, params, self.eager)
            return self.eager(*args, **params)
        if not self.differentiable:
            vals = [strip(a) for a in args]
            top = None  # the innermost opaque trace (see the module docstring)
            for v in vals:
                if isinstance(v, Tracer) and (top is None or v.trace.level > top.level):
                    top = v.trace
            if top is not None:
                direct = all(a is b for a, b in zip(args, vals))
                return top.record(self, vals, params, self.eager if direct else self.impl)
            return self.impl(*vals, **params)
        return top.process(self, args, params)

    def lower(self, args: Any, params: dict) -> Any:
        """Apply to the values of the traces below the current one (from a trace's
        ``process``): plain values run ``impl``, a recording trace records ``impl``."""
        top = None
        for a in args:
            if isinstance(a, Tracer) and (top is None or a.trace.level > top.level):
                top = a.trace
        if top is None:
            return self.impl(*args, **params)
        if top.records:
            return top.record(self, args, params, self.impl)
        return top.process(self, args, params)

    def defvjp(self, *rules: Callable | None) -> None:
        """Set the reverse rules, one per positional argument (None: not differentiable)."""
        self.vjps = rules

    def defjvp(self, *rules: Callable | None) -> None:
        """Set the forward rules, one per positional argument (None: not differentiable)."""
        self.jvps = rules

    def defbatch(self, rule: Callable) -> None:
        """Set vmap's rule ``rule(args, dims, **params) -> (out, out_dim)`` (batching.py)."""
        self.batch = rule

    def defvjp_variadic(self, rule: Callable) -> None:
        """One reverse rule ``rule(argnum, g, ans, *args, **params)`` for a primitive taking
        any number of arguments (concatenate, einsum)."""
        self.vjps = _Variadic(rule)

    def defjvp_variadic(self, rule: Callable) -> None:
        """One forward rule ``rule(argnum, t, ans, *args, **params)`` for every position."""
        self.jvps = _Variadic(rule)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


def _no_rule(prim: Primitive, argnum: int, reverse: bool) -> NotImplementedError:
    kind, method = ("reverse", "defvjp") if reverse else ("forward", "defjvp")
    return NotImplementedError(f"no {kind} rule for {prim.name!r} (argument {argnum}): define it "
                               f"with {method} (a rule of None: not differentiable)")


class _Variadic:
    """A rule table serving every argument position from one rule that takes the position."""

    __slots__ = ("rule", "_cache")

    def __init__(self, rule: Callable) -> None:
        self.rule = rule
        self._cache: dict = {}

    def __getitem__(self, argnum: int) -> Callable:
        f = self._cache.get(argnum)
        if f is None:
            rule = self.rule

            def f(*args: Any, **params: Any) -> Any:
                return rule(argnum, *args, **params)

            f.__name__ = f"{rule.__name__}[{argnum}]"
            self._cache[argnum] = f
        return f

    def __len__(self) -> int:  # every position has a rule
        return 1 << 30


def strip(x: Any) -> Any:
    """The plain value under any number of tracers; a value of jit's recording trace (an
    opaque tracer) stays what it is: a program value, never a constant."""
    while isinstance(x, Tracer) and not x.opaque:
        x = x.value
    return x


def nondiff(impl: Callable, name: str | None = None) -> Primitive:
    """``impl`` as a non-differentiable helper primitive, not registered (a rule's mask, a
    sign, a random draw): called on traced values it strips them, and jit records the call,
    also when the program values sit in a tuple argument (an index)."""
    prim = Primitive(name or impl.__name__, impl, differentiable=False, register=False)
    prim.helper = True
    return prim


class Tracer:
    """A value being traced by one trace. Subclasses add the trace's bookkeeping.

    Backends attach operators (``__add__``, ``__getitem__``, ``shape``...) to this class with
    ``Tracer.register_operators``; the engine itself only needs ``value`` and ``trace``.
    """

    __slots__ = ("trace",)
    opaque = False  # True for jit's program values: strip stops there

    @property
    def level(self) -> int:
        return self.trace.level

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.trace.level}, value={strip(self)!r})"


class ReverseTracer(Tracer):
    """A traced value on a tape; it is also the tape entry: the primitive that made it, the
    arguments it was applied to (unwrapped at this level) and its traced parents as a flat
    tuple (argument position, tape index, ...). Inputs have no primitive."""

    __slots__ = ("value", "index", "prim", "args", "params", "parents")

    def __init__(self, value: Any, trace: ReverseTrace, index: int, prim: Any = None,
                 args: Any = (), params: Any = None, parents: tuple = ()) -> None:
        self.value = value  # one assignment per line: faster than tuple unpacking, per op
        self.trace = trace
        self.index = index
        self.prim = prim
        self.args = args
        self.params = params
        self.parents = parents


class ForwardTracer(Tracer):
    """A primal value with its tangent. The primal may be pending: (impl, args, params, shape,
    dtype) of a primitive whose output nobody has read yet; reading ``value`` computes it."""

    __slots__ = ("_value", "pending", "tangent")

    def __init__(self, value: Any, trace: ForwardTrace, tangent: Any,
                 pending: tuple | None = None) -> None:
        self._value = value
        self.trace = trace
        self.tangent = tangent
        self.pending = pending

    @property
    def value(self) -> Any:
        if self.pending is not None:
            impl, args, params = self.pending[:3]
            self._value = impl(*args, **params)
            self.pending = None
        return self._value


class ReverseTrace:
    """A tape (Wengert list) of the tracers made under it, in creation order."""

    __slots__ = ("level", "tape")
    records = False

    def __init__(self) -> None:
        self.level = new_level()
        self.tape: list = []

    def new_input(self, value: Any) -> ReverseTracer:
        tracer = ReverseTracer(value, self, len(self.tape))
        self.tape.append(tracer)
        return tracer

    def process(self, prim: Primitive, args: tuple, params: dict) -> ReverseTracer:
        vals = list(args)
        parents: tuple = ()
        nested = False  # does a value of a lower trace remain among the arguments?
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if a.trace is self:
                    parents += (i, a.index)
                    a = vals[i] = a.value
                    if isinstance(a, Tracer):
                        nested = True
                else:
                    nested = True
        ans = prim.lower(vals, params) if nested else prim.impl(*vals, **params)
        tape = self.tape
        tracer = ReverseTracer(ans, self, len(tape), prim, vals, params, parents)
        tape.append(tracer)
        return tracer

    def backward(self, seeds: list[tuple[int, Any]], wanted: list[int]) -> list:
        """Propagate the cotangents ``seeds`` [(tape index, cotangent)] from the end of the
        tape to its start; return the cotangents of the entries ``wanted`` (None: no path)."""
        tape = self.tape
        cts: list = [None] * len(tape)
        for index, g in seeds:
            cts[index] = g if cts[index] is None else cts[index] + g
        keep = set(wanted)
        owned = set()  # entries whose cotangent total is an array this loop made
        add = add_into[0]
        for index in range(len(tape) - 1, -1, -1):
            g = cts[index]
            if g is None:
                continue
            node = tape[index]
            prim = node.prim
            if prim is None:
                continue
            if index not in keep:
                cts[index] = None  # free memory as we go: nothing downstream needs it again
            parents, vals, params, ans = node.parents, node.args, node.params, node.value
            vjps, into = prim.vjps, prim.vjp_into
            joint = None
            if prim.vjp_joint is not None and len(parents) > 2:
                joint = prim.vjp_joint(g, ans, *vals, **params)
            for k in range(0, len(parents), 2):
                parent = parents[k + 1]
                old = cts[parent]
                if joint is not None:
                    c = joint[parents[k]]
                    if c is None:
                        continue
                else:
                    try:
                        rule = vjps[parents[k]]
                    except (IndexError, TypeError):
                        raise _no_rule(prim, parents[k], True) from None
                    if rule is None:
                        continue
                    if into is not None and parents[k] == 0 and (old is None or parent in owned):
                        total = into(old, g, ans, *vals, **params)
                        if total is not NotImplemented:
                            cts[parent] = total
                            owned.add(parent)
                            continue
                    c = rule(g, ans, *vals, **params)
                if old is None:
                    cts[parent] = c
                elif parent in owned:
                    cts[parent] = add(old, c)
                else:
                    cts[parent] = old + c
                    owned.add(parent)
        return [cts[i] for i in wanted]

    def forward(self, seeds: list[tuple[int, Any]], wanted: list[int]) -> list:
        """Push the tangents ``seeds`` [(tape index, tangent)] from the start of the tape to its
        end with the forward rules, reusing the recorded values (nothing is recomputed);
        return the tangents of the entries ``wanted`` (None: no path)."""
        tape = self.tape
        tans: list = [None] * len(tape)
        for index, t in seeds:
            tans[index] = t
        for index, node in enumerate(tape):
            prim = node.prim
            if prim is None:
                continue
            parents, out = node.parents, None
            jvps = prim.jvps
            if prim.jvp_joint is not None and len(parents) > 2:
                joint = [None] * len(node.args)
                for k in range(0, len(parents), 2):
                    joint[parents[k]] = tans[parents[k + 1]]
                if any(t is not None for t in joint):
                    out = prim.jvp_joint(joint, node.value, *node.args, **node.params)
                tans[index] = out
                continue
            for k in range(0, len(parents), 2):
                t = tans[parents[k + 1]]
                if t is None:
                    continue
                try:
                    rule = jvps[parents[k]]
                except (IndexError, TypeError):
                    raise _no_rule(prim, parents[k], False) from None
                if rule is None:
                    continue
                c = rule(t, node.value, *node.args, **node.params)
                out = c if out is None else out + c
            tans[index] = out
        return [tans[i] for i in wanted]


class ForwardTrace:
    """Forward mode: every tracer carries its tangent along (Pearlmutter's R{.} operator)."""

    __slots__ = ("level",)
    records = False

    def __init__(self) -> None:
        self.level = new_level()

    def new_input(self, value: Any, tangent: Any) -> ForwardTracer:
        return ForwardTracer(value, self, tangent)

    def process(self, prim: Primitive, args: tuple, params: dict) -> ForwardTracer:
        vals = list(args)
        tangents = []
        nested = False
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if a.trace is self:
                    tangents.append((i, a.tangent))
                    a = vals[i] = a.value
                    if isinstance(a, Tracer):
                        nested = True
                else:
                    nested = True
        spec = prim.output_spec(*vals, **params) if prim.output_spec and not nested else None
        if spec is not None:
            out = self._tangent(prim, tangents, None, vals, params)
            if out is not None:
                return ForwardTracer(None, self, out, (prim.impl, vals, params) + tuple(spec))
        ans = prim.lower(vals, params) if nested else prim.impl(*vals, **params)
        out = self._tangent(prim, tangents, ans, vals, params)
        if out is None:  # only non-differentiable arguments were traced here
            return ans
        return ForwardTracer(ans, self, out)

    @staticmethod
    def _tangent(prim: Primitive, tangents: list, ans: Any, vals: list, params: dict) -> Any:
        if prim.jvp_joint is not None and len(tangents) > 1:
            joint = [None] * len(vals)
            for i, t in tangents:
                joint[i] = t
            return prim.jvp_joint(joint, ans, *vals, **params)
        out = None
        for i, t in tangents:
            try:
                rule = prim.jvps[i]
            except (IndexError, TypeError):
                raise _no_rule(prim, i, False) from None
            if rule is None:
                continue
            c = rule(t, ans, *vals, **params)
            out = c if out is None else out + c
        return out
