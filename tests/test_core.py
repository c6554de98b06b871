"""The engine alone, on Python floats, with primitives defined here: no pearlnet.numpy rules.

This is the backend-free core (autodiff/core.py) seen through its public surface: Primitive,
defvjp/defjvp, and the traces the transforms open."""

import math

import pytest

from pearlnet.autodiff.core import ForwardTrace, Primitive, ReverseTrace, Tracer, primitives, strip

# a tiny scalar backend: mul, add, sin, cos on floats, rules written with these primitives
fmul = Primitive("test_core.mul", lambda x, y: x * y)
fadd = Primitive("test_core.add", lambda x, y: x + y)
fsin = Primitive("test_core.sin", math.sin)
fcos = Primitive("test_core.cos", math.cos)
fneg = Primitive("test_core.neg", lambda x: -x)


def _mul_vjp_x(g, ans, x, y):
    return fmul(g, y)


def _mul_vjp_y(g, ans, x, y):
    return fmul(g, x)


def _mul_jvp_x(t, ans, x, y):
    return fmul(t, y)


def _mul_jvp_y(t, ans, x, y):
    return fmul(x, t)


def _add_rule(g, ans, x, y):
    return g


def _sin_rule(g, ans, x):
    return fmul(g, fcos(x))


def _cos_rule(g, ans, x):
    return fmul(g, fneg(fsin(x)))


def _neg_rule(g, ans, x):
    return fneg(g)


fmul.defvjp(_mul_vjp_x, _mul_vjp_y)
fmul.defjvp(_mul_jvp_x, _mul_jvp_y)
fadd.defvjp(_add_rule, _add_rule)
fadd.defjvp(_add_rule, _add_rule)
fsin.defvjp(_sin_rule)
fsin.defjvp(_sin_rule)
fcos.defvjp(_cos_rule)
fcos.defjvp(_cos_rule)
fneg.defvjp(_neg_rule)
fneg.defjvp(_neg_rule)


def scalar_grad(f):
    """A minimal reverse transform over the engine, as the NumPy-level one is built."""

    def g(x):
        trace = ReverseTrace()
        xin = trace.new_input(x)
        out = f(xin)
        if not (isinstance(out, Tracer) and out.trace is trace):
            return 0.0
        (ct,) = trace.backward([(out.index, 1.0)], [xin.index])
        return 0.0 if ct is None else ct

    return g


def scalar_jvp(f, x, t):
    trace = ForwardTrace()
    out = f(trace.new_input(x, t))
    if isinstance(out, Tracer) and out.trace is trace:
        return out.value, out.tangent
    return out, 0.0


def test_plain_values_pass_through_untraced():
    assert fmul(2.0, 3.0) == 6.0
    assert not isinstance(fsin(1.0), Tracer)


def test_reverse_and_forward_agree_on_a_composition():
    def f(x):
        return fmul(fsin(fmul(x, x)), fadd(x, 1.0))

    x = 0.7
    exact = 2 * x * math.cos(x * x) * (x + 1) + math.sin(x * x)
    assert scalar_grad(f)(x) == pytest.approx(exact, rel=1e-15)
    value, tangent = scalar_jvp(f, x, 1.0)
    assert value == pytest.approx(math.sin(x * x) * (x + 1), rel=1e-15)
    assert tangent == pytest.approx(exact, rel=1e-15)


def test_second_derivative_by_reverse_over_reverse_and_forward_over_reverse():
    # f = sin(x): f'' = -sin(x)
    x = 1.3
    d2_rr = scalar_grad(scalar_grad(fsin))(x)
    d2_fr = scalar_jvp(scalar_grad(fsin), x, 1.0)[1]
    d3_frr = scalar_jvp(scalar_grad(scalar_grad(fsin)), x, 1.0)[1]
    assert d2_rr == pytest.approx(-math.sin(x), rel=1e-15)
    assert d2_fr == pytest.approx(-math.sin(x), rel=1e-15)
    assert d3_frr == pytest.approx(-math.cos(x), rel=1e-15)


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] at x = 1 is 1 (Siskind & Pearlmutter); confusing the two
    # perturbations gives 2.
    def outer(x):
        inner = scalar_grad(lambda y: fadd(x, y))
        return fmul(x, inner(1.0))

    assert scalar_grad(outer)(1.0) == 1.0

    # the forward-mode version of the same trap
    def outer_fwd(x):
        return fmul(x, scalar_jvp(lambda y: fadd(x, y), 1.0, 1.0)[1])

    assert scalar_jvp(outer_fwd, 1.0, 1.0)[1] == 1.0


def test_inner_levels_are_higher_and_stripping_reaches_the_value():
    outer = ReverseTrace()
    inner = ForwardTrace()
    assert inner.level > outer.level
    x = inner.new_input(outer.new_input(2.0), 1.0)
    assert strip(x) == 2.0


@pytest.mark.parametrize("order", ["reverse", "forward-over-reverse"])
def test_a_chain_of_20000_operations_does_not_recurse(order):
    n = 20_000

    def f(x):
        y = x
        for _ in range(n):
            y = fmul(y, 1.0001)
        return y

    x = 0.5
    if order == "reverse":
        assert scalar_grad(f)(x) == pytest.approx(1.0001 ** n, rel=1e-12)
    else:
        # d/dx (d f / dx) = 0 for a linear chain, but every rule runs at both levels
        value, tangent = scalar_jvp(scalar_grad(f), x, 1.0)
        assert value == pytest.approx(1.0001 ** n, rel=1e-12)
        assert tangent == 0.0


