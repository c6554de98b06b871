"""The transforms: grad, value_and_grad, vjp, jvp, linearize, hvp, gauss_newton_vp and their
operator forms, jacobian, hessian.

Arguments and results may be arrays or trees (nested dict/list/tuple) of arrays. Derivatives of
complex-valued code are complex-linear (holomorphic: no conjugation), which is what the complex
step Im f(x + ih)/h measures and what makes ``grad`` of complex input give H v by complex step.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Sequence

import numpy as np

import pearlnet.numpy as pnp

from .core import ForwardTrace, ForwardTracer, ReverseTrace, ReverseTracer, Tracer
from .tree import tree_flatten, tree_leaves_like, tree_map, tree_unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "hvp", "hvp_operator",
           "gauss_newton_vp", "gauss_newton_operator", "jacobian", "hessian"]


def _as_input(x: Any, who: str, what: str) -> Any:
    """A differentiable leaf: a float or complex array (or a tracer of one)."""
    if not isinstance(x, Tracer):
        x = np.asarray(x)
        if x.dtype == object:
            raise TypeError(f"{who}: {what} is not an array (got an object array)")
    kind = _dtype(x).kind
    if kind not in "fc":
        raise TypeError(f"{who}: cannot differentiate with respect to {what} of dtype "
                        f"{_dtype(x)}; pass a float or complex array")
    return x


def _shape(x: Any) -> tuple:
    return x.shape if isinstance(x, Tracer) else np.shape(x)


def _zeros_like(x: Any) -> np.ndarray:
    return np.zeros(_shape(x), dtype=_dtype(x))


def _describe(value: Any) -> str:
    """What a function returned, for messages: None, a tuple of 2, a dict with keys [...]."""
    if value is None:
        return "None"
    if isinstance(value, dict):
        return f"a {type(value).__name__} with keys {list(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _is_array(x: Any) -> bool:
    """An array, a NumPy or Python number, or a tracer of one (not None, a str, an object)."""
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype.kind in "biufc"
    return isinstance(x, numbers.Number)


def _scalar_output(out: Any, who: str) -> None:
    """Refuse an output grad cannot seed: not an array (None from a missing return, a tuple,
    a dict) is a TypeError, an array of another shape a ValueError."""
    if not _is_array(out):
        hint = ""
        if out is None:
            hint = " (does f end without a return?)"
        elif isinstance(out, tuple) and len(out) == 2:
            hint = " (for f returning (value, aux), pass has_aux=True)"
        elif isinstance(out, (dict, list, tuple)):
            hint = "; use vjp or jacobian for tree outputs"
        raise TypeError(f"{who}: f must return a scalar (an array of shape ()), got "
                        f"{_describe(out)}{hint}")
    shape = _shape(out)
    if shape != ():
        raise ValueError(f"{who}: f must return a scalar (shape ()), got shape {shape}; "
                         f"use vjp or jacobian for non-scalar outputs")


def _array_leaves(out: Any, who: str) -> tuple[list, Any]:
    """The leaves and structure of f's output, each an array (or a TypeError naming what came)."""
    leaves, treedef = tree_flatten(out)
    for leaf in leaves:
        if not _is_array(leaf):
            whole = "" if leaf is out else f" in {treedef}"
            raise TypeError(f"{who}: f must return an array or a tree of arrays, got "
                            f"{_describe(leaf)}{whole}")
    return leaves, treedef


def _precision(dt: np.dtype) -> int:
    """Bytes per real number: float32 and complex64 have 4, float64 and complex128 have 8."""
    return dt.itemsize // 2 if dt.kind == "c" else dt.itemsize


def _tangent_leaf(t: Any, p: Any, who: str, i: int) -> Any:
    """The tangent leaf t of the primal leaf p, checked: a float or complex array of p's shape
    and precision. A Python number takes p's precision (it has none of its own); a real
    tangent of a complex primal and a complex tangent of a real one are exact (the rules are
    complex-linear in the tangent), but float32 with float64 would silently promote."""
    if (type(t) is np.ndarray and type(p) is np.ndarray and t.dtype == p.dtype
            and t.shape == p.shape):  # the common case, first: a CG loop calls this often
        return t
    pdt = _dtype(p)
    if isinstance(t, (int, float, complex)) and not isinstance(t, bool):
        t = np.asarray(t, dtype=np.result_type(pdt, np.complex64) if isinstance(t, complex)
                       else pdt)
    t = _as_input(t, who, f"tangent {i}")
    ps, ts = _shape(p), _shape(t)
    if ps != ts:
        raise ValueError(f"{who}: tangent {i} has shape {ts}, its primal {ps}")
    tdt = _dtype(t)
    if tdt != pdt and _precision(tdt) != _precision(pdt):
        raise TypeError(f"{who}: tangent {i} has dtype {tdt}, its primal {pdt}: a tangent must "
                        f"have its primal's precision (cast it with .astype), else the "
                        f"products would silently run in the wider one")
    return t


