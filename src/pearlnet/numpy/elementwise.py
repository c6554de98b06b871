"""Elementwise primitives and their rules.

Fed traced complex numbers (or plain ones inside ``complex_step()``), each computes the analytic
continuation of its real function; the piecewise ones (abs, maximum, minimum, sign, relu, the
stable sigmoid and softplus) choose their branch on the real part, so the complex step
Im f(x + ih)/h is exact away from the kinks. On plain complex arrays outside that mode, those
whose continuation differs from NumPy's result (abs, sign, relu, maximum, minimum, softplus) give
NumPy's (``numpy_own``, registered under each); sigmoid's two formulas are one holomorphic
function, so it has no second meaning. ``real`` and ``imag`` are not complex-linear: their rules
are JAX's, and the complex step cannot check them.
Binary operations broadcast like NumPy; ``unbroadcast`` undoes it in the reverse rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._batch import elementwise as _broadcasting_batch
from ._batch import same_axis as _same_axis_batch
from ._util import (
    Primitive,
    Tracer,
    dtype_of,
    known,
    nondiff,
    numpy_own,
    real_dtype,
    shape_of,
    strip,
)
from .shapes import astype, broadcast_to, unbroadcast

__all__ = ["add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "exp",
           "log", "log1p", "expm1", "sqrt", "square", "abs", "absolute", "sign", "tanh", "sinh",
           "cosh", "sin", "cos", "sigmoid", "softplus", "relu", "maximum", "minimum", "where",
           "clip", "reciprocal", "log2", "log10", "real", "imag", "check_range"]


def _like_ans(t, ans):
    """A tangent of a broadcast argument, broadcast to the output's shape."""
    shape = shape_of(ans)
    return t if shape_of(t) == shape else broadcast_to(t, shape)


# ---- arithmetic ------------------------------------------------------------------------------
add = Primitive("add", np.add)
"""x + y, elementwise, broadcasting like NumPy: d(x + y) = dx + dy. The reverse rule of an
argument NumPy broadcast sums the cotangent over the broadcast axes (``unbroadcast``).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda b: pnp.sum(pnp.add(pnp.ones((2, 3)), b)))(pnp.zeros(3))
array([2., 2., 2.])
"""


def _add_vjp_x(g, ans, x, y):
    return unbroadcast(g, shape_of(x))


def _add_vjp_y(g, ans, x, y):
    return unbroadcast(g, shape_of(y))


def _add_jvp(t, ans, x, y):
    return _like_ans(t, ans)


add.elementwise = np.add
add.defvjp(_add_vjp_x, _add_vjp_y)
add.defjvp(_add_jvp, _add_jvp)
add.defbatch(_broadcasting_batch(add))

subtract = Primitive("subtract", np.subtract)
"""x - y, elementwise, broadcasting like NumPy: d(x - y) = dx - dy.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda y: pnp.sum(pnp.subtract(1.0, y)))(pnp.array([1.0, 2.0]))
array([-1., -1.])
"""


def _subtract_vjp_y(g, ans, x, y):
    return unbroadcast(negative(g), shape_of(y))


def _subtract_jvp_y(t, ans, x, y):
    return _like_ans(negative(t), ans)


subtract.elementwise = np.subtract
subtract.defvjp(_add_vjp_x, _subtract_vjp_y)
subtract.defjvp(_add_jvp, _subtract_jvp_y)
subtract.defbatch(_broadcasting_batch(subtract))

multiply = Primitive("multiply", np.multiply)
"""x y, elementwise, broadcasting like NumPy; bilinear: d(x y) = y dx + x dy.

>>> import pearlnet, pearlnet.numpy as pnp
>>> x, y = pnp.array([1.0, 2.0]), pnp.array([3.0, 4.0])
>>> pearlnet.grad(lambda x, y: pnp.sum(pnp.multiply(x, y)), argnums=(0, 1))(x, y)
(array([3., 4.]), array([1., 2.]))
"""


def _multiply_vjp_x(g, ans, x, y):
    return unbroadcast(multiply(g, y), shape_of(x))


def _multiply_vjp_y(g, ans, x, y):
    return unbroadcast(multiply(g, x), shape_of(y))


def _multiply_jvp_x(t, ans, x, y):
    return _like_ans(multiply(t, y), ans)


