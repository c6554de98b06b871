"""The autoencoder study and its report (seed 000, section 2): ``study`` runs it (NumPy only),
``plots`` draws the figures and ``document`` writes report.html and report.pdf (both need
matplotlib, imported only when they are used)."""

from .study import (  # noqa: F401
    PCA,
    StudyConfig,
    fit_pca,
    linear_check,
    prepare_data,
    quick_config,
    run_study,
)

__all__ = ["StudyConfig", "PCA", "fit_pca", "prepare_data", "quick_config", "run_study",
           "linear_check"]
