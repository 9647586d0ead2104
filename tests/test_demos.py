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