def _multiply_jvp_y(t, ans, x, y):
    return _like_ans(multiply(x, t), ans)


multiply.elementwise = np.multiply
multiply.defvjp(_multiply_vjp_x, _multiply_vjp_y)
multiply.defjvp(_multiply_jvp_x, _multiply_jvp_y)
multiply.defbatch(_broadcasting_batch(multiply))

true_divide = Primitive("divide", np.true_divide)
"""x / y, elementwise, broadcasting like NumPy: d(x / y) = dx / y - (x / y) dy / y (the
rules reuse the quotient). ``divide`` is the same primitive.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda y: pnp.sum(pnp.true_divide(1.0, y)))(pnp.array([1.0, 2.0]))
array([-1.  , -0.25])
"""
divide = true_divide
"""x / y: NumPy's alias of ``true_divide``, the same primitive (see there)."""


def _divide_vjp_x(g, ans, x, y):
    return unbroadcast(true_divide(g, y), shape_of(x))


def _divide_vjp_y(g, ans, x, y):
    return unbroadcast(negative(multiply(g, true_divide(ans, y))), shape_of(y))


def _divide_jvp_x(t, ans, x, y):
    return _like_ans(true_divide(t, y), ans)


def _divide_jvp_y(t, ans, x, y):
    return _like_ans(negative(multiply(t, true_divide(ans, y))), ans)


true_divide.elementwise = np.true_divide
true_divide.defvjp(_divide_vjp_x, _divide_vjp_y)
true_divide.defjvp(_divide_jvp_x, _divide_jvp_y)
true_divide.defbatch(_broadcasting_batch(true_divide))

negative = Primitive("negative", np.negative)
"""-x, elementwise: d(-x) = -dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.negative(x)))(pnp.array([1.0, -2.0]))
array([-1., -1.])
"""


def _negative_rule(g, ans, x):
    return negative(g)


negative.elementwise = np.negative
negative.defvjp(_negative_rule)
negative.defjvp(_negative_rule)
negative.defbatch(_same_axis_batch(negative))

power = Primitive("power", np.power)
"""x ** y, elementwise, broadcasting like NumPy: d(x^y) = y x^(y-1) dx + x^y log(x) dy.
Where y == 0 the first term is 0 (x^0 is constant, even at x = 0) and where x == 0 the second
is 0 (its limit for y > 0), where the formulas would give inf or nan. A Python number as the
exponent is a constant (``x ** 2`` differentiates as 2x).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.power(x, 3)))(pnp.array([1.0, 2.0]))
array([ 3., 12.])
>>> pearlnet.grad(lambda y: pnp.sum(pnp.power(pnp.array([0.0, 2.0]), y)))(pnp.array([2.0, 3.0]))
array([0.        , 5.54517744])
"""


def _power_dx(ans, x, y):
    """d x^y / dx = y x^(y-1); zero where y == 0 (x^0 is constant, even at x = 0)."""
    if isinstance(y, (int, float)) and not isinstance(y, bool):
        if y == 0:
            return 0 * x
        if y == 2:
            return 2 * x
        return y * power(x, y - 1)
    zero_y = strip(y) == 0
    safe_x = where(zero_y, 1, x)  # the unused branch must not compute 0 ** -1 (a warning)
    return where(zero_y, 0, y * power(safe_x, y - 1))


