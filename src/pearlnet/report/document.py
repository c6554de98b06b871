"""report.html and report.pdf for the autoencoder study, with the formulas of seed 000 (sections
1.2-1.4) typeset: matplotlib mathtext (Computer Modern) in the PDF, HTML with Unicode symbols
and <sub>/<sup> in the page (no MathJax, nothing fetched). Both are generated from one TeX
source per formula by :func:`tex_to_html` and mathtext.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pearlnet._files import replacing

from . import plots
from .study import StudyOutput, write_results

__all__ = ["FORMULAS", "HIDDEN_ACTIVATIONS", "formulas", "tex_to_html", "write_report",
           "write_html", "write_pdf", "summary_sections", "results_table", "grid_table",
           "curvature_table"]

# -- formulas ----------------------------------------------------------------------------------
_FOR_UP = r"for $l = 1, \ldots, L$:"
_FOR_DOWN = r"for $l = L, L - 1, \ldots, 1$:"

_NO_SECOND = r", so the $g_l^{\prime\prime}$ term of the R-backward pass vanishes"

#: The hidden activations by ``pearlnet.nn.activations`` name (StudyConfig.activation, with
#: its default parameters): (what $g$ is, its derivatives), prose with $TeX$.
HIDDEN_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "tanh": (r"tanh, $g(u) = \mathrm{tanh}\,u$,",
             r"$g^{\prime} = 1 - g^2$ and $g^{\prime\prime} = -2g\,g^{\prime}$"),
    "sigmoid": (r"the logistic sigmoid, $g(u) = \sigma(u) = 1/(1 + e^{-u})$,",
                r"$g^{\prime} = g\,(1 - g)$ and $g^{\prime\prime} = g^{\prime}\,(1 - 2g)$"),
    "relu": (r"ReLU, $g(u) = \mathrm{max}(u, 0)$,",
             r"$g^{\prime} = 1$ for $u > 0$ and 0 otherwise (0 at the kink) and "
             r"$g^{\prime\prime} = 0$" + _NO_SECOND),
    "leaky_relu": (r"leaky ReLU, $g(u) = u$ for $u > 0$ and $\alpha u$ otherwise "
                   r"($\alpha = 0.01$),",
                   r"$g^{\prime} = 1$ for $u > 0$ and $\alpha$ otherwise ($\alpha$ at the kink) "
                   r"and $g^{\prime\prime} = 0$" + _NO_SECOND),
    "abs_relu": (r"absolute value rectification, $g(u) = |u|$,",
                 r"$g^{\prime} = \mathrm{sign}(u)$ (0 at the kink) and $g^{\prime\prime} = 0$"
                 + _NO_SECOND),
    "softplus": (r"softplus, $g(u) = \mathrm{log}(1 + e^{u})$,",
                 r"$g^{\prime} = \sigma(u) = 1/(1 + e^{-u})$ and $g^{\prime\prime} = "
                 r"\sigma(u)\,(1 - \sigma(u))$"),
    "swish": (r"swish, $g(u) = u\,\sigma(u)$ with $\sigma(u) = 1/(1 + e^{-u})$,",
              r"$g^{\prime} = \sigma(u) + g\,(1 - \sigma(u))$ and $g^{\prime\prime} = "
              r"\sigma(u)\,(1 - \sigma(u))\,(2 + u\,(1 - 2\sigma(u)))$"),
    "mish": (r"mish, $g(u) = u\,t$ with $t = \mathrm{tanh}(\mathrm{log}(1 + e^{u}))$,",
             r"$g^{\prime} = t + u\,(1 - t^2)\,\sigma(u)$ and $g^{\prime\prime} = (1 - t^2)\,"
             r"\sigma(u)\,(2 + u\,(1 - \sigma(u) - 2t\,\sigma(u)))$ with $\sigma(u) = "
             r"1/(1 + e^{-u})$"),
    "elu": (r"ELU, $g(u) = u$ for $u > 0$ and $\alpha\,(e^{u} - 1)$ otherwise ($\alpha = 1$),",
            r"$g^{\prime} = 1$ for $u > 0$ and $\alpha e^{u}$ otherwise, and "
            r"$g^{\prime\prime} = 0$ for $u > 0$ and $\alpha e^{u}$ otherwise"),
    "linear": (r"the identity, $g(u) = u$,",
               r"$g^{\prime} = 1$ and $g^{\prime\prime} = 0$" + _NO_SECOND + r" and the "
               r"autoencoder is linear in $\mathbf{x}$"),
}
HIDDEN_ACTIVATIONS["identity"] = HIDDEN_ACTIVATIONS["none"] = HIDDEN_ACTIVATIONS["linear"]


def _hidden_activation(name: str) -> tuple[str, str]:
    """(what the hidden $g_l$ is, its derivatives) for the activation ``name``."""
    known = HIDDEN_ACTIVATIONS.get(str(name).lower())
    if known is not None:
        return known
    # softmax and log_softmax act on a whole layer, not elementwise
    return (f"{str(name).replace('$', '')} (over the units of a layer, not elementwise),",
            r"$\odot\,g_l^{\prime}(\mathbf{u}^l)$ below stands for the product with its "
            r"Jacobian and the $g_l^{\prime\prime}$ term for the one with its second "
            r"derivatives")


def formulas(activation: str = "tanh") -> list[tuple[str, list[tuple[str, str]]]]:
    """The formulas of the report for a study whose hidden layers use ``activation``
    (StudyConfig.activation): :data:`FORMULAS` with that $g_l$ and its derivatives named."""
    what, derivs = _hidden_activation(activation)
    model = [
        ("text", r"Layers $l = 1, \ldots, L$ (the encoder's $K$ layers, then the decoder's "
                 r"mirror image); $g_l$ is " + what + r" on hidden layers and the identity on "
                 r"the code layer ($l = K$) and the output layer ($l = L$); $\theta$ collects "
                 r"every $W^l$ and $\mathbf{b}^l$."),
        ("text", r"On hidden layers " + derivs + r"; on the code and output layers "
                 r"$g^{\prime} = 1$ and $g^{\prime\prime} = 0$."),
        ("math", r"F(\theta) = \dfrac{1}{n}\sum_{i=1}^{n} L(\mathbf{x}_i, "
                 r"\mathbf{z}^L(\mathbf{x}_i, \theta)),\quad L(\mathbf{x}, \mathbf{z}) = "
                 r"\dfrac{1}{2}\Vert\mathbf{x} - \mathbf{z}\Vert^2"),
    ]
    return [("Model and objective (1)", model), *_PASSES]


#: (section title, [("text", prose with $TeX$) | ("math", TeX)]): seed 000, sections 1.2-1.4,
#: with separate biases (pearlnet's {"W", "b"}) instead of the hand-out's augmented [W, b].
_PASSES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Forward pass (2)", [
        ("math", r"\mathbf{z}^0 = \mathbf{x}"),
        ("text", _FOR_UP),
        ("math", r"\mathbf{u}^l = W^l\,\mathbf{z}^{l-1} + \mathbf{b}^l,\quad "
                 r"\mathbf{z}^l = g_l(\mathbf{u}^l)"),
        ("math", r"L = \dfrac{1}{2}\Vert\mathbf{x} - \mathbf{z}^L\Vert^2"),
    ]),
    ("Backward pass (3)", [
        ("math", r"\nabla_{\mathbf{z}^L} L = \mathbf{z}^L - \mathbf{x}"),
        ("text", _FOR_DOWN),
        ("math", r"\nabla_{\mathbf{u}^l} L = \nabla_{\mathbf{z}^l} L \odot "
                 r"g_l^{\prime}(\mathbf{u}^l)"),
        ("math", r"\nabla_{W^l} L = \nabla_{\mathbf{u}^l} L\,(\mathbf{z}^{l-1})^T,\quad "
                 r"\nabla_{\mathbf{b}^l} L = \nabla_{\mathbf{u}^l} L"),
        ("math", r"\nabla_{\mathbf{z}^{l-1}} L = (W^l)^T\,\nabla_{\mathbf{u}^l} L"),
        ("text", r"$\nabla F$ is the mean of $\nabla L$ over the objects. With tied weights "
                 r"($W^{L+1-l} = (W^l)^T$) the two uses add up: $\nabla_{W^l} L + "
                 r"(\nabla_{W^{L+1-l}} L)^T$."),
    ]),
    ("R-forward pass (4)", [
        ("text", r"$\mathcal{R}\{\cdot\} = \mathcal{R}_{\mathbf{p}}\{\cdot\}$ is the "
                 r"directional derivative along $\mathbf{p}$, whose parts $P^l$ and "
                 r"$\mathbf{p}_b^l$ match $W^l$ and $\mathbf{b}^l$:"),
        ("math", r"\mathcal{R}\{f(\theta)\} = (\nabla_{\theta} f)^T\,\mathbf{p}"),
        ("math", r"\mathcal{R}\{\mathbf{z}^0\} = \mathbf{0}"),
        ("text", _FOR_UP),
        ("math", r"\mathcal{R}\{\mathbf{u}^l\} = W^l\,\mathcal{R}\{\mathbf{z}^{l-1}\} + "
                 r"P^l\,\mathbf{z}^{l-1} + \mathbf{p}_b^l"),
        ("math", r"\mathcal{R}\{\mathbf{z}^l\} = g_l^{\prime}(\mathbf{u}^l)\odot"
                 r"\mathcal{R}\{\mathbf{u}^l\}"),
        ("math", r"\mathcal{R}\{L\} = (\mathbf{z}^L - \mathbf{x})^T\,"
                 r"\mathcal{R}\{\mathbf{z}^L\}"),
    ]),
    ("R-backward pass: the Hessian-vector product", [
        ("text", r"$\mathcal{R}\{\cdot\}$ applied to every line of the backward pass (3), "
                 "after running (2), (3) and (4):"),
        ("math", r"\mathcal{R}\{\nabla_{\mathbf{z}^L} L\} = \mathcal{R}\{\mathbf{z}^L\}"),
        ("text", _FOR_DOWN),
        ("math", r"\mathcal{R}\{\nabla_{\mathbf{u}^l} L\} = \mathcal{R}\{\nabla_{\mathbf{z}^l}"
                 r" L\}\odot g_l^{\prime}(\mathbf{u}^l) + \nabla_{\mathbf{z}^l} L\odot "
                 r"g_l^{\prime\prime}(\mathbf{u}^l)\odot\mathcal{R}\{\mathbf{u}^l\}"),
        ("math", r"\mathcal{R}\{\nabla_{W^l} L\} = \mathcal{R}\{\nabla_{\mathbf{u}^l} L\}\,"
                 r"(\mathbf{z}^{l-1})^T + \nabla_{\mathbf{u}^l} L\,"
                 r"(\mathcal{R}\{\mathbf{z}^{l-1}\})^T"),
        ("math", r"\mathcal{R}\{\nabla_{\mathbf{b}^l} L\} = "
                 r"\mathcal{R}\{\nabla_{\mathbf{u}^l} L\}"),
        ("math", r"\mathcal{R}\{\nabla_{\mathbf{z}^{l-1}} L\} = (P^l)^T\,"
                 r"\nabla_{\mathbf{u}^l} L + (W^l)^T\,\mathcal{R}\{\nabla_{\mathbf{u}^l} L\}"),
        ("math", r"\nabla^2 F(\theta)\,\mathbf{p} = \dfrac{1}{n}\sum_{i=1}^{n}\left("
                 r"\mathcal{R}\{\nabla_{W^l} L_i\},\ \mathcal{R}\{\nabla_{\mathbf{b}^l} L_i\}"
                 r"\right)_{l=1}^{L}"),
    ]),
    ("Gauss-Newton product", [
        ("text", r"With $J_i = \partial\mathbf{z}^L(\mathbf{x}_i, \theta)/\partial\theta$ "
                 r"and $\nabla^2_{\mathbf{z}} L = I$ the Hessian splits in two; the second "
                 r"term vanishes where $\mathbf{z}^L(\mathbf{x}_i) \approx \mathbf{x}_i$ and for "
                 r"a map linear in $\theta$:"),
        ("math", r"\nabla^2 F(\theta) = \dfrac{1}{n}\sum_{i=1}^{n} J_i^T J_i + "
                 r"\dfrac{1}{n}\sum_{i=1}^{n}\sum_{j=1}^{D}(z^L_j(\mathbf{x}_i, \theta) - "
                 r"x_{ij})\,\nabla^2_{\theta} z^L_j(\mathbf{x}_i, \theta)"),
        ("math", r"\nabla^2_{GN} F(\theta)\,\mathbf{p} = \dfrac{1}{n}\sum_{i=1}^{n} J_i^T "
                 r"J_i\,\mathbf{p}"),
        ("text", r"$J_i\mathbf{p}$ is the R-forward pass (4); $J_i^T\mathbf{q}_i$ is the "
                 r"backward pass (3) started from $\mathbf{q}_i$ in place of $\mathbf{z}^L - "
                 r"\mathbf{x}$ (the R-backward pass without its $g_l^{\prime\prime}$ and $P^l$ "
                 r"terms):"),
        ("math", r"\mathbf{q}_i = J_i\,\mathbf{p} = \mathcal{R}\{\mathbf{z}^L(\mathbf{x}_i)\}"),
        ("math", r"\dfrac{1}{n}\sum_{i=1}^{n} J_i^T\mathbf{q}_i = \nabla_{\theta}\left["
                 r"\dfrac{1}{n}\sum_{i=1}^{n}\mathbf{z}^L(\mathbf{x}_i, \theta)^T\,"
                 r"\mathbf{q}_i\right]"),
        ("text", r"pearlnet keeps objects as rows ($U^l = Z^{l-1} W^l + \mathbf{1}\,"
                 r"(\mathbf{b}^l)^T$, the same formulas transposed) and derives all of these "
                 r"from the forward pass alone: the gradient by reverse mode, $\nabla^2 F\,"
                 r"\mathbf{p}$ by forward over reverse (the R-backward pass), the Gauss-Newton "
                 r"product by a forward-mode $J\mathbf{p}$ and a reverse-mode $J^T\mathbf{q}$."),
    ]),
]

#: The formulas for the default hidden activation, tanh; :func:`formulas` gives them for another.
FORMULAS = formulas("tanh")

_SYMBOLS = {
    "nabla": "∇", "odot": "⊙", "theta": "θ", "ldots": "…", "partial": "∂", "Vert": "‖",
    "prime": "′", "cdot": "·", "top": "T", "lambda": "λ", "rho": "ρ", "sum": "∑",
    "quad": "\u2003", ",": "\u2009", " ": " ", "{": "{", "}": "}", "left": "", "right": "",
    "approx": "≈", "in": "∈", "le": "≤", "ge": "≥", "times": "×", "mu": "μ", "beta": "β",
    "gamma": "γ", "varepsilon": "ε", "epsilon": "ε", "leftarrow": "←", "Sigma": "Σ",
    "sigma": "σ", "alpha": "α",
}
_WRAPPERS = {"mathbf": ("<b>", "</b>"), "mathrm": ('<span class="rm">', "</span>"),
             "overline": ('<span class="ov">', "</span>")}
_CAL = {"R": "ℛ", "L": "ℒ", "F": "ℱ"}


def _upright_t(tex: str) -> str:
    """The transpose as an upright T: ``^T`` becomes ``^{\\mathrm{T}}``."""
    return re.sub(r"\^T(?![A-Za-z])", r"^{\\mathrm{T}}", tex)


def tex_to_html(tex: str) -> str:
    """The TeX subset used in FORMULAS as HTML: symbols as Unicode, ^ and _ as <sup>/<sub>,
    \\frac and \\dfrac as stacked spans, \\mathbf bold, Latin letters italic.

    >>> tex_to_html(r"\\nabla_{\\mathbf{z}^L} L")
    '∇<sub><b>z</b><sup><i>L</i></sup></sub> <i>L</i>'
    """
    tokens = re.findall(r"\\[A-Za-z]+|\\.|[{}^_]|\s+|.", _upright_t(tex))
    pos = 0

    def atom(upright: bool = False) -> str:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            out = []
            while tokens[pos] != "}":
                out.append(item(upright))
            pos += 1
            return "".join(out)
        if tok.startswith("\\"):
            name = tok[1:]
            if name in ("frac", "dfrac"):
                num, den = atom(upright), atom(upright)
                return f'<span class="frac"><span>{num}</span><span>{den}</span></span>'
            if name in _WRAPPERS:
                start, end = _WRAPPERS[name]
                return start + atom(upright=name != "overline" or upright) + end
            if name == "mathcal":
                letter = atom(upright=True)
                return _CAL.get(letter, letter)
            if name in _SYMBOLS:
                return _SYMBOLS[name]
            raise ValueError(f"tex_to_html: unsupported command {tok!r} in {tex!r}")
        if tok.isspace():
            return " "
        if tok.isascii() and tok.isalpha() and not upright:
            return f"<i>{tok}</i>"
        return "−" if tok == "-" else html.escape(tok)

    def item(upright: bool = False) -> str:
        nonlocal pos
        base = atom(upright)
        while pos < len(tokens) and tokens[pos] in ("^", "_"):
            tag = "sup" if tokens[pos] == "^" else "sub"
            pos += 1
            base += f"<{tag}>{atom(upright)}</{tag}>"
        return base

    out = []
    while pos < len(tokens):
        out.append(item())
    return "".join(out)


def _inline(text: str) -> str:
    """Prose with $TeX$ segments as HTML: the text escaped, the TeX by :func:`tex_to_html`."""
    parts = text.split("$")
    if len(parts) % 2 == 0:
        raise ValueError(f"_inline: unbalanced $ in {text!r}")
    return "".join(html.escape(p) if i % 2 == 0 else
                   f'<span class="imath">{tex_to_html(p)}</span>' for i, p in enumerate(parts))


# -- the text of the report --------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _label(name: str) -> str:
    return plots.LABELS.get(name, name)


def summary_sections(results: dict) -> list[tuple[str, list[str]]]:
    """The report's prose, as (heading, paragraphs)."""
    s, d, pca = results["settings"], results["data"], results["pca"]
    runs = results["runs"]
    sections: list[tuple[str, list[str]]] = []
    sections.append(("Data", [
        f"Dataset: {d['dataset']}; images flattened to {d['features']} values, "
        f"{d['pixel_scale']}, stored as {d['dtype']}. No shuffling before the split:",
        f"training: {d['train']}; held-out: {d['holdout']}; validation: {d['validation']}. "
        r"Every loss is $F(\theta) = \frac{1}{n}\sum_i \frac{1}{2}\Vert\mathbf{x}_i - "
        r"\mathbf{z}^L(\mathbf{x}_i)\Vert^2$ (summed over pixels, averaged over images) on "
        "the named part.",
    ]))
    lin = [r for r in runs if len(r["arch"].split("-")) == 2]
    w = d["features"]
    model = [
        f"Autoencoder(sizes, activation={s['activation']!r}, code and output layers linear, "
        f"untied weights), weights N(0, 1/fan_in) and zero biases from seed {s['seed']}; every "
        "optimizer of an architecture starts from the same parameters. An arch lists the "
        "encoder widths; the decoder mirrors them (784-128-2 is 784-128-2-128-784).",
        f"Arch {w}-2 means Autoencoder([{w}, 2]): one encoder layer {w}→2 and one decoder "
        f"layer 2→{w}. The hidden activation applies to hidden layers only and {w}-2 has none "
        f"(its code and output layers are linear), so {w}-2 is a linear autoencoder whatever "
        "the activation: its loss can at best equal PCA's.",
    ]
    if lin:
        ratios = [(r["optimizer"], r["final"]["train_over_pca"]) for r in lin]
        gaps = "; ".join(f"{_label(name)} {100 * (q - 1):+.2f}%" for name, q in ratios
                         if q is not None and math.isfinite(q))
        model.append(f"Training loss of {lin[0]['arch']} relative to PCA's after "
                     f"{s['epochs']} epochs: {gaps}.")
    sections.append(("Model", model))
    pca_text = [
        r"PCA: the top two right singular vectors $V_2$ of the centred training data "
        r"($X - \mu = U S V^T$), codes $(\mathbf{x} - \mu) V_2$, reconstructions "
        r"$\mu + (\mathbf{x} - \mu) V_2 V_2^T$. It "
        f"explains {100 * sum(pca['explained_variance_ratio']):.1f}% of the variance; its "
        f"loss is {pca['train_loss']:.4f} on the training split and {pca['val_loss']:.4f} on "
        "the validation split. Among all maps through a 2-D affine code it has the least "
        "training loss (Eckart-Young), so only a nonlinear autoencoder can go below it."]
    check = results.get("linear_check")
    if check:
        verdict = "reached" if check["passed"] else "did NOT reach"
        pca_text.append(
            f"Linear check: the linear autoencoder {check['arch']} (activation 'linear', "
            f"the study's initial parameters) trained with Adam (step size {check['lr']:g}, "
            f"batch {check['batch_size']}) until within {100 * check['tol']:g}% of PCA's "
            f"training loss (at most {check['max_epochs']} epochs) {verdict} it: "
            f"{check['train_loss']:.4f} against {check['pca_train_loss']:.4f} (ratio "
            f"{check['ratio']:.4f}) after {check['epochs']} epochs, {check['seconds']:.1f} s; "
            f"validation {check['val_loss']:.4f} against PCA's {check['pca_val_loss']:.4f}.")
    sections.append(("PCA baseline", pca_text))

    res = []
    for arch, winner in results["winners"].items():
        best = next(r for r in runs if r["arch"] == arch and r["optimizer"] == winner)
        eq = results["winners_equal_time"].get(arch, {})
        below = 100 * (1 - best["final"]["val_over_pca"])
        where = "below" if below >= 0 else "above"
        line = (f"{arch}: best after {s['epochs']} epochs is {_label(winner)}, validation loss "
                f"{best['final']['val_loss']:.4f}, {abs(below):.1f}% {where} PCA's "
                f"({pca['val_loss']:.4f}).")
        if eq.get("optimizer"):
            line += (f" At equal training time ({eq['seconds']:.1f} s, the quickest run's "
                     f"total) the best is {_label(eq['optimizer'])} "
                     f"({eq['runs'][eq['optimizer']]['val_loss']:.4f}).")
        res.append(line)
    counts: dict[str, int] = {}
    for w in results["winners"].values():
        counts[w] = counts.get(w, 0) + 1
    if counts:
        top = max(counts, key=counts.get)
        res.append(f"Overall: {_label(top)} gives the lowest validation loss after the epoch "
                   f"budget on {counts[top]} of {len(results['winners'])} architecture(s).")
    res.append(f"Total wall time of the study: {results['total_seconds']:.0f} s (training, "
               "evaluations, grid search, PCA and the linear check; figures not included), "
               f"BLAS threads: {s.get('blas_threads', 'unchanged')}. Times are wall-clock on "
               "a shared machine and carry its noise.")
    sections.append(("Results", res))
    hf = s["hf"]
    if len(s["grid_batch_sizes"]) > 1:
        batches = ("Minibatch sizes searched with every step size: "
                   f"{', '.join(str(b) for b in s['grid_batch_sizes'])}.")
    else:
        batches = (f"The minibatch size was not searched: {s['grid_batch_sizes'][0]} for every "
                   "first-order method, as given by --batch-size (--grid-batch-sizes adds "
                   "sizes to the grid).")
    grids = "; ".join(f"{_label(k)} {', '.join(f'{v:g}' for v in s['grid'][k])}"
                      for k in s["optimizers"] if k in s["grid"])
    how = [
        f"Step sizes and minibatch sizes of the first-order methods: a grid search. Every "
        f"candidate trains {s['grid_epochs']} epoch(s) on the training split from the run's "
        f"initial parameters and is scored by its loss on the held-out split (never trained "
        f"on, and not the validation split); the lowest wins. Step sizes (a factor of about 3 "
        f"apart): {grids}. A winning edge is extended by one more step size beyond it (at "
        f"most {s['grid_extensions']} times); a candidate whose minibatch loss turns "
        f"non-finite or exceeds 100× its first is marked diverged. {batches} The chosen "
        f"values then train for {s['epochs']} epochs; every candidate is listed in the "
        "grid-search table and in results.json.",
        r"Fixed hyper-parameters: Momentum $\beta = 0.9$ ($I \leftarrow \beta I + "
        r"\mathrm{lr}\,\mathbf{g}$, $\theta \leftarrow \theta - I$); RMSProp $\gamma = 0.9$, "
        r"$\varepsilon = 10^{-10}$; Adam $\beta_1 = 0.9$, $\beta_2 = 0.999$, "
        r"$\varepsilon = 10^{-8}$.",
        f"Hessian-free (Martens 2010): Gauss-Newton curvature, Levenberg-Marquardt damping "
        f"from $\\lambda = {hf['damping']:g}$ driven by the reduction ratio, CG from 0.95 "
        "times the "
        f"previous direction with Martens' stopping rule and at most {hf['cg_max_iters']} "
        f"iterations, CG-backtracking and an Armijo line search. One HF epoch is "
        f"{hf['steps_per_epoch']} outer step(s) whose gradient batches partition a fresh "
        f"permutation of the training split (so, like a first-order epoch, it reads every "
        f"training image once for the gradient); each step's curvature products use a random "
        f"{100 * hf['curvature_fraction']:g}% of its gradient batch. HF does many more "
        "matrix products per epoch than a first-order method, so epochs do not compare "
        "costs: the right-hand panel of each convergence figure, validation loss against "
        "training seconds (evaluations excluded), is the fair comparison, and the Results "
        "section also compares all methods at the training time of the quickest run.",
    ]
    sections.append(("How the hyper-parameters were chosen", how))
    curved = [r for r in runs if r.get("curvature")]
    if curved:
        c0 = curved[0]["curvature"]
        h0 = c0["hessian"]
        sharp = max(curved, key=lambda r: r["curvature"]["hessian"]["top_eigenvalues"][0])
        flat = min(curved, key=lambda r: r["curvature"]["hessian"]["top_eigenvalues"][0])
        sections.append(("Curvature at the final parameters", [
            f"For every run, the curvature of the training loss F at its final parameters, "
            f"measured on the first {c0['images']} training images with pearlnet.curvature: "
            f"the top {len(h0['top_eigenvalues'])} eigenvalues of the Hessian "
            r"$\nabla^2 F$ and of the Gauss-Newton matrix $G = \frac{1}{n}\sum_i J_i^T J_i$ "
            "(Lanczos, scipy's eigsh, to 1e-6 relative), their traces (Hutch++ with "
            f"{h0['trace_samples']} products, ± one standard error) and their spectral "
            f"densities (stochastic Lanczos quadrature, {h0['lanczos_steps']} steps, one "
            "Rademacher probe, Papyan's Gaussian width). The Hessian can have negative "
            "eigenvalues; G cannot, and the two agree where the residuals are small.",
            f"Sharpest minimum: {sharp['arch']} with {_label(sharp['optimizer'])} "
            f"(λmax {sharp['curvature']['hessian']['top_eigenvalues'][0]:.4g}); flattest: "
            f"{flat['arch']} with {_label(flat['optimizer'])} "
            f"(λmax {flat['curvature']['hessian']['top_eigenvalues'][0]:.4g}).",
        ]))
    return sections


