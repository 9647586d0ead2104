"""docs/derivatives.md agrees with the code: one section per primitive, quoting its rules,
and a worked example whose numbers are what microbbb computes."""

import re
from pathlib import Path

import pytest

import microbbb as mb

DOC = (Path(__file__).resolve().parents[1] / "docs" / "derivatives.md").read_text()
NAMES = [p.name for p in mb.PRIMITIVES]


def primitive_sections() -> dict[str, str]:
    """'### `name`' -> the text under that heading, up to the next '##' or '###' heading."""
    parts = re.split(r"^(#{2,3} .*)$", DOC, flags=re.M)
    sections = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.fullmatch(r"### `(\w+)`", heading)
        if match:
            assert match[1] not in sections, f"two sections for {match[1]}"
            sections[match[1]] = body
    return sections


def test_one_section_per_primitive_in_table_order():
    sections = primitive_sections()
    assert not set(NAMES) - set(sections), "primitives without a section"
    assert not set(sections) - set(NAMES), "sections for ops that are not primitives"
    assert list(sections) == NAMES


@pytest.mark.parametrize("op", mb.PRIMITIVES, ids=NAMES)
def test_section_quotes_every_rule(op):
    section = primitive_sections()[op.name]
    for rule in op.rules:
        assert f"`{rule}`" in section, f"{op.name}: rule {rule!r} is not quoted"


# a table row of the worked example: | $v_{-1}$ | ... | 2.0000 | or | $\bar v_0$ | ... | 1.7163 |
ROW = re.compile(r"^\| \$(\\bar )?v_\{?(-?\d+)\}?\$ \|.*\| (-?\d+\.\d{4}) \|$", re.M)


def test_worked_example_numbers():
    documented = {}
    for bar, i, value in ROW.findall(DOC):
        key = ("adjoint" if bar else "value", int(i))
        assert key not in documented, f"two rows for {key}"
        documented[key] = value

    x1 = mb.tensor(2.0, requires_grad=True)
    x2 = mb.tensor(5.0, requires_grad=True)
    v = {-1: x1, 0: x2, 1: mb.log(x1), 2: x1 * x2, 3: mb.sin(x2)}
    v[4] = v[1] + v[2]
    v[5] = v[4] - v[3]
    for t in v.values():
        t.retain_grad()
    v[5].backward()
    computed = {}
    for i, t in v.items():
        computed["value", i] = f"{t.item():.4f}"
        computed["adjoint", i] = f"{float(t.grad):.4f}"

    assert documented == computed
    assert computed["value", 5] == "11.6521"  # f
    assert (computed["adjoint", -1], computed["adjoint", 0]) == ("5.5000", "1.7163")  # grad f