def _argnums(argnums: int | Sequence[int], nargs: int, who: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise ValueError(f"{who}: argnums {argnums!r} does not fit {nargs} arguments")
    nums = tuple(a % nargs for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"{who}: argnums {argnums!r} names an argument twice")
    return nums


def _trace_reverse(f: Callable, args: tuple, argnums: tuple[int, ...], kwargs: dict, who: str):
    """Run f on inputs traced by a new tape. Returns (trace, output, per-argnum (indices,
    treedef, leaves))."""
    trace = ReverseTrace()
    args = list(args)
    inputs = []
    for a in argnums:
        leaves, treedef = tree_flatten(args[a])
        leaves = [_as_input(leaf, who, f"argument {a}") for leaf in leaves]
        boxed = [trace.new_input(leaf) for leaf in leaves]
        inputs.append(([b.index for b in boxed], treedef, leaves))
        args[a] = tree_unflatten(treedef, boxed)
    out = f(*args, **kwargs)
    return trace, out, inputs


def _forward_value(x: Any, trace: ForwardTrace) -> Any:
    """The value of a forward tracer of ``trace`` (computed now if pending), else x."""
    return x.value if isinstance(x, ForwardTracer) and x.trace is trace else x


def _release(trace: ReverseTrace) -> None:
    """Drop a finished tape: its tracers point back to the trace, so without this the forward
    values live until the cyclic garbage collector runs, and memory is faulted in anew."""
    trace.tape.clear()


def _unbox(trace: ReverseTrace, x: Any) -> Any:
    return x.value if isinstance(x, ReverseTracer) and x.trace is trace else x


def _pull(trace: ReverseTrace, out_leaves: list, ct_leaves: list, inputs: list) -> list:
    """Cotangents of the inputs for output cotangents ``ct_leaves`` (None: zero)."""
    seeds = [(o.index, c) for o, c in zip(out_leaves, ct_leaves)
             if c is not None and isinstance(o, ReverseTracer) and o.trace is trace]
    wanted = [i for indices, _, _ in inputs for i in indices]
    cts = trace.backward(seeds, wanted) if seeds else [None] * len(wanted)
    real = None  # are all outputs and their cotangents real? (asked only when it matters)
    result, k = [], 0
    for indices, treedef, leaves in inputs:
        got = cts[k:k + len(indices)]
        k += len(indices)
        pulled = []
        for c, x in zip(got, leaves):
            if c is None:
                pulled.append(_zeros_like(x))
                continue
            want, have = _dtype(x), _dtype(c)
            if have.kind == "c" and want.kind == "f":
                if real is None:
                    real = all(_dtype(ct).kind != "c" and _dtype(o).kind != "c"
                               for o, ct in zip(out_leaves, ct_leaves) if ct is not None)
                if real:  # a complex part can only come from a step that is not complex-
                    # linear (real, imag): the cotangent of a real input is real, as in JAX
                    c, have = pnp.real(c), np.dtype(np.finfo(have).dtype)
            # c in the dtype of its input x (float32 stays float32 even where f promoted to
            # float64, as in JAX); another complex cotangent of a real input is left alone
            if have != want and want.kind in "fc" and have.kind == want.kind:
                c = pnp.astype(c, want)
            pulled.append(c)
        result.append(tree_unflatten(treedef, pulled))
    return result


def _dtype(a: Any) -> np.dtype:
    # a tracer's dtype without reading its value (a pending forward value stays pending)
    if isinstance(a, Tracer):
        return np.dtype(a.dtype)
    return a.dtype if isinstance(a, np.ndarray) else np.asarray(a).dtype


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable:
    """A function returning (f(*args), gradient of f with respect to args[argnums]).

    f must return a scalar (shape ()); anything else (None from a forgotten ``return``, a
    tuple, a dict) is a TypeError. The gradient has the structure of the argument, a tuple
    of them when argnums is a tuple. Cost: one forward and one backward pass (a small
    multiple of f's own cost). With ``has_aux``, f returns (value, aux) and the result is
    ((value, aux), gradient).
    """
    return _value_and_grad(f, argnums, has_aux, "grad")


def _value_and_grad(f: Callable, argnums: int | Sequence[int], has_aux: bool,
                    who: str) -> Callable:
    def value_and_grad_f(*args: Any, **kwargs: Any):
        nums = _argnums(argnums, len(args), who)
        trace, out, inputs = _trace_reverse(f, args, nums, kwargs, who)
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise ValueError(f"{who}(has_aux=True): f must return a pair (value, aux), got "
                                 f"{_describe(out)}")
            out, aux = out
        _scalar_output(out, who)
        seed = np.ones((), dtype=_dtype(out))
        grads = _pull(trace, [out], [seed], inputs)
        value = _unbox(trace, out)
        if has_aux:
            aux = tree_map(lambda a: _unbox(trace, a), aux)
        g = grads[0] if isinstance(argnums, int) else tuple(grads)
        _release(trace)
        return ((value, aux) if has_aux else value), g

    value_and_grad_f.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function: ``grad(f)(x)`` has x's structure, shape and dtype.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pearlnet.grad(lambda x: pnp.sum(x ** 3))(pnp.array([1.0, 2.0]))
    array([ 3., 12.])
    """
    return _grad(f, argnums, has_aux, "grad")


def _grad(f: Callable, argnums: int | Sequence[int], has_aux: bool, who: str) -> Callable:
    vg = _value_and_grad(f, argnums, has_aux, who)

    def grad_f(*args: Any, **kwargs: Any):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    grad_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_f


def vjp(f: Callable, *args: Any) -> tuple[Any, Callable]:
    """(f(*args), pullback) where ``pullback(cotangent)`` returns a tuple of J_i^T cotangent,
    one per argument. The cotangent has the structure, shapes of f's output (dicts matched by
    key); the pullback may be called many times (each call one backward pass over the
    recorded tape)."""
    return _vjp(f, args, "vjp")


def _vjp(f: Callable, args: tuple, who: str) -> tuple[Any, Callable]:
    trace, out, inputs = _trace_reverse(f, args, tuple(range(len(args))), {}, who)
    out_leaves, out_def = _array_leaves(out, who)
    shapes = [_shape(o) for o in out_leaves]

    def pullback(cotangent: Any) -> tuple:
        ct_leaves = tree_leaves_like(out_def, cotangent, f"{who} pullback", "the cotangent")
        for c, s in zip(ct_leaves, shapes):
            if _shape(c) != s:
                raise ValueError(f"{who} pullback: cotangent of shape {_shape(c)} for "
                                 f"an output of shape {s}")
        return tuple(_pull(trace, out_leaves, ct_leaves, inputs))

    return tree_unflatten(out_def, [_unbox(trace, o) for o in out_leaves]), pullback


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """(f(*primals), J tangents): forward mode, Pearlmutter's R{.} operator.

    ``primals`` and ``tangents`` are tuples of equal length whose entries have equal structure
    (dicts matched by key) and shapes; each tangent has its primal's precision (float32 with
    float64 is a TypeError; real with complex is allowed). Cost: about two to three
    evaluations of f, in one pass.
    """
    return _jvp(f, primals, tangents, primal_out=True)


def _jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any], primal_out: bool,
         who: str = "jvp"):
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"{who}: primals and tangents must be tuples, e.g. jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise ValueError(f"{who}: {len(primals)} primals but {len(tangents)} tangents")
    trace = ForwardTrace()
    args = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        pl, pd = tree_flatten(p)
        tl = tree_leaves_like(pd, t, who, f"tangent {i}")
        boxed = []
        for pleaf, tleaf in zip(pl, tl):
            pleaf = _as_input(pleaf, who, f"primal {i}")
            boxed.append(trace.new_input(pleaf, _tangent_leaf(tleaf, pleaf, who, i)))
        args.append(tree_unflatten(pd, boxed))
    out = f(*args)
    out_leaves, out_def = _array_leaves(out, who)
    values, outs = [], []
    for o in out_leaves:
        if isinstance(o, ForwardTracer) and o.trace is trace:
            values.append(o)
            outs.append(o.tangent)
        else:
            values.append(o)
            outs.append(_zeros_like(o))
    if not primal_out:  # unread pending primals are never computed
        return None, tree_unflatten(out_def, outs)
    return tree_unflatten(out_def, [_forward_value(v, trace) for v in values]), \
        tree_unflatten(out_def, outs)


def hvp(f: Callable, x: Any, v: Any) -> Any:
    """H v for a scalar function f of one argument (array or tree), H the Hessian at x.

    Forward over reverse: jvp of grad, the R{.} operator applied to the backward pass
    (Pearlmutter 1994). Cost: about two gradient evaluations; H is never formed. v has x's
    structure (dicts matched by key), shapes and precision; the result has x's structure.
    """
    return _hvp(f, x, v, "hvp")


def _hvp(f: Callable, x: Any, v: Any, who: str) -> Any:
    # the primal gradient is not returned, so the products computing only it are skipped
    return _jvp(_grad(f, 0, False, who), (x,), (v,), primal_out=False, who=who)[1]


def gauss_newton_vp(net: Callable, loss: Callable, params: Any, v: Any) -> Any:
    """J^T H_L J v: the Gauss-Newton (Schraudolph) matrix of loss(net(params)) times v.

    J = d net(params) / d params, H_L the Hessian of the loss at the outputs. As in the
    autoencoder assignment, section 1.4: J v by one forward (R{.}) pass, H_L applied to it by a
    forward-over-reverse pass through the loss alone, and J^T(.) by one backward pass. The
    forward values are computed once: the R-forward pass runs inside the recorded tape.
    """
    trace, (outputs, jv), inputs = _trace_reverse(
        lambda p: _jvp(net, (p,), (v,), True, "gauss_newton_vp"), (params,), (0,), {},
        "gauss_newton_vp")
    out_leaves, out_def = tree_flatten(outputs)
    jv_leaves = [_unbox(trace, t) for t in tree_flatten(jv)[0]]
    out_values = tree_unflatten(out_def, [_unbox(trace, o) for o in out_leaves])
    hjv = _hvp(loss, out_values, tree_unflatten(out_def, jv_leaves), "gauss_newton_vp")
    hjv_leaves = tree_leaves_like(out_def, hjv, "gauss_newton_vp", "H_L J v")
    result = _pull(trace, out_leaves, hjv_leaves, inputs)[0]
    _release(trace)
    return result


def _recorded_jvp(trace: ReverseTrace, out: Any, inputs: list, who: str) -> Callable:
    """tangents -> J tangents by a forward walk over ``trace``'s tape (the values stay)."""
    out_leaves, out_def = _array_leaves(out, who)
    wanted = [o.index if isinstance(o, ReverseTracer) and o.trace is trace else None
              for o in out_leaves]

    def f_jvp(*tangents: Any) -> Any:
        if len(tangents) != len(inputs):
            raise ValueError(f"{who}: {len(tangents)} tangents for {len(inputs)} primals")
        seeds = []
        for i, (t, (indices, treedef, leaves)) in enumerate(zip(tangents, inputs)):
            t_leaves = tree_leaves_like(treedef, t, who, f"tangent {i}")
            for index, tl, pl in zip(indices, t_leaves, leaves):
                seeds.append((index, _tangent_leaf(tl, pl, who, i)))
        got = trace.forward(seeds, [w for w in wanted if w is not None])
        it = iter(got)
        result = []
        for w, o in zip(wanted, out_leaves):
            t = next(it) if w is not None else None
            result.append(_zeros_like(_unbox(trace, o)) if t is None else t)
        return tree_unflatten(out_def, result)

    return f_jvp