def curvature_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """One row per run with curvature: the top Hessian and GGN eigenvalues and traces."""
    header = ["arch", "optimizer", "Hessian top eigenvalues", "tr H", "GGN top eigenvalues",
              "tr G"]
    rows = []
    for r in results["runs"]:
        c = r.get("curvature")
        if not c:
            continue
        h, g = c["hessian"], c["ggn"]
        rows.append([r["arch"], _label(r["optimizer"]),
                     ", ".join(_fmt(v, 4) for v in h["top_eigenvalues"]),
                     f"{_fmt(h['trace'], 4)} ± {_fmt(h['trace_stderr'], 2)}",
                     ", ".join(_fmt(v, 4) for v in g["top_eigenvalues"]),
                     f"{_fmt(g['trace'], 4)} ± {_fmt(g['trace_stderr'], 2)}"])
    return header, rows


def results_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """One row per run plus PCA's and the linear check's."""
    header = ["arch", "optimizer", "step size", "batch", "epochs", "train loss", "val loss",
              "val / PCA", "‖∇F‖ train", "time, s"]
    rows = []
    for r in results["runs"]:
        hp, f = r["hyperparameters"], r["final"]
        step = _fmt(hp["lr"], 3) if "lr" in hp else f"CG≤{hp['cg_max_iters']}"
        batch = str(hp["batch_size"]) if "batch_size" in hp else \
            f"{hp['gradient_batch']}/{hp['curvature_batch']}"
        epochs = str(f["epochs_done"]) + ("" if f["diverged_at_epoch"] is None else " (div.)")
        rows.append([r["arch"], _label(r["optimizer"]), step, batch, epochs,
                     _fmt(f["train_loss"]), _fmt(f["val_loss"]), _fmt(f["val_over_pca"], 3),
                     _fmt(f["train_grad_norm"], 3), _fmt(f["seconds"], 3)])
    pca = results["pca"]
    rows.append(["linear, 2-D", "PCA (SVD)", "—", "—", "—", _fmt(pca["train_loss"]),
                 _fmt(pca["val_loss"]), "1", "—", _fmt(pca["seconds"], 3)])
    c = results.get("linear_check")
    if c:
        rows.append([f"{c['arch']} linear", "Adam (linear check)", _fmt(c["lr"], 3),
                     str(c["batch_size"]), str(c["epochs"]), _fmt(c["train_loss"]),
                     _fmt(c["val_loss"]),
                     _fmt(c["val_loss"] / c["pca_val_loss"], 3), "—", _fmt(c["seconds"], 3)])
    return header, rows