def _power_dy(ans, x, y):
    """d x^y / dy = x^y log x; zero where x == 0 (the limit for y > 0)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        # a Python base stays a weak scalar: where(zero, 1, x) would be a float64 array and
        # upcast a float32 exponent
        return 0 * ans if x == 0 else multiply(ans, float(np.log(x)))
    zero = strip(x) == 0
    safe_x = where(zero, 1, x)
    return where(zero, 0, ans * log(safe_x))


def _power_vjp_x(g, ans, x, y):
    return unbroadcast(multiply(g, _power_dx(ans, x, y)), shape_of(x))


def _power_vjp_y(g, ans, x, y):
    return unbroadcast(multiply(g, _power_dy(ans, x, y)), shape_of(y))


def _power_jvp_x(t, ans, x, y):
    return _like_ans(multiply(t, _power_dx(ans, x, y)), ans)


def _power_jvp_y(t, ans, x, y):
    product = multiply(t, _power_dy(ans, x, y))
    zero_t = strip(t) == 0
    if not known(zero_t) or np.any(zero_t):  # x^y log x is NaN at a negative base: 0 * NaN
        # must not leak in (under jit always: the data are not known when compiling)
        product = where(zero_t, 0, product)
    return _like_ans(product, ans)


power.elementwise = np.power
power.defvjp(_power_vjp_x, _power_vjp_y)
power.defjvp(_power_jvp_x, _power_jvp_y)
power.defbatch(_broadcasting_batch(power))


def reciprocal(x: Any) -> Any:
    """1 / x, elementwise, as ``true_divide(1, x)``: d(1/x) = -dx / x^2. Unlike NumPy's
    ``reciprocal``, which gives 0 for the integer 2, an integer gets its true reciprocal.

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.reciprocal(x)))(pnp.array([1.0, 2.0]))
    array([-1.  , -0.25])
    >>> float(pnp.reciprocal(2))
    0.5
    """
    return true_divide(1, x)


# ---- unary functions: each rule multiplies by f'(x), written with primitives -----------------
def _unary(name: str, impl, deriv) -> Primitive:
    """A unary primitive whose rules are both ``g * deriv(ans, x)``."""
    prim = Primitive(name, impl)
    if isinstance(impl, np.ufunc):
        prim.elementwise = impl  # jit writes it into out= and fuses it

    def rule(g, ans, x):
        return multiply(g, deriv(ans, x))

    rule.__name__ = f"_{name}_rule"
    prim.defvjp(rule)
    prim.defjvp(rule)
    prim.defbatch(_same_axis_batch(prim))
    return prim


def _exp_deriv(ans, x):
    return ans


def _log_deriv(ans, x):
    return reciprocal(x)


def _log1p_deriv(ans, x):
    return reciprocal(add(x, 1))


def _expm1_deriv(ans, x):
    return add(ans, 1)


def _sqrt_deriv(ans, x):
    return true_divide(0.5, ans)


def _square_deriv(ans, x):
    return multiply(2, x)


def _abs_deriv(ans, x):
    return _continued_sign(x)  # the continuation's sign, whatever the mode: not sign(x)




def _sinh_deriv(ans, x):
    return cosh(x)


def _cosh_deriv(ans, x):
    return sinh(x)


def _sin_deriv(ans, x):
    return cos(x)


def _cos_deriv(ans, x):
    return negative(sin(x))




def _softplus_deriv(ans, x):
    return sigmoid(x)


def _real_sign(x):
    """sign of the real part, in x's (real) dtype: the branch every kinked function takes."""
    return np.sign(np.real(x)).astype(real_dtype(x), copy=False)


def _abs_impl(x):
    if np.iscomplexobj(x):
        return x * _real_sign(x)
    return np.abs(x)


def _branch_sign(x):
    """+1 where Re x >= 0, else -1: the side of a two-formula function (never 0, which would
    drop the imaginary part of a complex step at Re x = 0)."""
    return np.where(np.real(x) >= 0, 1, -1).astype(real_dtype(x), copy=False)


def _sigmoid_impl(x):
    """1/(1 + e^-x) for Re x >= 0 and e^x/(1 + e^x) below: never overflows."""
    e = np.exp(-x * _branch_sign(x))  # exp(-|x|), continued analytically
    return np.where(np.real(x) >= 0, 1 / (1 + e), e / (1 + e))


