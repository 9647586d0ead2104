"""SGD and Adam (microbbb/optim.py) against torch.optim in float64."""

import numpy as np
import pytest
import torch

import microbbb as mb
from microbbb.optim import SGD, Adam


def _run(make_ours, make_theirs, steps=5):
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 2))
    ours = mb.tensor(start, requires_grad=True)
    theirs = torch.tensor(start, requires_grad=True)
    opt_ours, opt_theirs = make_ours([ours]), make_theirs([theirs])
    for _ in range(steps):
        opt_ours.zero_grad()
        (mb.sin(ours) * ours).sum().backward()
        opt_ours.step()
        opt_theirs.zero_grad()
        (torch.sin(theirs) * theirs).sum().backward()
        opt_theirs.step()
    return ours.data, theirs.detach().numpy()


@pytest.mark.parametrize(
    "make_ours, make_theirs",
    [
        (lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            lambda p: SGD(p, lr=0.1, momentum=0.9),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        ),
        (lambda p: Adam(p, lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
        (
            lambda p: Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
        ),
    ],
)
def test_steps_match_torch(make_ours, make_theirs):
    ours, theirs = _run(make_ours, make_theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_state_round_trip_continues_identically():
    params = [mb.tensor(np.ones(3), requires_grad=True)]
    opt = Adam(params, lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (params[0] ** 2).sum().backward()
        opt.step()
    state = {k: np.array(v) for k, v in opt.state_dict().items()}
    clone = [mb.tensor(params[0].data, requires_grad=True)]
    other = Adam(clone, lr=0.1)
    other.load_state_dict(state)
    for p, o in ((params, opt), (clone, other)):
        o.zero_grad()
        (p[0] ** 2).sum().backward()
        o.step()
    np.testing.assert_array_equal(params[0].data, clone[0].data)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no parameters"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad=True"):
        SGD([mb.tensor(1.0)], lr=0.1)
    with pytest.raises(ValueError, match="positive"):
        Adam([mb.tensor(1.0, requires_grad=True)], lr=0.0)


def _param():
    return [mb.tensor(np.ones(2), requires_grad=True)]


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: SGD(_param(), lr=float("inf")), ValueError, r"lr must be a positive finite"
                                                             r" number \(the step size\), got inf"),
        (lambda: Adam(_param(), lr=float("nan")), ValueError, r"lr must be .*got nan"),
        (lambda: SGD(_param(), lr=-0.1), ValueError, r"lr must be .*got -0\.1"),
        (lambda: Adam(_param(), lr="0.1"), TypeError, r"lr must be .*got '0\.1' \(a str\)"),
        (lambda: SGD(_param(), lr=True), TypeError, r"lr must be .*got True \(a bool\)"),
        (lambda: SGD(_param(), lr=0.1, momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"
                                                                  r" .*got 1\.0"),
        (lambda: SGD(_param(), lr=0.1, momentum=-0.5), ValueError, r"momentum .*got -0\.5"),
        (lambda: SGD(_param(), lr=0.1, momentum=float("nan")), ValueError, r"momentum .*got nan"),
        (lambda: Adam(_param(), betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"
                                                               r" .*got 1\.0"),
        (lambda: Adam(_param(), betas=(float("nan"), 0.999)), ValueError, r"betas\[0\] .*got nan"),
        (lambda: Adam(_param(), betas=(0.9,)), ValueError, r"betas must be a pair"),
        (lambda: Adam(_param(), eps=0.0), ValueError, r"eps must be a positive finite number"
                                                      r" .*got 0\.0"),
        (lambda: Adam(_param(), eps=float("inf")), ValueError, r"eps must be .*got inf"),
    ],
)  # fmt: skip
def test_bad_hyperparameters_are_refused_by_name(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_state_of_other_shapes_is_refused_before_anything_changes():
    params = [mb.tensor(np.ones(3), requires_grad=True)]
    opt = Adam(params, lr=0.1)
    (params[0] ** 2).sum().backward()
    opt.step()
    state = {k: np.array(v) for k, v in opt.state_dict().items()}
    state["v.0"] = np.zeros(1)  # would be broadcast into v
    other = Adam([mb.tensor(np.ones(3), requires_grad=True)], lr=0.1)
    with pytest.raises(
        ValueError, match=r"v\.0 has shape \(1,\), but parameter 0 has shape \(3,\)"
    ):
        other.load_state_dict(state)
    assert other.steps == 0 and not other.m[0].any()