def grid_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """One row per grid search: the held-out loss of every candidate, the chosen one ticked."""
    header = ["arch", "optimizer", "chosen", "held-out loss by step size (✓ chosen)"]
    rows = []
    for r in results["runs"]:
        g = r.get("grid_search")
        if not g:
            continue
        several = len({c["batch_size"] for c in g["candidates"]}) > 1
        cells = []
        for c in sorted(g["candidates"], key=lambda c: (c["lr"], c["batch_size"])):
            key = f"{c['lr']:g}" + (f"/{c['batch_size']}" if several else "")
            value = "div." if c["diverged"] else _fmt(c["holdout_loss"])
            tick = "✓" if (c["lr"], c["batch_size"]) == (g["chosen"]["lr"],
                                                         g["chosen"]["batch_size"]) else ""
            cells.append(f"{key}: {value}{tick}")
        chosen = f"{g['chosen']['lr']:g}, batch {g['chosen']['batch_size']}"
        lines = ["   ".join(cells[i:i + 4]) for i in range(0, len(cells), 4)]
        rows.append([r["arch"], _label(r["optimizer"]), chosen, "\n".join(lines)])
    return header, rows


# -- figures ---------------------------------------------------------------------------------
@dataclass
class FigureEntry:
    filename: str
    caption: str
    figure: Any