def _softplus_impl(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows."""
    s = _branch_sign(x)
    return np.where(np.real(x) >= 0, x, 0 * x) + np.log1p(np.exp(-x * s))


exp = _unary("exp", np.exp, _exp_deriv)
"""e^x, elementwise: d e^x = e^x dx (the rules reuse the output).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.exp(x)))(pnp.array([0.0, 1.0]))
array([1.        , 2.71828183])
"""
log = _unary("log", np.log, _log_deriv)
"""The natural logarithm, elementwise: d log x = dx / x. On complex numbers the principal
branch, as NumPy's.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.log(x)))(pnp.array([1.0, 4.0]))
array([1.  , 0.25])
"""
log1p = _unary("log1p", np.log1p, _log1p_deriv)
"""log(1 + x), elementwise, accurate for small x: d log1p(x) = dx / (1 + x).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.log1p(pnp.array([1e-20]))  # log(1 + 1e-20) would round to 0
array([1.e-20])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.log1p(x)))(pnp.array([0.0, 1.0]))
array([1. , 0.5])
"""
expm1 = _unary("expm1", np.expm1, _expm1_deriv)
"""e^x - 1, elementwise, accurate for small x: d expm1(x) = e^x dx = (expm1(x) + 1) dx (from
the output).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.expm1(pnp.array([1e-20]))  # exp(1e-20) - 1 would round to 0
array([1.e-20])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.expm1(x)))(pnp.array([0.0, 1.0]))
array([1.        , 2.71828183])
"""
sqrt = _unary("sqrt", np.sqrt, _sqrt_deriv)
"""The square root, elementwise: d sqrt(x) = dx / (2 sqrt(x)) (from the output; infinite at
0). On complex numbers the principal branch, as NumPy's.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.sqrt(x)))(pnp.array([1.0, 4.0]))
array([0.5 , 0.25])
"""
square = _unary("square", np.square, _square_deriv)
"""x^2, elementwise: d x^2 = 2x dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.square(x)))(pnp.array([1.0, -3.0]))
array([ 2., -6.])
"""
abs = _unary("abs", _abs_impl, _abs_deriv)
"""|x|, elementwise: d|x| = sign(x) dx, 0 at x = 0 (autograd's and JAX's convention).

Unlike NumPy on complex numbers: on traced values and inside ``complex_step()``, the analytic
continuation x sign(Re x), whose complex step gives the real derivative; on plain complex arrays
elsewhere, NumPy's modulus. ``absolute`` is the same primitive.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.abs(x)))(pnp.array([-2.0, 0.0, 3.0]))
array([-1.,  0.,  1.])
>>> pnp.abs(pnp.array([3 + 4j]))  # a plain complex array: NumPy's modulus
array([5.])
"""
abs.out_impl = lambda out, x: np.absolute(x, out=out)  # real x (jit's out= form)
numpy_own(abs, np.abs)  # the modulus
absolute = abs
"""|x|: NumPy's alias of ``abs``, the same primitive (see there)."""
tanh = Primitive("tanh", np.tanh)
"""The hyperbolic tangent, elementwise: d tanh(x) = (1 - tanh^2(x)) dx, from the output (one
fused primitive carries a cotangent or tangent through it).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.tanh(x)))(pnp.array([0.0, 1.0]))
array([1.        , 0.41997434])
"""
tanh.elementwise = np.tanh
tanh.defbatch(_same_axis_batch(tanh))
sinh = _unary("sinh", np.sinh, _sinh_deriv)
"""The hyperbolic sine, elementwise: d sinh(x) = cosh(x) dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.sinh(x)))(pnp.array([0.0, 1.0]))
array([1.        , 1.54308063])
"""
cosh = _unary("cosh", np.cosh, _cosh_deriv)
"""The hyperbolic cosine, elementwise: d cosh(x) = sinh(x) dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.cosh(x)))(pnp.array([0.0, 1.0]))
array([0.        , 1.17520119])
"""
sin = _unary("sin", np.sin, _sin_deriv)
"""The sine (radians), elementwise: d sin(x) = cos(x) dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.sin(x)))(pnp.array([0.0, pnp.pi]))
array([ 1., -1.])
"""
cos = _unary("cos", np.cos, _cos_deriv)
"""The cosine (radians), elementwise: d cos(x) = -sin(x) dx.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.cos(x)))(pnp.array([0.0, pnp.pi / 2]))
array([-0., -1.])
"""
sigmoid = Primitive("sigmoid", _sigmoid_impl)
"""The logistic function 1 / (1 + e^-x), elementwise (not in NumPy; SciPy's ``expit``):
d sigmoid(x) = sigmoid(x) (1 - sigmoid(x)) dx, from the output (one fused primitive). Computed
as 1 / (1 + e^-x) where Re x >= 0 and e^x / (1 + e^x) below, so it never overflows; the two
formulas are one analytic function, so complex input has one meaning.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.sigmoid(pnp.array([-1000.0, 0.0, 1000.0]))
array([0. , 0.5, 1. ])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.sigmoid(x)))(pnp.array([0.0]))
array([0.25])
"""
sigmoid.defbatch(_same_axis_batch(sigmoid))
softplus = _unary("softplus", _softplus_impl, _softplus_deriv)
"""log(1 + e^x), elementwise (not in NumPy): d softplus(x) = sigmoid(x) dx. Computed as
max(x, 0) + log1p(e^-|x|), so it never overflows; the branch is chosen by Re x. On plain complex
arrays outside ``complex_step()``, log1p(exp(x)) with the principal log.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.softplus(pnp.array([-1000.0, 0.0, 1000.0]))
array([0.00000000e+00, 6.93147181e-01, 1.00000000e+03])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.softplus(x)))(pnp.array([0.0]))
array([0.5])
"""
numpy_own(softplus, lambda x: np.log1p(np.exp(x)))  # the principal log (np.logaddexp is real)

