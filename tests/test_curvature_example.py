"""The edge-of-stability example and the `pearlnet curvature` command, on small data."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

import pearlnet  # noqa: E402
from pearlnet import cli  # noqa: E402
from pearlnet.autodiff import hessian, ravel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import edge_of_stability  # noqa: E402


def test_edge_of_stability_measures_the_exact_sharpness_and_writes_its_files(tmp_path):
    x, y = edge_of_stability.load("digits", 120)
    model = edge_of_stability.make_model(x.shape[1], 4, 1, seed=0)
    params = model.params
    flat, unravel = ravel(params)

    def f(w):
        return model._loss(y, model.forward(unravel(w), x)[0])

    dense = np.linalg.eigvalsh(np.asarray(hessian(f)(np.asarray(flat, np.float64))))
    s, _, _ = edge_of_stability.sharpness(model, params, x, y, None)
    assert abs(s - dense[-1]) < 1e-3 * dense[-1]
    out = tmp_path / "eos"
    assert edge_of_stability.main(["--dataset", "digits", "--n", "120", "--width", "8",
                                   "--depth", "1", "--steps", "12", "--every", "6",
                                   "--lrs", "0.05,0.1", "--out", str(out), "--quiet"]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert [r["sharpness_step"] for r in record["runs"]] == [[0, 6, 12]] * 2
    assert all(len(r["loss"]) == 12 and min(r["sharpness"]) > 0 for r in record["runs"])
    pytest.importorskip("matplotlib")
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_curvature_command_writes_the_spectrum(tmp_path, capsys):
    import pearlnet.nn as nn

    model = pearlnet.Model([nn.Flatten(input_shape=(8, 8)), nn.Dense(8, activation="tanh"),
                            nn.Dense(10)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    path = tmp_path / "m.pnl"
    model.save(str(path))
    out = tmp_path / "spec"
    code = cli.main(["curvature", str(path), "--dataset", "digits", "--samples", "100",
                     "--top-k", "2", "--lanczos-steps", "10", "--trace-samples", "6",
                     "--out", str(out), "--quiet"])
    assert code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert set(record["curvatures"]) == {"GGN (Gauss-Newton)", "Hessian"}
    g = record["curvatures"]["GGN (Gauss-Newton)"]
    assert len(g["top_eigenvalues"]) == 2 and g["top_eigenvalues"][0] >= g["top_eigenvalues"][1]
    assert len(g["grid"]) == len(g["density"]) == 1024
    assert "top eigenvalues" in capsys.readouterr().out
    # with its progress bar: the plan is an upper bound, and the bar ends full at what ran
    assert cli.main(["curvature", str(path), "--dataset", "digits", "--samples", "100",
                     "--top-k", "2", "--lanczos-steps", "10", "--trace-samples", "6",
                     "--out", str(out)]) == 0
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    done = re.search(r"(\d+)/(\d+)", last)
    assert "100%" in last and done[1] == done[2], last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pnl", "spec.json", "spec.png"]
    uncompiled = pearlnet.Model([nn.Flatten(input_shape=(8, 8)), nn.Dense(10)], seed=0)
    uncompiled.save(str(tmp_path / "u.pnl"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["curvature", str(tmp_path / "u.pnl"), "--dataset", "digits", "--out",
                  str(out)])
    assert exit_info.value.code == 2
    assert "without compile" in capsys.readouterr().err


def test_the_study_report_curvature_section_is_exact_on_a_small_autoencoder():
    from pearlnet.models import Autoencoder
    from pearlnet.report import document, plots, study

    ae = Autoencoder([12, 3, 2])
    params = ae.init(0)
    x = np.random.default_rng(0).standard_normal((40, 12))
    config = study.StudyConfig(archs=[[12, 3, 2]], optimizers=["sgd"], curvature_top_k=2,
                               curvature_trace_samples=9, curvature_lanczos_steps=10)
    c = study.curvature_at(ae, params, x, config)
    flat, unravel = ravel(params)
    dense_h = np.asarray(hessian(lambda w: ae.data_loss(ae.net(unravel(w), x), x))(flat))
    np.testing.assert_allclose(c["hessian"]["top_eigenvalues"],
                               np.linalg.eigvalsh(dense_h)[::-1][:2], rtol=1e-6)
    assert c["images"] == 40 and c["ggn"]["top_eigenvalues"][0] > 0
    run = {"arch": "12-3-2", "optimizer": "sgd", "curvature": c}
    header, rows = document.curvature_table({"runs": [run]})
    assert len(rows) == 1 and len(rows[0]) == len(header)
    pytest.importorskip("matplotlib")
    assert plots.curvature_figure("12-3-2", [run]) is not None


def test_train_with_kfac_refuses_a_learning_rate(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--dataset", "digits", "--optimizer", "kfac", "--lr", "0.1"])
    assert exit_info.value.code == 2
    assert "K-FAC scales its steps" in capsys.readouterr().err