def make_figures(output: StudyOutput) -> list[FigureEntry]:
    """Every figure of the report, in report order."""
    res, split = output.results, output.split
    entries = []
    archs = list(dict.fromkeys(r["arch"] for r in res["runs"]))
    pca_val = res["pca"]["val_loss"]
    for arch in archs:
        runs = [r for r in res["runs"] if r["arch"] == arch]
        entries.append(FigureEntry(
            f"convergence_{arch}.png",
            f"Autoencoder {arch}: validation loss against epoch (left panel) and against "
            "training seconds (right panel), one line per optimizer; PCA dashed.",
            plots.convergence_figure(arch, runs, pca_val)))
        best = res["winners"].get(arch)
        if best is not None:
            names = [split.class_names[int(k)] if int(k) < len(split.class_names) else str(k)
                     for k in split.y_val[output.samples]]
            entries.append(FigureEntry(
                f"reconstructions_{arch}.png",
                f"Autoencoder {arch}: one validation image per class (top), its reconstruction "
                f"by the autoencoder trained with {_label(best)}, the best optimizer for this "
                "arch (middle), and PCA's (bottom).",
                plots.reconstructions_figure(arch, best, split.x_val[output.samples],
                                             output.reconstructions[(arch, best)],
                                             output.pca_reconstruction, split.image_shape,
                                             names)))
        for r in runs:
            name = r["optimizer"]
            entries.append(FigureEntry(
                f"codes_{arch}_{name}.png",
                f"Autoencoder {arch}, {_label(name)}: 2-D codes of the validation images at "
                "the initial parameters (left), after training (middle) and PCA's (right), "
                "coloured by class.",
                plots.codes_figure(arch, name, output.codes_before[arch],
                                   output.codes_after[(arch, name)], output.pca_codes,
                                   split.y_val, split.class_names)))
    for arch in archs:
        runs = [r for r in res["runs"] if r["arch"] == arch and r.get("curvature")]
        if runs:
            entries.append(FigureEntry(
                f"curvature_{arch}.png",
                f"Autoencoder {arch}: spectral densities of the Hessian (left) and of the "
                "Gauss-Newton matrix (right) at each optimizer's final parameters, by "
                "stochastic Lanczos quadrature; the dashed lines are the top eigenvalues "
                "found by Lanczos.", plots.curvature_figure(arch, runs)))
    if res.get("linear_check"):
        entries.append(FigureEntry(
            "linear_check.png",
            "Linear check: training loss of the linear autoencoder per epoch against PCA's.",
            plots.linear_check_figure(res["linear_check"])))
    return entries