def test_a_name_clash_between_definitions_is_refused_naming_both():
    # another impl in this module (not the same definition run again)
    with pytest.raises(ValueError, match=r"'test_core.mul' exists already, defined in "
                                         r"test_core \(impl <lambda>\); this one comes from "
                                         r"test_core \(impl .*<locals>.<lambda>\).*replace=True"):
        Primitive("test_core.mul", lambda x, y: x * y)
    # another module's primitive of the same name
    code = "from pearlnet.autodiff.core import Primitive\nPrimitive('test_core.mul', abs)\n"
    with pytest.raises(ValueError, match="defined in test_core .* comes from other_module"):
        exec(compile(code, "other_module.py", "exec"), {"__name__": "other_module"})
    assert primitives["test_core.mul"] is fmul


def _cube(x):
    return x * x * x


def _define_cube():
    return Primitive("test_core.cube", _cube)


def test_running_a_definition_again_replaces_it():
    # a notebook cell run twice: same module, same impl name
    first = _define_cube()
    first.defvjp(lambda g, ans, x: fmul(g, 3 * x * x))
    second = _define_cube()
    assert primitives["test_core.cube"] is second and second is not first
    # replace=True replaces whatever was there
    third = Primitive("test_core.cube", lambda x: x ** 3, replace=True)
    assert primitives["test_core.cube"] is third
    del primitives["test_core.cube"]


def test_a_missing_rule_names_the_primitive_and_the_argument():
    bare = Primitive("test_core.bare", lambda x: x * x * x)
    half = Primitive("test_core.half", lambda x, y: x * y)  # rules for argument 0 only
    half.defvjp(_mul_vjp_x)
    half.defjvp(_mul_jvp_x)
    try:
        with pytest.raises(NotImplementedError, match=r"no reverse rule for 'test_core.bare' "
                                                      r"\(argument 0\)"):
            scalar_grad(bare)(2.0)
        with pytest.raises(NotImplementedError, match=r"no forward rule for 'test_core.bare' "
                                                      r"\(argument 0\)"):
            scalar_jvp(bare, 2.0, 1.0)
        with pytest.raises(NotImplementedError, match=r"no reverse rule for 'test_core.half' "
                                                      r"\(argument 1\)"):
            scalar_grad(lambda y: half(3.0, y))(2.0)
        with pytest.raises(NotImplementedError, match=r"no forward rule for 'test_core.half' "
                                                      r"\(argument 1\)"):
            scalar_jvp(lambda y: half(3.0, y), 2.0, 1.0)
        # the recorded tape's forward walk (linearize) says the same
        trace = ReverseTrace()
        y = trace.new_input(2.0)
        out = half(3.0, y)
        with pytest.raises(NotImplementedError, match="no forward rule for 'test_core.half'"):
            trace.forward([(y.index, 1.0)], [out.index])
        assert scalar_grad(lambda x: half(x, 3.0))(2.0) == 3.0  # argument 0 has its rule
    finally:
        del primitives["test_core.bare"], primitives["test_core.half"]


# sin(x) * cos(y) as one primitive whose reverse rules share sin and cos: a joint rule serves
# both arguments in one call when both are traced, the per-argument rules otherwise
fsincos = Primitive("test_core.sincos", lambda x, y: math.sin(x) * math.cos(y))
joint_calls = []


def _sincos_joint(g, ans, x, y):
    joint_calls.append((x, y))
    return fmul(g, fmul(fcos(x), fcos(y))), fmul(g, fneg(fmul(fsin(x), fsin(y))))


fsincos.defvjp(lambda g, ans, x, y: _sincos_joint(g, ans, x, y)[0],
               lambda g, ans, x, y: _sincos_joint(g, ans, x, y)[1])
fsincos.defjvp(lambda t, ans, x, y: fmul(t, fmul(fcos(x), fcos(y))),
               lambda t, ans, x, y: fmul(t, fneg(fmul(fsin(x), fsin(y)))))
fsincos.vjp_joint = _sincos_joint


def test_a_joint_reverse_rule_runs_once_for_all_traced_arguments():
    x = 0.7
    joint_calls.clear()
    d = scalar_grad(lambda v: fsincos(v, fmul(v, v)))(x)  # d/dx sin(x) cos(x^2)
    assert d == pytest.approx(math.cos(x) * math.cos(x * x)
                              - 2 * x * math.sin(x) * math.sin(x * x), rel=1e-14)
    assert len(joint_calls) == 1  # once for both arguments, not once per argument
    joint_calls.clear()
    d = scalar_grad(lambda v: fsincos(v, 0.3))(x)  # one traced argument: its own rule
    assert d == pytest.approx(math.cos(x) * math.cos(0.3), rel=1e-14)
    # the second derivative goes through the joint rule's own primitives
    dd = scalar_grad(scalar_grad(lambda v: fsincos(v, fmul(v, v))))(x)
    h = 1e-5
    g1 = scalar_grad(lambda v: fsincos(v, fmul(v, v)))
    assert dd == pytest.approx((g1(x + h) - g1(x - h)) / (2 * h), rel=1e-8)