# ---- tanh and sigmoid: the derivative in terms of the output, fused --------------------------
# tanh' = 1 - y^2 and sigmoid' = y (1 - y) with y the output. Every reverse pass through a
# tanh or sigmoid layer (and every LSTM step) multiplies a cotangent by one of them; one
# primitive with one output array instead of three (square, subtract, multiply) each with its
# own array is what makes those layers' backward passes cost about what a hand-written one does.
def _fusable(g, y) -> bool:
    """Can g * factor(y) be computed in one scratch array of y's dtype and shape?"""
    return (isinstance(y, np.ndarray) and y.ndim > 0 and np.shape(g) == y.shape
            and np.result_type(g, y) == y.dtype)


def _tanh_grad_impl(g, y):
    """g (1 - y^2): the cotangent (or tangent) g carried back (or forward) through y = tanh(x)."""
    if not _fusable(g, y):
        return g * (1 - y * y)
    return _tanh_grad_out(np.empty_like(y), g, y)


def _tanh_grad_out(out, g, y):  # also jit's out= form (out is never g or y)
    if not _fusable(g, y):
        return np.multiply(g, 1 - y * y, out=out)
    np.multiply(y, y, out=out)
    np.subtract(1, out, out=out)
    return np.multiply(out, g, out=out)


def _sigmoid_grad_impl(g, y):
    """g y (1 - y): the cotangent (or tangent) g carried through y = sigmoid(x)."""
    if not _fusable(g, y):
        return g * y * (1 - y)
    return _sigmoid_grad_out(np.empty_like(y), g, y)


def _sigmoid_grad_out(out, g, y):
    if not _fusable(g, y):
        return np.multiply(g * y, 1 - y, out=out)
    np.subtract(1, y, out=out)
    np.multiply(out, y, out=out)
    return np.multiply(out, g, out=out)


tanh_grad = Primitive("tanh_grad", _tanh_grad_impl)
sigmoid_grad = Primitive("sigmoid_grad", _sigmoid_grad_impl)
tanh_grad.out_impl = _tanh_grad_out
sigmoid_grad.out_impl = _sigmoid_grad_out
# the arithmetic of the three passes above, in their order, for jit's fusion (one compiled loop,
# NumPy's bits, written over a dying argument): {0} g, {1} y, {2} the constant 1
_tanh_grad_out.fused_form = ("(({2} - ({1} * {1})) * {0})", (1.0,))
_sigmoid_grad_out.fused_form = ("((({2} - {1}) * {1}) * {0})", (1.0,))


def _tanh_grad_wrt_y(t, ans, g, y):
    """d[g (1 - y^2)]/dy = -2 g y."""
    return multiply(multiply(t, g), multiply(-2, y))


def _sigmoid_grad_wrt_y(t, ans, g, y):
    """d[g y (1 - y)]/dy = g (1 - 2y)."""
    return multiply(multiply(t, g), subtract(1, multiply(2, y)))


def _tanh_grad_wrt_g(t, ans, g, y):
    return tanh_grad(t, y)


def _sigmoid_grad_wrt_g(t, ans, g, y):
    return sigmoid_grad(t, y)


tanh_grad.defvjp(_tanh_grad_wrt_g, _tanh_grad_wrt_y)
tanh_grad.defjvp(_tanh_grad_wrt_g, _tanh_grad_wrt_y)
sigmoid_grad.defvjp(_sigmoid_grad_wrt_g, _sigmoid_grad_wrt_y)
sigmoid_grad.defjvp(_sigmoid_grad_wrt_g, _sigmoid_grad_wrt_y)
tanh_grad.defbatch(_broadcasting_batch(tanh_grad))
sigmoid_grad.defbatch(_broadcasting_batch(sigmoid_grad))


