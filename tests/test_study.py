"""The autoencoder study (`pearlnet autoencoder`): the quick run writes every file, the linear
autoencoder reaches PCA's error, and bad datasets or archs are refused with clear messages."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pearlnet import cli
from pearlnet.report import document, study

pytest.importorskip("matplotlib")

FASHION = Path("/usr/share/datasets/fashion-mnist")
DATASET = "fashion-mnist" if FASHION.is_dir() else "digits"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """One `pearlnet autoencoder --quick` run shared by the tests that inspect its output."""
    out = tmp_path_factory.mktemp("report")
    code = cli.main(["autoencoder", "--quick", "--dataset", DATASET, "--out", str(out),
                     "--quiet"])
    assert code == 0
    return out


def _expected_figures(results: dict) -> list[str]:
    names = []
    for arch in dict.fromkeys(r["arch"] for r in results["runs"]):
        names += [f"convergence_{arch}.png", f"reconstructions_{arch}.png"]
        names += [f"codes_{arch}_{r['optimizer']}.png" for r in results["runs"]
                  if r["arch"] == arch]
    return names + ["linear_check.png"]


def test_quick_run_writes_every_file_and_valid_pngs(quick_report):
    import matplotlib.image as mpimg

    results = json.loads((quick_report / "results.json").read_text())
    archs = [study.arch_label(a) for a in study.default_archs(DATASET, quick=True)]
    assert list(dict.fromkeys(r["arch"] for r in results["runs"])) == archs
    assert [r["optimizer"] for r in results["runs"]] == ["sgd", "adam", "hf"] * len(archs)
    for name in _expected_figures(results):
        path = quick_report / name
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1024, name
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
    for name in ("report.html", "report.pdf", "results.json"):
        assert (quick_report / name).stat().st_size > 1024


def test_results_json_has_every_field(quick_report):
    results = json.loads((quick_report / "results.json").read_text())
    assert {"settings", "data", "pca", "runs", "winners", "winners_equal_time",
            "linear_check", "total_seconds"} <= set(results)
    assert results["data"]["train_size"] > results["data"]["holdout_size"] > 0
    assert results["pca"]["train_loss"] > 0 and len(results["pca"]["explained_variance_ratio"]) == 2
    for run in results["runs"]:
        final = run["final"]
        for key in ("train_loss", "val_loss", "train_grad_norm", "seconds"):
            assert isinstance(final[key], float) and final[key] >= 0, (run["arch"], key)
        hist = run["history"]
        assert len(hist["val_loss"]) == len(hist["epoch"]) == len(hist["seconds"])
        assert hist["epoch"][-1] == results["settings"]["epochs"]
        hp = run["hyperparameters"]
        if run["optimizer"] == "hf":
            assert run["grid_search"] is None and hp["cg_max_iters"] > 0
        else:
            grid = run["grid_search"]
            assert hp["lr"] == grid["chosen"]["lr"] and hp["batch_size"] == grid["chosen"][
                "batch_size"]
            scored = [c for c in grid["candidates"] if c["holdout_loss"] is not None]
            assert min(scored, key=lambda c: c["holdout_loss"])["lr"] == hp["lr"]
    assert set(results["winners"]) == {r["arch"] for r in results["runs"]}
    check = results["linear_check"]
    assert check["ratio"] >= 1 - 1e-9  # nothing linear beats PCA on its own training data


def test_report_html_shows_every_figure_and_the_formulas(quick_report):
    results = json.loads((quick_report / "results.json").read_text())
    page = (quick_report / "report.html").read_text(encoding="utf-8")
    for name in _expected_figures(results):
        assert f'src="{name}"' in page, name
    for heading in ("Forward pass (2)", "Backward pass (3)", "R-forward pass (4)",
                    "R-backward pass", "Gauss-Newton product", "Grid search", "Results table",
                    "PCA baseline"):
        assert heading in page, heading
    for piece in ("∇<sub>", "ℛ{", '<sup><span class="rm">T</span></sup>', "⊙", "∑"):
        assert piece in page, piece
    assert "mathjax" not in page.lower() and "http" not in page


def test_report_pdf_has_several_pages(quick_report):
    data = (quick_report / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    results = json.loads((quick_report / "results.json").read_text())
    assert pages >= 3 + len(_expected_figures(results))


def test_a_failure_while_writing_the_pdf_keeps_the_previous_file(quick_report, tmp_path):
    """report.pdf goes to a temporary file moved into place when complete: a Ctrl-C during the
    PDF pass leaves the previous report.pdf intact and no temporary file behind."""
    import os

    from matplotlib.figure import Figure

    results = json.loads((quick_report / "results.json").read_text())
    path = tmp_path / "report.pdf"
    document.write_pdf(path, results, [])
    before = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    class Interrupted(KeyboardInterrupt):
        pass

    def draw(renderer, *args, **kwargs):
        raise Interrupted("Ctrl-C while the PDF is written")

    bad = Figure()
    bad.draw = draw
    with pytest.raises(Interrupted):
        document.write_pdf(path, results, [document.FigureEntry("bad.png", "fails", bad)])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]


def test_formulas_name_the_study_hidden_activation(quick_report, tmp_path):
    from matplotlib.mathtext import MathTextParser

    assert document.FORMULAS == document.formulas("tanh")
    parser = MathTextParser("path")
    for name, (what, derivs) in document.HIDDEN_ACTIVATIONS.items():
        model = document.formulas(name)[0][1]
        assert f"$g_l$ is {what} on hidden layers" in model[0][1], name
        assert model[1][1].startswith(f"On hidden layers {derivs};"), name
        for _, content in model[:2]:
            for segment in content.split("$")[1::2]:
                parser.parse(f"${segment}$")
                assert "\\" not in document.tex_to_html(segment), (name, segment)
    assert "g_l^{\\prime\\prime}$ term of the R-backward pass vanishes" in \
        document.formulas("relu")[0][1][1][1]
    results = json.loads((quick_report / "results.json").read_text())
    results["settings"]["activation"] = "sigmoid"
    page = document.write_html(tmp_path / "report.html", results, []).read_text("utf-8")
    assert "is the logistic sigmoid, <span" in page and "is tanh" not in page
    assert "<i>g</i><sup>′</sup> = <i>g</i>\u2009(1 − <i>g</i>)" in page


def test_every_formula_renders_in_mathtext_and_html():
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    for _, lines in document.FORMULAS:
        for kind, content in lines:
            if kind == "math":
                parser.parse(f"${content}$")
                assert "\\" not in document.tex_to_html(content)
            else:
                for segment in content.split("$")[1::2]:
                    parser.parse(f"${segment}$")
    assert document.tex_to_html(r"\mathbf{z}^{l-1}") == "<b>z</b><sup><i>l</i>−1</sup>"
    assert document.tex_to_html(r"\dfrac{1}{n}") == \
        '<span class="frac"><span>1</span><span><i>n</i></span></span>'
    with pytest.raises(ValueError, match="unsupported command"):
        document.tex_to_html(r"\frobnicate")


def _digits_split():
    from pearlnet.data import load_digits

    return study.prepare_data("digits", *load_digits())


def test_pca_loss_is_half_the_discarded_variance():
    split = _digits_split()
    x = split.x_train
    pca = study.fit_pca(x, 2)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    assert pca.loss(x) == pytest.approx(0.5 * np.sum(s[2:] ** 2) / len(x), rel=1e-10)
    assert np.allclose(pca.components @ pca.components.T, np.eye(2), atol=1e-12)


def test_linear_autoencoder_reaches_pca_error():
    """Autoencoder([64, 2], activation="linear") from the study's initialisation, trained with
    Adam, gets within 1% of PCA's training loss and never below it."""
    split = _digits_split()
    pca = study.fit_pca(split.x_train, 2)
    check = study.linear_check(split.x_train, split.x_val, pca, tol=0.01, max_epochs=500)
    assert check["passed"], check["ratio"]
    assert 1 - 1e-9 <= check["ratio"] <= 1.01
    assert check["val_loss"] == pytest.approx(check["pca_val_loss"], rel=0.05)


