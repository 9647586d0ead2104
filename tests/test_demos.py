"""The demos run end to end and write what they promise."""

import shutil
import struct

import pytest

from microbbb.demos import gradient_flow

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


@needs_dot
def test_gradient_flow_demo(tmp_path):
    lines = []
    result = gradient_flow.run(str(tmp_path), echo=lines.append)
    assert result["agree"] and result["torch"] and result["worst"] < 1e-9
    assert result["loss_after"] < result["loss"]  # the SGD step went downhill
    for name in ["gradient_flow.svg", "gradient_flow.png", "gradient_flow_full.svg",
                 "tape.txt", "report.txt"]:  # fmt: skip
        assert (tmp_path / name).stat().st_size > 1000, name
    png = (tmp_path / "gradient_flow.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert 800 < width < 5000 and 800 < height < 5000, (width, height)
    text = "\n".join(lines)
    assert "df/dw * eps * sigmoid(rho)" in text and "(torch)" in text and "they agree" in text
    assert "reverse (adjoint) trace" in (tmp_path / "tape.txt").read_text()


def test_regression_demo_shows_more_uncertainty_away_from_the_data(tmp_path):
    from microbbb.demos import regression

    # the demo's own settings (1000 epochs, ~10 s): the claim checked is the one it reports
    figures = regression.run(str(tmp_path), echo=lambda line: None, progress=False)
    assert figures["std_ratio"] > 1.4, figures
    assert figures["epistemic_outside"] > 2 * figures["epistemic_inside"], figures
    assert figures["bbb_rmse"] < 0.35 and figures["mlp_rmse"] < 0.35  # noise alone: ~0.28
    png = (tmp_path / "regression.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "ratio outside / inside" in (tmp_path / "report.txt").read_text()


def test_command_line_lists_and_runs_demos(tmp_path, capsys):
    from microbbb.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "regression, classification, gradient-flow, question" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["demo", "nonsense"])
    assert main(["demo", "gradient-flow", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "gradient_flow.svg").exists()
