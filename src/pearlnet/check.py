"""pearlnet.check: numerical checks of derivatives (forward and central differences, complex
step). The implementation lives beside the core, in pearlnet.autodiff.check."""

from pearlnet.autodiff.check import (  # noqa: F401
    CheckReport,
    GradientCheckError,
    check_grad,
    check_hvp,
    check_jvp,
)

__all__ = ["CheckReport", "GradientCheckError", "check_grad", "check_hvp", "check_jvp"]
