"""The optimizer base class: learning rates and schedules, decoupled weight decay, argument and
tree checks, and the ``get(name)`` lookup.

An optimizer is a pure map ``(params, grads, state) -> (params, state)``. ``state`` is a dict:
``state["step"]`` (a Python int, the number of updates done) and one parameter-shaped tree per
per-parameter quantity the rule keeps (Adam's ``"m"`` and ``"v"``), so it can be flattened into
an ``.npz`` file and handed back later. Nothing is modified in place. grads, state slots and a
decay_mask tree are matched to params by key (dicts in any order, as Python compares them); the
results have params' structure and key order.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

from pearlnet.autodiff.tree import tree_flatten, tree_leaves_like, tree_unflatten

__all__ = ["Optimizer", "get", "LearningRate"]

LearningRate = float | Callable[[int], float]
"""A learning rate: a float, or a schedule ``step -> float`` with step 0 for the first update."""

_REGISTRY: dict[str, type[Optimizer]] = {}


def check_number(owner: str, name: str, value: Any, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """``value`` as a Python float, or a ValueError naming ``owner``, the range and the value.

    A Python float (not a NumPy scalar) keeps float32 arithmetic float32.
    """
    lo = "(" if low_open or low is None else "["
    hi = ")" if high_open or high is None else "]"
    expected = f"a number in {lo}{'-inf' if low is None else low}, " \
               f"{'inf' if high is None else high}{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    x = float(value)
    bad = (not math.isfinite(x)
           or (low is not None and (x <= low if low_open else x < low))
           or (high is not None and (x >= high if high_open else x > high)))
    if bad:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return x


def check_lr(owner: str, lr: Any) -> LearningRate:
    """A learning rate as given: a callable schedule, or a float >= 0."""
    if callable(lr):
        return lr
    return check_number(owner, "lr", lr, low=0.0)


def leaf_paths(tree: Any) -> list[tuple]:
    """The key path of every leaf, in ``tree_flatten`` order: ``{"a": [x, y]}`` gives
    ``[("a", 0), ("a", 1)]``."""
    paths: list[tuple] = []

    def walk(node, path):
        if isinstance(node, dict):
            for k in node:
                walk(node[k], path + (k,))
        elif isinstance(node, (list, tuple)):
            for i, n in enumerate(node):
                walk(n, path + (i,))
        else:
            paths.append(path)

    walk(tree, ())
    return paths


class _LazyPaths:
    """``leaf_paths(tree)``, computed on first use: the hot path of an update needs none."""

    def __init__(self, tree: Any) -> None:
        self.tree, self._paths = tree, None

    def _get(self) -> list[tuple]:
        if self._paths is None:
            self._paths = leaf_paths(self.tree)
        return self._paths

    def __getitem__(self, i: int) -> tuple:
        return self._get()[i]

    def __iter__(self):
        return iter(self._get())


def _path_str(path: tuple) -> str:
    return "/".join(str(k) for k in path) or "<root>"


def _default_decay_mask(path: tuple, leaf: np.ndarray) -> bool:
    return leaf.ndim >= 2


class Optimizer:
    """Base class of the first-order optimizers.

    Subclasses set ``key`` (the ``get`` name), ``slots`` (names of the parameter-shaped state
    trees, zero-initialised) and implement ``_coefficients(lr, t)`` (the step's numbers, Python
    floats) and, with array operations alone, ``_slot_math(g, slots, coefficients)`` (the new
    slots) and ``_step_math(p, g, new_slots, coefficients)`` (delta); or
    ``_leaf_math(p, g, slots, coefficients)`` returning ``(delta, new_slots)`` at once; or
    ``_leaf(p, g, slots, lr, t, ctx)`` for a rule that needs more. The new parameter is
    ``p - delta``, then decoupled weight decay. (Split in two, the rule lets Model.fit's
    compiled step hold back a non-finite step's slots before delta reads them, in place.)
    ``compiled_update`` runs the leaf math as one jit program (pearlnet.jit), the
    coefficients its inputs, with the same numbers as ``update``: a Python float in an
    operation with a float32 array is rounded to float32 first, as the program's input is.

    Decoupled weight decay (Loshchilov & Hutter's AdamW, for every optimizer): with
    ``weight_decay = wd > 0`` each decayed leaf also moves by ``-lr * wd * P`` (P the parameter
    before this update), beside the rule's own step and not through its gradient statistics:
    ``P <- P - delta - lr * wd * P``. ``decay_mask`` picks the decayed leaves: ``None`` (the
    default) decays every leaf with ``ndim >= 2`` (weight matrices and kernels, not biases or
    scales); ``True``/``False`` decays all/none; a callable ``(path, leaf) -> bool`` (path a
    tuple of dict keys and list indices, e.g. ``("dense1", "W")``) or a tree of bools with the
    parameters' structure decides per leaf.

    The learning rate ``lr`` is a public attribute; assign a float or a schedule (a callable
    step -> float, step 0 for the first update) between updates. ``current_lr(step)`` is the
    value used at that step.
    """

    key: str | None = None
    slots: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("key"):
            _REGISTRY[cls.key] = cls

    def __init__(self, lr: LearningRate, *, weight_decay: float = 0.0,
                 decay_mask: Any = None) -> None:
        self.lr = lr
        self.weight_decay = check_number(self.name, "weight_decay", weight_decay, low=0.0)
        if not (decay_mask is None or isinstance(decay_mask, (bool, dict, list, tuple))
                or callable(decay_mask)):
            raise ValueError(f"{self.name}: decay_mask must be None, a bool, a callable "
                             f"(path, leaf) -> bool or a tree of bools, got {decay_mask!r}")
        self.decay_mask = decay_mask

    # ---- learning rate ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def lr(self) -> LearningRate:
        return self._lr

    @lr.setter
    def lr(self, value: LearningRate) -> None:
        self._lr = check_lr(self.name, value)

    def current_lr(self, step: int) -> float:
        """The learning rate of the update with index ``step`` (0 for the first update)."""
        if not callable(self._lr):
            return self._lr
        value = self._lr(int(step))
        return check_number(self.name, f"the learning rate from {self._lr!r} at step {step}",
                            value, low=0.0)

    # ---- the pure interface ----------------------------------------------------------------
    def init(self, params: Any) -> dict:
        """The state before the first update: step 0 and zero slots shaped like ``params``."""
        leaves, treedef = self._leaves(params, "params", "init")
        state: dict = {"step": 0}
        for s in self.slots:
            state[s] = tree_unflatten(treedef, [np.zeros_like(p) for p in leaves])
        state.update(self._init_extra())
        return state

    def update(self, params: Any, grads: Any, state: dict,
               compiled: bool = False) -> tuple[Any, dict]:
        """One step: returns (new params, new state); the inputs are left untouched."""
        who = f"{self.name}.update"
        ps, treedef = self._leaves(params, "params", "update")
        gs = tree_leaves_like(treedef, grads, who, "grads")  # dicts matched by key
        paths = _LazyPaths(params)  # leaf paths only for messages and decay masks
        gs = [self._grad_leaf(p, g, paths, i, who) for i, (p, g) in enumerate(zip(ps, gs))]
        t = self._step_of(state, who)
        slot_leaves = [self._slot_leaves(state, s, treedef, ps, paths, who) for s in self.slots]
        mask = self._mask(params, ps, paths, treedef)
        lr = self.current_lr(t)
        ctx = self._begin(state, t)
        if compiled and ctx is None and self._jittable():
            coefficients = tuple(np.float64(c) for c in (*self._coefficients(lr, t),
                                                           lr * self.weight_decay))
            program = self.__dict__.get("_program")
            if program is None:
                from pearlnet.autodiff import jit
                program = self.__dict__["_program"] = jit(self._apply, static_argnums=4)
            new_ps, slot_trees = program(ps, gs, slot_leaves, coefficients, tuple(mask))
        else:
            new_ps, slot_trees = self._apply(ps, gs, slot_leaves, lr, tuple(mask), t, ctx)
        new_state = dict(state)
        new_state["step"] = t + 1
        for s, acc in zip(self.slots, slot_trees):  # arrays, 0-d ones too (not NumPy scalars)
            new_state[s] = tree_unflatten(treedef, [np.asarray(a, p.dtype)
                                                    for a, p in zip(acc, ps)])
        return tree_unflatten(treedef, [np.asarray(a, p.dtype)
                                        for a, p in zip(new_ps, ps)]), new_state

    def step_inputs(self, params: Any, state: dict) -> tuple | None:
        """For a program that computes the gradients and applies this rule in one (Model.fit's
        compiled step): (slot leaves, coefficients, mask) of this update, the arguments of
        ``_apply`` after the leaves and gradients; None where the rule cannot be compiled."""
        who = f"{self.name}.update"
        t = self._step_of(state, who)
        if not self._jittable() or self._begin(state, t) is not None:
            return None
        ps, treedef = self._leaves(params, "params", "update")
        paths = _LazyPaths(params)
        slot_leaves = [self._slot_leaves(state, s, treedef, ps, paths, who) for s in self.slots]
        mask = self._mask(params, ps, paths, treedef)
        lr = self.current_lr(t)
        coefficients = tuple(np.float64(c) for c in (*self._coefficients(lr, t),
                                                       lr * self.weight_decay))
        return slot_leaves, coefficients, tuple(mask)

    def step_state(self, state: dict, params: Any, slot_leaves: list) -> dict:
        """The state after an update whose new slot leaves a compiled step computed."""
        ps, treedef = tree_flatten(params)
        new_state = dict(state)
        new_state["step"] = self._step_of(state, f"{self.name}.update") + 1
        for s, acc in zip(self.slots, slot_leaves):
            new_state[s] = tree_unflatten(treedef, [np.asarray(a, np.asarray(p).dtype)
                                                    for a, p in zip(acc, ps)])
        return new_state

    def compiled_update(self, params: Any, grads: Any, state: dict) -> tuple[Any, dict]:
        """``update`` with the leaf arithmetic as one compiled program (pearlnet.jit: fused,
        in place where a value dies), same numbers; ``update`` itself where the rule cannot
        be compiled (a rule of its own ``_leaf``, NoisySGD's draws)."""
        return self.update(params, grads, state, compiled=True)

    def _jittable(self) -> bool:
        return type(self)._leaf is Optimizer._leaf

    def _apply(self, ps: list, gs: list, slot_leaves: list, coefficients: Any, mask: tuple,
               t: int = 0, ctx: Any = None, guard: Any = None) -> tuple[list, list]:
        """The new leaves and slot leaves. ``coefficients`` is lr (the plain path) or, compiled,
        the tuple of ``_coefficients(lr, t)`` and lr * weight_decay as float64 scalars.

        ``guard = (ok, fallback leaves)``, compiled only: where ``ok`` (a 0-d bool) is false,
        the slots come back as they were and the parameters as the fallback leaves; where
        true, the numbers are those without a guard (a selection, bit for bit). Model.fit's
        step passes ``ok = isfinite(loss)`` when a TerminateOnNaN may stop it, so a
        non-finite step is never applied although the step writes its results in place."""
        import pearlnet.numpy as pnp

        new_ps: list = []
        new_slots: list[list] = [[] for _ in self.slots]
        wd = self.weight_decay
        split = type(self)._leaf_math is Optimizer._leaf_math
        for i, (p, g) in enumerate(zip(ps, gs)):
            slots = tuple(sl[i] for sl in slot_leaves)
            if isinstance(coefficients, tuple):  # compiled: in the leaf's dtype, as Python
                c = tuple(pnp.astype(x, p.dtype) for x in coefficients)  # floats would be
                if guard is not None and split:
                    # held back before delta reads them: each slot's update and selection
                    # is one fused pass over its own memory
                    slot_vals = tuple(pnp.where(guard[0], new, old) for new, old in
                                      zip(self._slot_math(g, slots, c[:-1]), slots))
                    delta = self._step_math(p, g, slot_vals, c[:-1])
                else:
                    delta, slot_vals = self._leaf_math(p, g, slots, c[:-1])
                    if guard is not None:
                        slot_vals = tuple(pnp.where(guard[0], new, old)
                                          for new, old in zip(slot_vals, slots))
                decay = c[-1]
            else:
                delta, slot_vals = self._leaf(p, g, slots, coefficients, t, ctx)
                decay = coefficients * wd
            new = p - delta
            if wd and mask[i]:
                new = new - decay * p
            new = pnp.astype(new, p.dtype)
            new_ps.append(new if guard is None else pnp.where(guard[0], new, guard[1][i]))
            for acc, v in zip(new_slots, slot_vals):
                acc.append(pnp.astype(v, p.dtype))
        return new_ps, new_slots

    # ---- hooks for subclasses --------------------------------------------------------------
    def _init_extra(self) -> dict:
        """State entries besides step and slots (NoisySGD's seed)."""
        return {}

    def _begin(self, state: dict, t: int) -> Any:
        """Per-update context handed to every ``_leaf`` call (NoisySGD's generator)."""
        return None

    def _coefficients(self, lr: float, t: int) -> tuple[float, ...]:
        """The numbers of update t that ``_leaf_math`` uses (Python floats): lr by default."""
        return (lr,)

    def _leaf_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> tuple[Any, tuple]:
        """(delta, new slots) with array operations on arrays or traced values: by default
        ``_slot_math``, then ``_step_math`` on the new slots."""
        new_slots = self._slot_math(g, slots, c)
        return self._step_math(p, g, new_slots, c), new_slots

    def _slot_math(self, g: Any, slots: tuple, c: tuple) -> tuple:
        """The new slots (a tuple in ``self.slots``' order), with array operations."""
        raise NotImplementedError(f"{self.name}: implement _slot_math and _step_math (or "
                                  f"_leaf_math, or _leaf)")

    def _step_math(self, p: Any, g: Any, slots: tuple, c: tuple) -> Any:
        """delta (the parameter moves by -delta) from the new slots, with array operations."""
        raise NotImplementedError(f"{self.name}: implement _slot_math and _step_math (or "
                                  f"_leaf_math, or _leaf)")

    def _leaf(self, p: np.ndarray, g: np.ndarray, slots: tuple, lr: float, t: int,
              ctx: Any) -> tuple[np.ndarray, tuple]:
        return self._leaf_math(p, g, slots, self._coefficients(lr, t))

    def _hparams(self) -> dict:
        return {}

    def get_config(self) -> dict:
        """The constructor arguments: ``type(opt)(**opt.get_config())`` is an equal optimizer
        (Keras's name). A schedule or a callable decay_mask is returned as the object itself;
        ``Model.save`` stores a library schedule by its config and a function of one's own by
        its name, which ``load_model(..., custom_objects=...)`` maps back."""
        return {"lr": self._lr, **self._hparams(), "weight_decay": self.weight_decay,
                "decay_mask": self.decay_mask}

    def __repr__(self) -> str:
        items = {"lr": self._lr, **self._hparams()}
        if self.weight_decay:
            items["weight_decay"] = self.weight_decay
            if self.decay_mask is not None:
                items["decay_mask"] = self.decay_mask
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in items.items())})"

    # ---- checks ----------------------------------------------------------------------------
    def _leaves(self, params: Any, what: str, method: str) -> tuple[list, Any]:
        leaves, treedef = tree_flatten(params)
        out = []
        for i, leaf in enumerate(leaves):
            a = np.asarray(leaf)
            if a.dtype.kind != "f":
                path = leaf_paths(params)[i]
                raise ValueError(f"{self.name}.{method}: {what} leaf {_path_str(path)} must be "
                                 f"a real floating-point array, got dtype {a.dtype}")
            out.append(a)
        return out, treedef

    def _grad_leaf(self, p: np.ndarray, g: Any, paths: Any, i: int, who: str) -> np.ndarray:
        g = np.asarray(g)
        if g.shape != p.shape:
            raise ValueError(f"{who}: grads leaf {_path_str(paths[i])} must have the shape of "
                             f"its parameter, {p.shape}, got {g.shape}")
        if g.dtype.kind not in "fiu":
            raise ValueError(f"{who}: grads leaf {_path_str(paths[i])} must be real "
                             f"(the parameter is {p.dtype}), got dtype {g.dtype}")
        # the step is computed in the parameter's dtype: float32 weights stay float32
        return g if g.dtype == p.dtype else g.astype(p.dtype)

    def _step_of(self, state: Any, who: str) -> int:
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"{who}: state must be the dict returned by {self.name}.init "
                             f"(with a 'step' count), got {type(state).__name__}")
        step = np.asarray(state["step"])  # an int, or a 0-d array read back from an .npz
        if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
            raise ValueError(f"{who}: state['step'] must be an integer >= 0, "
                             f"got {state['step']!r}")
        return int(step)

    def _slot_leaves(self, state: dict, s: str, treedef: Any, ps: list, paths: list,
                     who: str) -> list:
        if s not in state:
            raise ValueError(f"{who}: state has no '{s}' entry; expected the dict returned by "
                             f"{self.name}.init, got keys {sorted(state)}")
        leaves = tree_leaves_like(treedef, state[s], who, f"state['{s}']")
        out = []
        for i, (a, p) in enumerate(zip(leaves, ps)):
            a = np.asarray(a)
            if a.shape != p.shape:
                raise ValueError(f"{who}: state['{s}'] leaf {_path_str(paths[i])} must have shape "
                                 f"{p.shape}, got {a.shape}")
            out.append(a)
        return out

    def _mask(self, params: Any, ps: list, paths: list, treedef: Any) -> list[bool]:
        m = self.decay_mask
        if not self.weight_decay:
            return [False] * len(ps)
        if m is None:
            return [_default_decay_mask(path, p) for path, p in zip(paths, ps)]
        if isinstance(m, bool):
            return [m] * len(ps)
        if callable(m):
            return [bool(m(path, p)) for path, p in zip(paths, ps)]
        try:
            leaves = tree_leaves_like(treedef, m, f"{self.name}.update", "decay_mask")
        except ValueError as e:
            raise ValueError(f"{self.name}.update: decay_mask must be a tree of bools with the "
                             f"structure of params, {treedef}, got {m!r}") from e
        if not all(isinstance(b, (bool, np.bool_)) for b in leaves):
            raise ValueError(f"{self.name}.update: decay_mask must be a tree of bools with the "
                             f"structure of params, {treedef}, got {m!r}")
        return [bool(b) for b in leaves]


def get(identifier: str | Any) -> Any:
    """An optimizer by name, default-constructed, or the optimizer passed in unchanged.

    Names (case-insensitive): ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
    ``"rmsprop"``, ``"adam"``, ``"noisy_sgd"``, and ``"hf"`` (Hessian-free). Anything with ``init``
    and ``update`` (or ``fit_step``) methods is returned as it is.

    >>> get("adam")
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
    """
    import pearlnet.optim  # noqa: F401  (registers every optimizer)

    if isinstance(identifier, str):
        name = identifier.strip().lower()
        if name in ("hf", "hessian_free", "hessianfree"):
            from .hessian_free import HessianFree
            return HessianFree()
        cls = _REGISTRY.get(name)
        if cls is None:
            raise ValueError(f"optim.get: unknown optimizer {identifier!r}; known: "
                             f"{', '.join(sorted(_REGISTRY))}, hf")
        return cls()
    if callable(getattr(identifier, "init", None)) and (
            callable(getattr(identifier, "update", None))
            or callable(getattr(identifier, "fit_step", None))):  # HessianFree steps itself
        return identifier
    raise ValueError(f"optim.get: expected an optimizer name ({', '.join(sorted(_REGISTRY))}) "
                     f"or an optimizer, got {identifier!r}")