def _tanh_rule(g, ans, x):
    return tanh_grad(g, ans)


def _sigmoid_rule(g, ans, x):
    return sigmoid_grad(g, ans)


tanh.defvjp(_tanh_rule)
tanh.defjvp(_tanh_rule)
sigmoid.defvjp(_sigmoid_rule)
sigmoid.defjvp(_sigmoid_rule)


# relu is a primitive, not where(x > 0, x, 0): NumPy's masked selection (where, copyto) is
# about ten times slower than a multiply by the mask, and relu sits in every hidden layer.
# NOTE: its derivative at 0 is 0 (the problem book's [x > 0]); maximum(x, 0) would give 1/2.
def _relu_impl(x):
    if np.iscomplexobj(x):
        return np.where(np.real(x) > 0, x, 0)
    return np.maximum(x, 0)  # -inf -> 0 and nan -> nan, as max(x, 0)


def _relu_mask_impl(x):
    return np.real(x) > 0


_relu_mask = nondiff(_relu_mask_impl, "relu_mask")
_relu_mask.out_impl = lambda out, x: np.greater(x, 0, out=out)
_relu_mask.defbatch(_same_axis_batch(_relu_mask))


def _relu_rule(g, ans, x):
    return multiply(g, _relu_mask(x))  # float * bool keeps g's dtype


relu = Primitive("relu", _relu_impl)
"""max(x, 0), elementwise (not in NumPy): d relu(x) = [x > 0] dx, so 0 at x = 0 (the problem
book's convention; ``maximum(x, 0)`` would give 1/2 there). On complex numbers the branch is
chosen by Re x (on plain complex arrays outside ``complex_step()``, NumPy's ``maximum(x, 0)``).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.relu(x)))(pnp.array([-1.0, 0.0, 2.0]))
array([0., 0., 1.])
"""
relu.out_impl = lambda out, x: np.maximum(x, 0, out=out)  # real x (jit's out= form)
relu.defvjp(_relu_rule)
relu.defjvp(_relu_rule)
relu.defbatch(_same_axis_batch(relu))
numpy_own(relu, lambda x: np.maximum(x, 0))  # NumPy orders complex numbers lexicographically


def _sign_impl(x):
    return _real_sign(x) if np.iscomplexobj(x) else np.sign(x)


_continued_sign = nondiff(_sign_impl, "continued_sign")
_continued_sign.defbatch(_same_axis_batch(_continued_sign))


sign = Primitive("sign", _sign_impl, differentiable=False)
"""-1, 0 or 1 by the sign of x, elementwise; piecewise constant, so no derivative: traced
values are stripped and the result is a plain array, a constant to the transforms. On traced
complex values and inside ``complex_step()`` the sign of Re x; on plain complex arrays
elsewhere, NumPy's z / |z|.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pnp.sign(pnp.array([-2.0, 0.0, 3.0]))
array([-1.,  0.,  1.])
>>> pearlnet.grad(lambda x: pnp.sum(pnp.sign(x) * x))(pnp.array([-2.0, 3.0]))
array([-1.,  1.])
"""
numpy_own(sign, np.sign)  # z / |z|
sign.defbatch(_same_axis_batch(sign))


def log2(x: Any) -> Any:  # Python floats: a NumPy float64 scalar would upcast float32
    """The base-2 logarithm, elementwise, as log(x) / log(2): d log2(x) = dx / (x log 2).

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.log2(pnp.array([1.0, 8.0]))
    array([0., 3.])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.log2(x)))(pnp.array([1.0]))
    array([1.44269504])
    """
    return true_divide(log(x), float(np.log(2.0)))


def log10(x: Any) -> Any:
    """The base-10 logarithm, elementwise, as log(x) / log(10): d log10(x) = dx / (x log 10).

    >>> import pearlnet, pearlnet.numpy as pnp
    >>> pnp.log10(pnp.array([1.0, 100.0]))
    array([0., 2.])
    >>> pearlnet.grad(lambda x: pnp.sum(pnp.log10(x)))(pnp.array([1.0]))
    array([0.43429448])
    """
    return true_divide(log(x), float(np.log(10.0)))


