"""pearlnet.curvature: curvature matrices as SciPy linear operators, their spectra and traces,
exact GGN diagonals, K-FAC and per-example gradients, all computed by the autodiff core and
checkable against the dense matrices of small networks (``hessian``, ``jacobian``).

>>> import numpy as np, pearlnet.numpy as pnp
>>> from pearlnet import curvature
>>> net = lambda p, x: pnp.tanh(x @ p)
>>> loss = lambda z, x: 0.5 * pnp.sum(z ** 2) / len(x)
>>> x = np.random.default_rng(0).standard_normal((20, 3))
>>> G = curvature.ggn_operator((net, loss), np.ones(3), x)
>>> top = curvature.top_eigenvalues(G, k=1)
>>> bool(np.isclose(top.values[0], np.linalg.eigvalsh(G.to_dense())[-1]))
True

Needs SciPy (``pip install 'pearlnet[scipy]'``). See docs/curvature.md.
"""

from .estimators import Eigen, Estimate, diagonal, top_eigenvalues, trace  # noqa: F401
from .ggn_diagonal import diag_ggn  # noqa: F401
from .kfac import KFAC, KFACPreconditioner  # noqa: F401
from .layers import TappedNetwork  # noqa: F401
from .likelihoods import Likelihood  # noqa: F401
from .operators import (  # noqa: F401
    CurvatureOperator,
    empirical_fisher_operator,
    ggn_operator,
    hessian_operator,
    jacobian_operator,
)
from .per_example import (  # noqa: F401
    GradientMoments,
    gradient_moments,
    per_example_grad_norms,
    per_example_grads,
)
from .problem import layer_blocks  # noqa: F401
from .spectra import SpectralDensity, spectral_density  # noqa: F401

__all__ = ["hessian_operator", "ggn_operator", "empirical_fisher_operator", "jacobian_operator",
           "CurvatureOperator", "top_eigenvalues", "trace", "diagonal", "spectral_density",
           "SpectralDensity", "Estimate", "Eigen", "diag_ggn", "KFAC", "KFACPreconditioner",
           "TappedNetwork", "Likelihood", "layer_blocks", "per_example_grads",
           "per_example_grad_norms", "gradient_moments", "GradientMoments"]
