"""pearlnet.check: numerical checks of derivatives (forward and central differences, complex
step), and ``complex_step()``, the mode in which kinked functions continue analytically on plain
complex arrays (the checks enter it themselves). The implementation lives beside the core, in
pearlnet.autodiff.check."""

from pearlnet.autodiff.check import (  # noqa: F401
    CheckReport,
    GradientCheckError,
    check_grad,
    check_hvp,
    check_jvp,
    complex_step,
)

__all__ = ["CheckReport", "GradientCheckError", "check_grad", "check_hvp", "check_jvp",
           "complex_step"]