def test_grid_search_picks_the_lowest_held_out_loss_and_extends_a_winning_edge():
    from pearlnet.models import Autoencoder

    split = _digits_split()
    ae = Autoencoder([64, 2])
    init = ae.init(0)
    grid = study.grid_search(ae, "adam", init, split.x_train, split.x_holdout, [1e-4, 3e-4],
                             [100], epochs=1, extensions=1)
    lrs = [c["lr"] for c in grid["candidates"]]
    assert lrs == [1e-4, 3e-4, 1e-3]  # 3e-4 won at the top edge, so 1e-3 was tried
    best = min(grid["candidates"], key=lambda c: c["holdout_loss"])
    assert grid["chosen"] == {"lr": best["lr"], "batch_size": 100}
    assert study._ladder(3e-4, up=True) == 1e-3 and study._ladder(1e-3, up=False) == 3e-4


def test_missing_mnist_names_the_alternatives_and_exits_1(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["autoencoder", "--dataset", "mnist", "--data-root", str(tmp_path),
                     "--no-download", "--quick", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("pearlnet autoencoder: ") and "Traceback" not in err
    assert "MNIST not found" in err
    assert "--dataset fashion-mnist" in err and "--dataset digits" in err
    assert not out.exists()


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "digits", "--archs", "784-2"],
     "arch 784-2 starts with width 784, but digits images have 64 values"),
    (["--dataset", "fashion-mnist", "--archs", "784-2,64-2"],
     "arch 64-2 starts with width 64, but fashion-mnist images have 784 values"),
    (["--archs", "784-128-3"], "must list at least two positive widths ending in the 2-unit"),
    (["--archs", "784-x-2"], "is not an arch such as 784-128-2"),
    (["--optimizers", "sgd,lbfgs"], "expected a comma-separated list drawn from"),
])
def test_bad_archs_exit_2_before_any_data_is_read(argv, message, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("data was loaded despite bad arguments")

    monkeypatch.setattr(cli, "load_dataset", never)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["autoencoder", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_train_size_larger_than_the_data_exits_2(tmp_path, capsys):
    code = cli.main(["autoencoder", "--dataset", "digits", "--train-size", "5000",
                     "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--train-size 5000" in err and "digits has 1346" in err


def test_first_order_training_compiled_is_bitwise_the_uncompiled_run():
    """The study's minibatch loop runs compiled by default (jit=True): the same parameters
    and losses, bit for bit, as the traced loop."""
    from pearlnet import optim
    from pearlnet.autodiff import tree_flatten
    from pearlnet.models import Autoencoder
    from pearlnet.report import study

    x = np.random.default_rng(0).random((300, 16))
    ae = Autoencoder([16, 8, 2], activation="tanh", dtype=np.float64)
    runs = [study.train_first_order(ae, ae.init(0), optim.Adam(1e-3), x, 64, 2, seed=1,
                                    x_eval=x[:50], jit=jit) for jit in (False, True)]
    (p0, h0), (p1, h1) = runs
    assert h0["val_loss"] == h1["val_loss"] and h0["train_loss"][1:] == h1["train_loss"][1:]
    assert all(np.array_equal(a, b)
               for a, b in zip(tree_flatten(p0)[0], tree_flatten(p1)[0]))