# ---- maximum, minimum, where -----------------------------------------------------------------
def _pick_weight_impl(x, y, larger: bool):
    """1 where x wins, 0 where y wins, 1/2 on ties (the autograd/JAX convention), in the real
    dtype of the result; decided on real parts."""
    rx, ry = np.real(x), np.real(y)
    wins = rx > ry if larger else rx < ry
    w = np.where(wins, 1.0, np.where(rx == ry, 0.5, 0.0))
    return w.astype(real_dtype(np.result_type(x, y)), copy=False)


_pick_weight = nondiff(_pick_weight_impl, "pick_weight")
_pick_weight.defbatch(_broadcasting_batch(_pick_weight))  # (x, y, larger): larger unbatched


def _maximum_impl(x, y):
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        return np.where(np.real(x) >= np.real(y), x, y)
    return np.maximum(x, y)


def _minimum_impl(x, y):
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        return np.where(np.real(x) <= np.real(y), x, y)
    return np.minimum(x, y)


maximum = Primitive("maximum", _maximum_impl)
"""The larger of x and y, elementwise, broadcasting like NumPy. The derivative goes to the
larger argument, and half to each at a tie (autograd's and JAX's subgradient): d max(x, y) =
w dx + (1 - w) dy with w = 1, 1/2 or 0. On traced complex values and inside ``complex_step()``
the larger real part wins; on plain complex arrays elsewhere, NumPy's lexicographic order.

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.maximum(x, 1.0)))(pnp.array([0.0, 1.0, 2.0]))
array([0. , 0.5, 1. ])
"""
minimum = Primitive("minimum", _minimum_impl)
"""The smaller of x and y, elementwise, broadcasting like NumPy; the derivative goes to the
smaller argument, half to each at a tie (as ``maximum``, which see for complex numbers).

>>> import pearlnet, pearlnet.numpy as pnp
>>> pearlnet.grad(lambda x: pnp.sum(pnp.minimum(x, 1.0)))(pnp.array([0.0, 1.0, 2.0]))
array([1. , 0.5, 0. ])
"""
maximum.out_impl = lambda out, x, y: np.maximum(x, y, out=out)  # real x, y (jit's out= form)
minimum.out_impl = lambda out, x, y: np.minimum(x, y, out=out)
numpy_own(maximum, np.maximum)  # lexicographic on complex numbers
numpy_own(minimum, np.minimum)


def _make_extremum_rules(prim: Primitive, larger: bool) -> None:
    def vjp_x(g, ans, x, y):
        return unbroadcast(multiply(g, _pick_weight(x, y, larger)), shape_of(x))

    def vjp_y(g, ans, x, y):
        return unbroadcast(multiply(g, _pick_weight(y, x, larger)), shape_of(y))

    def jvp_x(t, ans, x, y):
        return _like_ans(multiply(t, _pick_weight(x, y, larger)), ans)

    def jvp_y(t, ans, x, y):
        return _like_ans(multiply(t, _pick_weight(y, x, larger)), ans)

    for f in (vjp_x, vjp_y, jvp_x, jvp_y):
        f.__name__ = f"_{prim.name}_{f.__name__}"
    prim.defvjp(vjp_x, vjp_y)
    prim.defjvp(jvp_x, jvp_y)
    prim.defbatch(_broadcasting_batch(prim))


_make_extremum_rules(maximum, larger=True)
_make_extremum_rules(minimum, larger=False)

where_p = Primitive("where", np.where)


def _where_vjp_x(g, ans, c, x, y):
    return unbroadcast(where_p(c, g, 0), shape_of(x))


def _where_vjp_y(g, ans, c, x, y):
    return unbroadcast(where_p(c, 0, g), shape_of(y))


def _where_jvp_x(t, ans, c, x, y):
    return _like_ans(where_p(c, t, 0), ans)


def _where_jvp_y(t, ans, c, x, y):
    return _like_ans(where_p(c, 0, t), ans)


def _where_out(out, c, x, y):
    """jit's out= form, over a dying x or y only (``inplace_only``: elsewhere np.where's one
    pass into a fresh array beats two copies): the other's entries are copied in where the
    condition picks them. A selection: the same bits as np.where."""
    if out is y:
        np.copyto(out, x, where=c, casting="unsafe")
    else:
        np.copyto(out, y, where=np.logical_not(c), casting="unsafe")
    return out


