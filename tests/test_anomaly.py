"""Anomaly mode (microbbb/engine/anomaly.py): the first NaN or inf names its op."""

import numpy as np
import pytest

import microbbb as mb
from microbbb import AnomalyError

# the non-finite values are the point of these tests; numpy's warnings about them are noise
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_forward_anomaly_names_op_position_and_inputs():
    rho = mb.tensor([1.0, 1000.0], requires_grad=True, name="rho")
    with mb.detect_anomaly():
        scaled = rho * 1.0  # tape position 1
        with pytest.raises(AnomalyError) as info:
            mb.log(1 + mb.exp(scaled))  # the naive softplus: exp overflows at position 2
    error = info.value
    assert error.op == "exp" and error.phase == "forward" and error.position == 2
    text = str(error)
    assert "forward of op 'exp' (tape position 2)" in text
    assert "output shape (2,)" in text and "1 inf" in text
    assert "input 0: shape (2,), finite values in [1, 1000]" in text
    assert "softplus" in text  # the hint points to the stable op


def test_forward_anomaly_reports_a_nan_input_at_the_first_op_that_uses_it():
    x = mb.tensor([1.0, np.nan], requires_grad=True, name="x")
    with mb.detect_anomaly(), pytest.raises(AnomalyError, match=r"input 0 'x'.*1 NaN"):
        x * 2


def test_stable_version_passes_anomaly_mode():
    rho = mb.tensor([1.0, 1000.0, -1000.0], requires_grad=True)
    with mb.detect_anomaly():
        sigma = mb.softplus(rho)
        sigma.sum().backward()
    np.testing.assert_allclose(sigma.data, [np.log1p(np.e), 1000.0, 0.0], rtol=1e-15)


def test_backward_anomaly_names_the_forward_op():
    x = mb.tensor([0.0, 4.0], requires_grad=True, name="x")
    with mb.detect_anomaly():
        y = mb.sqrt(x * 1.0)  # finite forward: sqrt(0) = 0, but its derivative is inf
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    error = info.value
    assert error.op == "sqrt" and error.phase == "backward" and error.position == 2
    text = str(error)
    assert "backward of op 'sqrt' (the forward op at tape position 2)" in text
    assert "VJP for input 0: g / (2 * out)" in text
    assert "1 inf" in text


def test_without_anomaly_mode_nan_passes_silently_and_the_state_is_restored():
    x = mb.tensor([-1.0], requires_grad=True)
    with mb.detect_anomaly():
        pass
    with np.errstate(invalid="ignore"):
        y = mb.log(x)  # no error outside detect_anomaly
    assert np.isnan(y.data).all()


def test_anomaly_outside_recording_is_reported_as_not_recorded():
    with mb.detect_anomaly(), pytest.raises(AnomalyError, match="not recorded"):
        mb.log(mb.tensor([0.0]))