# -- HTML ------------------------------------------------------------------------------------
_CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 70em; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
h1, h2, h3 { font-family: 'DejaVu Sans', Arial, sans-serif; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:nth-child(1), td:nth-child(2) { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
.math { font-family: 'Latin Modern Math', 'STIX Two Math', 'Cambria Math', 'DejaVu Serif',
        serif; font-size: 1.15em; margin: 0.35em 0 0.35em 2.5em; }
.math b { font-style: normal; } .math .rm { font-style: normal; }
.ov { text-decoration: overline; }
.frac { display: inline-flex; flex-direction: column; vertical-align: middle;
        text-align: center; margin: 0 0.15em; font-size: 0.9em; }
.frac > span:first-child { border-bottom: 1px solid currentColor; padding: 0 0.2em; }
.loop { margin: 0.2em 0 0.2em 1.2em; font-style: italic; }
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c).replace(chr(10), '<br>')}</td>"
                                     for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def write_html(path: str | Path, results: dict, figures: list[FigureEntry]) -> Path:
    """report.html: the prose, the results and grid-search tables, the formulas, and every
    figure by its file name (the PNGs sit beside it)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>pearlnet: autoencoder study</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Autoencoder study: first-order methods, Hessian-free and PCA</h1>",
             f"<p>{html.escape(_subtitle(results))}</p>"]
    for heading, paragraphs in summary_sections(results):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.extend(f"<p>{_inline(p)}</p>" for p in paragraphs)
        if heading == "Results":
            parts.append("<h3>Results table</h3>")
            parts.append(_html_table(*results_table(results)))
        if heading == "How the hyper-parameters were chosen":
            parts.append("<h3>Grid search (held-out loss of every candidate)</h3>")
            parts.append(_html_table(*grid_table(results)))
        if heading == "Curvature at the final parameters":
            parts.append(_html_table(*curvature_table(results)))
    parts.append("<h2>Formulas: the fully connected autoencoder</h2>")
    for title, lines in formulas(results["settings"].get("activation", "tanh")):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        for kind, content in lines:
            if kind == "math":
                parts.append(f'<div class="math">{tex_to_html(content)}</div>')
            elif content in (_FOR_UP, _FOR_DOWN):
                parts.append(f'<div class="loop">{_inline(content)}</div>')
            else:
                parts.append(f"<p>{_inline(content)}</p>")
    parts.append("<h2>Figures</h2>")
    for entry in figures:
        name = html.escape(entry.filename)
        parts.append(f'<figure id="{name}"><img src="{name}" alt="{name}">'
                     f"<figcaption><code>{name}</code>: {html.escape(entry.caption)}"
                     "</figcaption></figure>")
    parts.append("<p>All numbers: <code>results.json</code>.</p></body></html>")
    path = Path(path)
    with replacing(path, "write_html") as tmp:
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _subtitle(results: dict) -> str:
    s, d = results["settings"], results["data"]
    return (f"{d['dataset']}, {d['train_size']} training images, archs "
            f"{', '.join(arch for arch in dict.fromkeys(r['arch'] for r in results['runs']))}; "
            f"optimizers {', '.join(s['optimizers'])}; {s['epochs']} epochs"
            f"{' (--quick)' if s.get('quick') else ''}.")


# -- PDF -------------------------------------------------------------------------------------
_A4 = (8.27, 11.69)


def _visible(word: str) -> int:
    """Rough printed width of a word, $TeX$ segments counted by their glyphs."""
    word = re.sub(r"\\[A-Za-z]+", "x", word)
    return len(re.sub(r"[{}^_$]", "", word))


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrapping that never breaks inside a $TeX$ segment."""
    words = re.findall(r"(?:[^\s$]*\$[^$]*\$)+[^\s$]*|\S+", text)
    lines, line, used = [], [], 0
    for w in words:
        n = _visible(w)
        if line and used + 1 + n > width:
            lines.append(" ".join(line))
            line, used = [], 0
        line.append(w)
        used += n + (1 if used else 0)
    if line or not lines:
        lines.append(" ".join(line))
    return lines


