"""The autoencoder of the assignment (seed 000, sections 1.1-1.4 and 3.4, module autoencoder.py).

F(theta) = (1/n) sum_i 0.5 ||x_i - z(x_i)||^2 over the objects (columns) of a batch (formula 1).
Its gradient is the backward pass (3) fed dF/dz = (z - x)/n; H p is the R_p backward pass fed
R_p{dF/dz} = R_p{z}/n (section 1.3); the Gauss-Newton product (1/n) sum_i J_i^T J_i p is the plain
backward pass (3) of G(theta) = (1/n) sum_i z(x_i)^T q_i with q_i = J_i p = R_p{z_i}, i.e.
the backward pass fed R_p{z}/n (section 1.4), which drops the terms of H with second derivatives
of z. The optimizers are ``pearlnet.optim``'s.
"""

from __future__ import annotations

import numbers
import time
from typing import Any, Callable

import numpy as np

from pearlnet import optim

from .ffnet import FFNet
from .layers import BaseLayer, as_matrix, frozen

__all__ = ["Autoencoder"]


class Autoencoder:
    """``Autoencoder(layers)``: an ``FFNet`` (the attribute ``net``) whose output size equals its
    input size, trained to reconstruct its inputs (num_features x num_objects).

    Regularisation in the ``run_*`` methods: the optimised functional is
    F(theta) + l2_coef * ||theta||^2 over the whole parameter vector (every W-bar, biases
    included), with gradient grad F + 2 * l2_coef * theta (the L2 penalty of ``pearlnet.nn``,
    without a factor 1/2).

    >>> import numpy as np
    >>> from pearlnet.compat.msu.activations import LinearActivationFunction
    >>> from pearlnet.compat.msu.layers import FCLayer
    >>> ae = Autoencoder([FCLayer((3, 1), LinearActivationFunction()),
    ...                   FCLayer((1, 3), LinearActivationFunction())])
    >>> loss, grad = ae.compute_loss(np.ones((3, 4)))
    >>> grad.shape, ae.compute_hessvec(np.ones(6)).shape
    ((6,), (6,))
    """

    def __init__(self, layers: list[BaseLayer]) -> None:
        self.net = FFNet(layers)
        if self.net.num_inputs != self.net.num_outputs:
            raise ValueError(f"Autoencoder: the net must output as many features as it takes, "
                             f"got {self.net.num_inputs} inputs and {self.net.num_outputs} "
                             f"outputs")
        self._inputs: np.ndarray | None = None
        self._derivs: np.ndarray | None = None
        self._stamp: tuple | None = None

    # ---- the objective and its derivatives ---------------------------------------------------
    def _evaluate(self, x: np.ndarray) -> tuple[Any, np.ndarray]:
        """(F, grad F) on x by one forward and one backward pass; keeps what the R_p passes
        need."""
        n = x.shape[1]
        r = self.net.compute_outputs(x) - x
        loss = 0.5 * np.sum(r * r) / n  # r * r, not |r|^2: analytic for the complex step
        derivs = frozen(r / n, owned=True)
        grad = self.net.compute_loss_grad(derivs)
        self._inputs, self._derivs = x, derivs
        self._stamp = self.net._stamp()
        return (complex(loss) if np.iscomplexobj(loss) else float(loss)), grad

    def compute_loss(self, inputs: np.ndarray) -> tuple[float, np.ndarray]:
        """(F, gradient of F as a vector of length net.params_number) on the batch ``inputs``,
        num_features x num_objects. A read-only copy of the batch is kept for compute_hessvec
        and compute_gaussnewtonvec (no copy when ``inputs`` is read-only already), so changing
        ``inputs`` in place afterwards does not change their batch."""
        x = as_matrix(inputs, self.net.num_inputs, "Autoencoder.compute_loss", "inputs")
        x = frozen(x, owned=x is not inputs)
        if x.shape[1] == 0:
            raise ValueError("Autoencoder.compute_loss: inputs must hold at least one object "
                             "(column), got 0")
        return self._evaluate(x)

    def _sync(self, who: str) -> int:
        """Make the net's recorded passes those of the last compute_loss batch at the current
        weights (the net may have run on other data, or new weights, since); return n."""
        if self._inputs is None:
            raise RuntimeError(f"Autoencoder.{who}: call compute_loss first")
        if self.net._stamp() != self._stamp:
            self._evaluate(self._inputs)
        return self._inputs.shape[1]

    def compute_hessvec(self, p: np.ndarray) -> np.ndarray:
        """H p, H the Hessian of F at the current weights on the last compute_loss batch: the
        R_p forward pass, then the R_p backward pass fed R_p{(z - x)/n} = R_p{z}/n (section 1.3).
        """
        n = self._sync("compute_hessvec")
        net = self.net
        net.set_direction(p)
        if net._last_derivs is not self._derivs:  # a Gauss-Newton product ran backward since
            net.compute_loss_grad(self._derivs)
        rz = net.compute_Rp_outputs()
        return net.compute_loss_Rp_grad(rz / n)

    def compute_gaussnewtonvec(self, p: np.ndarray) -> np.ndarray:
        """(1/n) sum_i J_i^T J_i p, the Gauss-Newton product (section 1.4): J p = R_p{z} by the
        R_p forward pass, then J^T (R_p{z}/n) by the backward pass (3)."""
        n = self._sync("compute_gaussnewtonvec")
        self.net.set_direction(p)
        rz = self.net.compute_Rp_outputs()
        return self.net.compute_loss_grad(frozen(rz / n, owned=True))

    # ---- stochastic optimisation -------------------------------------------------------------
    def run_sgd(self, inputs: np.ndarray, step_size: float = 0.01, momentum: float = 0.9,
                num_epoch: int = 200, minibatch_size: int = 100, l2_coef: float = 1e-5,
                test_inputs: np.ndarray | None = None, display: bool = False,
                seed: Any = 0) -> dict[str, list[float]]:
        """Minibatch SGD with momentum (Hinton's lecture 6, the seed's [6]; ``pearlnet.optim``'s
        Momentum): I <- momentum * I + step_size * g, theta <- theta - I; momentum = 0 is plain
        SGD, theta <- theta - step_size * g. See ``_run`` for the arguments and the result."""
        mom = _number("Autoencoder.run_sgd", "momentum", momentum, 0.0, 1.0, high_open=True)
        if mom == 0.0:
            return self._run("run_sgd", lambda lr: optim.SGD(lr), inputs, step_size, num_epoch,
                             minibatch_size, l2_coef, test_inputs, display, seed)
        return self._run("run_sgd", lambda lr: optim.Momentum(lr, beta=mom), inputs, step_size,
                         num_epoch, minibatch_size, l2_coef, test_inputs, display, seed)

    def run_rmsprop(self, inputs: np.ndarray, step_size: float = 0.01, num_epoch: int = 200,
                    minibatch_size: int = 100, l2_coef: float = 1e-5,
                    test_inputs: np.ndarray | None = None, display: bool = False,
                    seed: Any = 0) -> dict[str, list[float]]:
        """Minibatch RMSProp (the seed's [6]; ``pearlnet.optim.RMSProp`` with its defaults
        gamma = 0.9, eps = 1e-10): C <- 0.9 C + 0.1 g^2, theta <- theta - step_size g /
        sqrt(C + eps). See ``_run``."""
        return self._run("run_rmsprop", lambda lr: optim.RMSProp(lr), inputs, step_size,
                         num_epoch, minibatch_size, l2_coef, test_inputs, display, seed)

    def run_adam(self, inputs: np.ndarray, step_size: float = 0.01, num_epoch: int = 200,
                 minibatch_size: int = 100, l2_coef: float = 1e-5,
                 test_inputs: np.ndarray | None = None, display: bool = False,
                 seed: Any = 0) -> dict[str, list[float]]:
        """Minibatch Adam (Kingma & Ba, the seed's [7]; ``pearlnet.optim.Adam`` with beta1 = 0.9,
        beta2 = 0.999, eps = 1e-8, bias-corrected). See ``_run``."""
        return self._run("run_adam", lambda lr: optim.Adam(lr), inputs, step_size, num_epoch,
                         minibatch_size, l2_coef, test_inputs, display, seed)

    def _objective(self, x: np.ndarray, l2: float) -> tuple[float, float]:
        """(F + l2 ||theta||^2, the norm of its gradient) on x."""
        theta = self.net.get_weights()
        loss, grad = self._evaluate(x)
        if l2:
            loss += l2 * float(theta @ theta)
            grad = grad + (2.0 * l2) * theta
        return float(loss), float(np.linalg.norm(grad))

    def _run(self, who: str, make: Callable[[float], Any], inputs: np.ndarray, step_size: float,
             num_epoch: int, minibatch_size: int, l2_coef: float, test_inputs: Any,
             display: bool, seed: Any) -> dict[str, list[float]]:
        """Train from the current weights for ``num_epoch`` passes over the columns of
        ``inputs`` (num_features x num_objects), shuffled each epoch by a Generator from ``seed``,
        in minibatches of ``minibatch_size`` (the last one may be smaller), one optimizer step
        on grad F + 2 * l2_coef * theta per minibatch. The net keeps the final weights.

        Returns {"train_loss", "train_grad", "test_loss", "test_grad"}: lists with one entry per
        epoch, the optimised functional F + l2_coef ||theta||^2 and its gradient's norm on the
        whole training (test) set after the epoch; the test lists stay empty without
        ``test_inputs``. ``display=True`` prints one line per epoch: losses, gradient norms and
        the epoch's training time. Afterwards, compute_hessvec refers to the training set.
        """
        who = f"Autoencoder.{who}"
        x = self._real_matrix(inputs, who, "inputs")
        xt = None if test_inputs is None else self._real_matrix(test_inputs, who, "test_inputs")
        # snapshots: compute_hessvec refers to the training set afterwards
        x = frozen(x, owned=x is not inputs)
        xt = None if xt is None else frozen(xt, owned=xt is not test_inputs)
        lr = _number(who, "step_size", step_size, 0.0, low_open=True)
        epochs = _integer(who, "num_epoch", num_epoch, 0)
        m = _integer(who, "minibatch_size", minibatch_size, 1)
        l2 = _number(who, "l2_coef", l2_coef, 0.0)
        if not isinstance(display, (bool, np.bool_)):
            raise TypeError(f"{who}: display must be a bool, got {type(display).__name__}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        opt = make(lr)
        theta = self.net.get_weights()
        if theta.dtype.kind != "f":
            raise TypeError(f"{who}: the weights must be real to train, got dtype {theta.dtype}")
        state = opt.init(theta)
        n = x.shape[1]
        history: dict[str, list[float]] = {"train_loss": [], "train_grad": [], "test_loss": [],
                                           "test_grad": []}
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(n)
            for k in range(0, n, m):
                _, g = self._evaluate(frozen(x[:, order[k:k + m]], owned=True))
                if l2:
                    g = g + (2.0 * l2) * theta
                theta, state = opt.update(theta, g, state)
                self.net.set_weights(theta)
            seconds = time.perf_counter() - start
            if xt is not None:
                f, gn = self._objective(xt, l2)
                history["test_loss"].append(f)
                history["test_grad"].append(gn)
            f, gn = self._objective(x, l2)  # last: the training set stays the current batch
            history["train_loss"].append(f)
            history["train_grad"].append(gn)
            if display:
                line = f"{who[12:]} epoch {epoch}/{epochs}: train loss {f:.6g}, grad {gn:.3e}"
                if xt is not None:
                    line += (f"; test loss {history['test_loss'][-1]:.6g}, grad "
                             f"{history['test_grad'][-1]:.3e}")
                print(f"{line}; time {seconds:.3f} s", flush=True)
        return history

    def _real_matrix(self, x: Any, who: str, what: str) -> np.ndarray:
        x = as_matrix(x, self.net.num_inputs, who, what)
        if x.dtype.kind != "f":
            raise TypeError(f"{who}: {what} must be real, got dtype {x.dtype}")
        if x.shape[1] == 0:
            raise ValueError(f"{who}: {what} must hold at least one object (column), got 0")
        return x

    def __repr__(self) -> str:
        return f"Autoencoder({self.net.layers!r})"


def _number(who: str, name: str, value: Any, low: float, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {type(value).__name__}")
    v = float(value)
    bad = (not np.isfinite(v) or (v <= low if low_open else v < low)
           or (high is not None and (v >= high if high_open else v > high)))
    if bad:
        lo, hi = "(" if low_open else "[", ")" if high_open or high is None else "]"
        raise ValueError(f"{who}: {name} must be in {lo}{low}, {'inf' if high is None else high}"
                         f"{hi}, got {value!r}")
    return v


def _integer(who: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{who}: {name} must be >= {low}, got {value}")
    return int(value)
