"""Curvature summaries for reports and the ``pearlnet curvature`` command: the top eigenvalues
(Lanczos), the trace (Hutch++) and the spectral density (stochastic Lanczos quadrature) of a
curvature operator, as JSON-ready dicts, and their figure.

NumPy and SciPy only; the figure needs matplotlib (imported when it is drawn).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

__all__ = ["summarize", "spectrum_figure", "CURVATURES"]

#: The curvatures a summary can be of, by the name used in files and legends.
CURVATURES = {"hessian": "Hessian", "ggn": "GGN (Gauss-Newton)"}


def summarize(op: Any, top_k: int = 3, trace_samples: int = 30, lanczos_steps: int = 40,
              runs: int = 1, seed: int = 0, tick: Callable[[], None] | None = None) -> dict:
    """{"top_eigenvalues", "trace", "trace_stderr", "grid", "density", "nodes", "weights",
    "matvecs", "seconds", ...} for the symmetric operator ``op``. ``tick()`` is called after
    every product (a progress bar)."""
    from pearlnet.curvature import spectral_density, top_eigenvalues, trace

    if tick is not None and hasattr(op, "on_product"):
        op.on_product = lambda count: tick()
    t0 = time.perf_counter()
    n = op.shape[0]
    k = max(1, min(top_k, n))
    top = top_eigenvalues(op, k=k, seed=seed, tol=1e-6)
    tr = trace(op, "hutch++", samples=max(3, min(trace_samples, 3 * n)), seed=seed)
    sd = spectral_density(op, lanczos_steps=min(lanczos_steps, n), runs=runs, seed=seed)
    if hasattr(op, "on_product"):
        op.on_product = None
    return {"dimension": int(n), "top_eigenvalues": [float(v) for v in top.values],
            "trace": float(tr.value), "trace_stderr": float(tr.stderr),
            "trace_method": "hutch++", "trace_samples": int(tr.matvecs),
            "lanczos_steps": int(min(lanczos_steps, n)), "runs": int(runs),
            "sigma": sd.sigma, "grid": sd.grid.tolist(), "density": sd.density.tolist(),
            "nodes": [t.tolist() for t in sd.nodes], "weights": [w.tolist() for w in sd.weights],
            "matvecs": int(top.matvecs + tr.matvecs + sd.matvecs),
            "seconds": time.perf_counter() - t0}


def spectrum_figure(summaries: dict[str, dict], title: str) -> Any:
    """One panel per summary (name -> summary): the spectral density on a log scale, the top
    eigenvalues marked, the trace in the legend."""
    from matplotlib.figure import Figure

    names = list(summaries)
    fig = Figure(figsize=(5.2 * len(names), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names):
        s = summaries[name]
        grid, density = np.asarray(s["grid"]), np.asarray(s["density"])
        ax.semilogy(grid, density + 1e-7, color="tab:blue", lw=1.2,
                    label=f"SLQ density ({s['lanczos_steps']} steps)")
        for j, v in enumerate(s["top_eigenvalues"]):
            ax.axvline(v, color="tab:red", ls="--", lw=0.8,
                       label="top eigenvalues (Lanczos)" if j == 0 else None)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (log scale)")
        ax.set_title(f"{name}: λmax {s['top_eigenvalues'][0]:.4g}, "
                     f"trace {s['trace']:.4g} ± {s['trace_stderr']:.2g}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