class _Pages:
    """Flows text, formulas and tables down A4 pages of a PdfPages file."""

    def __init__(self, pdf: Any) -> None:
        self.pdf, self.fig, self.y = pdf, None, 0.0

    def _new(self) -> None:
        from matplotlib.figure import Figure

        self.flush()
        self.fig, self.y = Figure(figsize=_A4), 0.95

    def need(self, height: float) -> None:
        if self.fig is None or self.y - height < 0.04:
            self._new()

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def text(self, s: str, size: float = 9.5, weight: str = "normal", indent: float = 0.0,
             width: int = 100, gap: float = 0.006) -> None:
        """Prose with $TeX$ segments (mathtext), wrapped to ``width`` characters at 9.5 pt."""
        step = size / 72 / _A4[1] * (1.75 if "$" in s else 1.45)
        for line in _wrap(s, int(width * 9.5 / size)):
            self.need(step)
            self.fig.text(0.07 + indent, self.y, _upright_t(line), fontsize=size, weight=weight,
                          va="top")
            self.y -= step
        self.y -= gap

    def math(self, tex: str, size: float = 12.5) -> None:
        height = (2.9 if "frac" in tex or "sum" in tex else 1.8) * size / 72 / _A4[1]
        self.need(height)
        self.fig.text(0.11, self.y - height / 2, f"${_upright_t(tex)}$", fontsize=size,
                      va="center")
        self.y -= height + 0.004

    def table(self, header: list[str], rows: list[list[str]], size: float = 7.0,
              left: tuple[int, ...] = (0, 1)) -> None:
        """A table flowed over as many pages as it needs; cells may hold several lines."""
        line_h = size / 72 / _A4[1] * 1.45
        pad = size / 72 / _A4[1] * 0.8
        heights = [line_h * max(c.count("\n") + 1 for c in row) + pad for row in rows]
        widths = [max(len(line) for c in [h, *(row[i] for row in rows)]
                      for line in c.split("\n")) + 2 for i, h in enumerate(header)]
        start = 0
        while start < len(rows):
            self.need(3 * (line_h + pad))
            room, end = self.y - 0.04 - (line_h + pad), start
            while end < len(rows) and (end == start or sum(heights[start:end + 1]) <= room):
                end += 1
            chunk = rows[start:end]
            height = line_h + pad + sum(heights[start:end])
            ax = self.fig.add_axes((0.05, self.y - height, 0.9, height))
            ax.axis("off")
            table = ax.table(cellText=chunk, colLabels=header, loc="upper center",
                             cellLoc="right", bbox=(0, 0, 1, 1))
            table.auto_set_font_size(False)
            table.set_fontsize(size)
            for (r, c), cell in table.get_celld().items():
                cell.set_linewidth(0.3)
                cell.set_width(widths[c] / sum(widths))
                cell.set_height(line_h + pad if r == 0 else heights[start + r - 1])
                if c in left:
                    cell.get_text().set_horizontalalignment("left")
                    cell.PAD = 0.02
                if r == 0:
                    cell.set_facecolor("#eeeeee")
            self.y -= height + 0.015
            start = end