def linearize(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """(f(*primals), f_jvp) where ``f_jvp(*tangents)`` = J tangents at the primals.

    f is evaluated once, on a recorded tape; each call of f_jvp is one forward-mode pass over
    that tape with the stored values, so repeated products (conjugate gradient) never recompute
    f (JAX's ``linearize``). Cost per call: the tangent half of a ``jvp``.
    """
    return _linearize(f, primals, "linearize")


def _linearize(f: Callable, primals: tuple, who: str) -> tuple[Any, Callable]:
    trace, out, inputs = _trace_reverse(f, primals, tuple(range(len(primals))), {}, who)
    out_leaves, out_def = _array_leaves(out, who)
    out_values = tree_unflatten(out_def, [_unbox(trace, o) for o in out_leaves])
    return out_values, _recorded_jvp(trace, out, inputs, who)


def hvp_operator(f: Callable, x: Any) -> Callable:
    """v -> H v at x for a scalar f, reusing one recorded evaluation of grad f.

    ``linearize(grad(f), x)``: the forward and backward passes run once; every product is the
    R-forward and R-backward passes alone (Pearlmutter 1994), the same numbers as ``hvp``.
    """
    return _linearize(_grad(f, 0, False, "hvp_operator"), (x,), "hvp_operator")[1]


def gauss_newton_operator(net: Callable, loss: Callable, params: Any) -> Callable:
    """v -> J^T H_L J v at ``params`` (see ``gauss_newton_vp``), reusing one recorded forward
    pass of net: each product is an R-forward walk over the tape, H_L on the outputs and one
    backward walk (the assignment's section 1.4 without recomputing the forward pass)."""
    trace, outputs, inputs = _trace_reverse(net, (params,), (0,), {}, "gauss_newton_operator")
    out_leaves, out_def = _array_leaves(outputs, "gauss_newton_operator")
    out_values = tree_unflatten(out_def, [_unbox(trace, o) for o in out_leaves])
    net_jvp = _recorded_jvp(trace, outputs, inputs, "gauss_newton_operator")

    def product(v: Any) -> Any:
        jv = net_jvp(v)
        hjv = _hvp(loss, out_values, jv, "gauss_newton_operator")
        hjv_leaves = tree_leaves_like(out_def, hjv, "gauss_newton_operator", "H_L J v")
        return _pull(trace, out_leaves, hjv_leaves, inputs)[0]

    return product


def _single_array(x: Any, who: str) -> Any:
    if isinstance(x, (dict, list, tuple)):
        raise TypeError(f"{who}: takes one array argument, got a {type(x).__name__}; ravel a "
                        f"tree first (pearlnet.ravel)")
    return _as_input(x, who, "the argument")


def jacobian(f: Callable) -> Callable:
    """The dense Jacobian: ``jacobian(f)(x)`` has shape f(x).shape + x.shape (for R^n -> R^m,
    (m, n)); for f returning a tree, a tree of that structure with one such array per output
    leaf (as JAX's jacrev). One backward pass per output entry; for small problems and tests."""

    def jacobian_f(x: Any):
        x = _single_array(x, "jacobian")
        out, pullback = _vjp(f, (x,), "jacobian")
        leaves, out_def = tree_flatten(out)
        xshape = _shape(x)
        zeros = [np.zeros(_shape(o), _dtype(o)) for o in leaves]
        blocks = []
        for k, zero in enumerate(zeros):
            oshape, dtype = zero.shape, zero.dtype
            rows = []
            for i in range(zero.size):
                e = np.zeros(zero.size, dtype=dtype)
                e[i] = 1
                cts = list(zeros)
                cts[k] = e.reshape(oshape)
                rows.append(pnp.reshape(pullback(tree_unflatten(out_def, cts))[0], (-1,)))
            blocks.append(pnp.reshape(pnp.stack(rows), oshape + xshape) if rows
                          else np.zeros(oshape + xshape, dtype=dtype))
        return tree_unflatten(out_def, blocks)

    return jacobian_f


def hessian(f: Callable) -> Callable:
    """The dense Hessian of a scalar function: shape x.shape + x.shape. Column j is H e_j by
    forward over reverse; n Hessian-vector products for n inputs."""

    def hessian_f(x: Any):
        x = _single_array(x, "hessian")
        xshape = _shape(x)
        n = int(np.prod(xshape, dtype=np.int64))
        dtype = _dtype(x)
        cols = []
        for j in range(n):
            e = np.zeros(n, dtype=dtype)
            e[j] = 1
            cols.append(pnp.reshape(hvp(f, x, e.reshape(xshape)), (-1,)))
        if not cols:
            return np.zeros(xshape + xshape, dtype=dtype)
        return pnp.reshape(pnp.stack(cols, axis=1), xshape + xshape)

    return hessian_f


def _compile_every_transform() -> None:
    """PEARLNET_JIT_TRANSFORMS=1 (the test suite's jit run): grad, value_and_grad, jvp, hvp and
    gauss_newton_vp compile what they compute and return the replayed program's result (with
    PEARLNET_JIT_CHECK=1, checked against the recording)."""
    from .compiled import jit

    global _value_and_grad, _jvp, _hvp, gauss_newton_vp
    vg, jv, hv, gn = _value_and_grad, _jvp, _hvp, gauss_newton_vp

    def value_and_grad_jit(f, argnums, has_aux, who):
        return jit(vg(f, argnums, has_aux, who))

    def jvp_jit(f, primals, tangents, primal_out, who="jvp"):
        return jit(lambda p, t: jv(f, p, t, primal_out, who))(primals, tangents)

    def hvp_jit(f, x, v, who):
        return jit(lambda x, v: hv(f, x, v, who))(x, v)

    def gauss_newton_vp_jit(net, loss, params, v):
        return jit(lambda p, v: gn(net, loss, p, v))(params, v)

    _value_and_grad, _jvp, _hvp, gauss_newton_vp = (value_and_grad_jit, jvp_jit, hvp_jit,
                                                    gauss_newton_vp_jit)


if os.environ.get("PEARLNET_JIT_TRANSFORMS", "") not in ("", "0"):
    _compile_every_transform()