_where_out.inplace = (1, 2)
_where_out.inplace_only = True
where_p.out_impl = _where_out
where_p.defvjp(None, _where_vjp_x, _where_vjp_y)
where_p.defjvp(None, _where_jvp_x, _where_jvp_y)
where_p.defbatch(_broadcasting_batch(where_p))  # a batched condition too: it is an argument


def where(condition: Any, x: Any, y: Any) -> Any:
    """x where condition holds, y elsewhere; differentiable in x and y, not in the condition."""
    return where_p(strip(condition), x, y)


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """min(max(x, a_min), a_max); the gradient is 1 strictly inside, 0 outside, 1/2 at a bound."""
    if a_min is None and a_max is None:
        raise ValueError("clip: give a_min, a_max or both")
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


# ---- real and imag ---------------------------------------------------------------------------
# Not complex-linear, so their rules are JAX's (linear over the reals): forward Re t and Im t;
# reverse, the cotangent g of Re z is g as a complex number and that of Im z is -i g.
real_p = Primitive("real", np.real)
imag_p = Primitive("imag", np.imag)


def _real_vjp(g, ans, x):
    return astype(g, dtype_of(x))


def _real_jvp(t, ans, x):
    return real_p(t)


def _imag_vjp(g, ans, x):
    return multiply(astype(g, dtype_of(x)), -1j)


def _imag_jvp(t, ans, x):
    return imag_p(t)


real_p.defvjp(_real_vjp)
real_p.defjvp(_real_jvp)
imag_p.defvjp(_imag_vjp)
imag_p.defjvp(_imag_jvp)
real_p.defbatch(_same_axis_batch(real_p))
imag_p.defbatch(_same_axis_batch(imag_p))


def real(x: Any) -> Any:
    """The real part: NumPy's on plain values; a traced real array itself (its derivatives
    pass, as through the identity); of a traced complex one, Re z with JAX's rules."""
    if not isinstance(x, Tracer):
        return np.real(x)
    return real_p(x) if dtype_of(x).kind == "c" else x


def imag(x: Any) -> Any:
    """The imaginary part: NumPy's on plain values; of a traced real array, zeros (a constant);
    of a traced complex one, Im z with JAX's rules."""
    if not isinstance(x, Tracer):
        return np.imag(x)
    if dtype_of(x).kind == "c":
        return imag_p(x)
    return np.zeros(shape_of(x), dtype_of(x))


# ---- check_range: the identity, once the values are known to be in range ---------------------
def _check_range_impl(x, low, high, who, what):
    r = np.real(np.asarray(x))
    if r.size:
        least, most = r.min(), r.max()
        if not (least >= low and most <= high):  # NaN fails too
            raise ValueError(f"{who}: {what}, got {least}..{most}")
    return x


check_range_p = Primitive("check_range", _check_range_impl)


def _check_range_vjp(g, ans, x, low, high, who, what):
    return g


def _check_range_jvp(t, ans, x, low, high, who, what):
    return t


check_range_p.defvjp(_check_range_vjp)
check_range_p.defjvp(_check_range_jvp)
check_range_p.defbatch(_same_axis_batch(check_range_p))  # the batch's range is the examples'


def check_range(x: Any, low: float, high: float, who: str = "check_range",
                what: str = "values out of range") -> Any:
    """x itself, after checking that low <= x <= high everywhere (real parts; a NaN fails):
    otherwise a ValueError "``who``: ``what``, got <least>..<most>". To transforms it is the
    identity (its derivative passes unchanged). It is an operation of its own, so a compiled
    program (jit) checks the values of every call, not only those it was recorded with; a
    loss that indexes with labels checks them this way, where a negative label would otherwise
    be read from the end, silently.

    >>> import numpy as np, pearlnet.numpy as pnp
    >>> pnp.check_range(np.array([0, 2, 1]), 0, 2)
    array([0, 2, 1])
    >>> pnp.check_range(np.array([0, 3]), 0, 2, "my_loss", "labels must lie in [0, 3)")
    Traceback (most recent call last):
    ...
    ValueError: my_loss: labels must lie in [0, 3), got 0..3
    """
    return check_range_p(x, low, high, who, what)