def write_pdf(path: str | Path, results: dict, figures: list[FigureEntry]) -> Path:
    """report.pdf: the prose and tables, the formulas (mathtext, Computer Modern), then one
    page per figure. Written to a temporary file moved into place when complete
    (``files.replacing``): an error or Ctrl-C leaves the previous report.pdf or none."""
    import matplotlib as mpl
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    with mpl.rc_context({"mathtext.fontset": "cm"}), replacing(path, "write_pdf") as tmp, \
            PdfPages(tmp) as pdf:
        pages = _Pages(pdf)
        pages.text("Autoencoder study: first-order methods, Hessian-free and PCA", size=15,
                   weight="bold", width=70)
        pages.text(_subtitle(results), size=10)
        for heading, paragraphs in summary_sections(results):
            pages.text(heading, size=12, weight="bold", gap=0.002)
            for p in paragraphs:
                pages.text(p)
            if heading == "Results":
                pages.text("Results table", size=10.5, weight="bold")
                pages.table(*results_table(results))
            if heading == "How the hyper-parameters were chosen":
                pages.text("Grid search (held-out loss of every candidate)", size=10.5,
                           weight="bold")
                pages.table(*grid_table(results), left=(0, 1, 3))
            if heading == "Curvature at the final parameters":
                pages.table(*curvature_table(results))
        pages._new()
        pages.text("Formulas: the fully connected autoencoder", size=14, weight="bold")
        for title, lines in formulas(results["settings"].get("activation", "tanh")):
            pages.need(0.12)
            pages.y -= 0.008
            pages.text(title, size=11.5, weight="bold", gap=0.003)
            for kind, content in lines:
                if kind == "math":
                    pages.math(content)
                elif content in (_FOR_UP, _FOR_DOWN):
                    pages.y -= 0.006
                    pages.text(content, size=9.5, indent=0.02, gap=0.0)
                else:
                    pages.text(content, size=9.5)
        pages.flush()
        for entry in figures:
            entry.figure.text(0.01, 0.005, entry.filename, fontsize=7, color="gray")
            pdf.savefig(entry.figure)
        info = pdf.infodict()
        info["Title"] = "pearlnet autoencoder study"
    return path


def write_report(output: StudyOutput, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, every figure as PNG, report.html and report.pdf into ``out_dir``
    (created if needed). Returns {name: path}. Each file is written to a temporary name and
    moved into place when complete, so a failure part-way leaves no truncated file."""
    plots.require_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"results.json": write_results(output.results, out / "results.json")}
    figures = make_figures(output)
    for entry in figures:
        written[entry.filename] = plots.save(entry.figure, out / entry.filename)
    written["report.html"] = write_html(out / "report.html", output.results, figures)
    written["report.pdf"] = write_pdf(out / "report.pdf", output.results, figures)
    return written
