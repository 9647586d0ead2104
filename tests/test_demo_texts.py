"""The demos' report texts (microbbb/demos/templates/*.txt) and the numbers that fill them
agree: every field a section names is given a number, every number given is used, and
every section is filled. Checked on each demo's own numbers from a short run, with the
numbers varied so that the sections printed only sometimes (a warning, no torch) are
filled too. And the rules of Template, on small examples."""

import copy
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

from microbbb.demos import bandit, classification, gradient_flow, mnist, question, regression
from microbbb.demos.common import TEMPLATES, Template

ROOT = Path(__file__).resolve().parents[1]


class Recording(Template):
    """A Template that notes which numbers each fill was given."""

    def __init__(self, template: Template):
        super().__init__("", template.width, template.name)
        self.sections = template.sections
        self.filled: list[tuple[str, set]] = []

    def fill(self, section, values, wrap=True):
        self.filled.append((section, set(values)))
        return super().fill(section, values, wrap)


def disagreements(template: Recording) -> list[str]:
    """What does not agree between the template and the numbers it was filled with."""
    problems = []
    for section, given in template.filled:
        named = template.fields(section)
        missing, unused = sorted(named - given), sorted(given - named)
        if missing:
            problems.append(f"[{section}] names numbers it is not given: {missing}")
        if unused:
            problems.append(f"[{section}] is given numbers it does not use: {unused}")
    never = set(template.sections) - {section for section, _ in template.filled}
    if never:
        problems.append(f"sections never filled: {sorted(never)}")
    return sorted(set(problems))


def fill_all(demo: str, width, variants: list) -> Recording:
    """Fill the demo's report from each (report_text, numbers, files) in ``variants``."""
    template = Recording(Template.of(demo, width))
    for report_text, numbers, files in variants:
        report_text(numbers, files, template)
    return template


# --- the demos --------------------------------------------------------------------------


def test_regression_text_and_numbers_agree():
    variants = [
        (regression.report_text, regression.compute(2, 50, progress=False, noise=noise), ["a", "b"])
        for noise in ("sd", "variance")
    ]
    assert disagreements(fill_all("regression", None, variants)) == []


def test_classification_text_and_numbers_agree():
    numbers = classification.compute(epochs=1, cancer_epochs=1, progress=False)
    variants = [(classification.report_text, numbers, ["a.png", "b.png", "c.png"])]
    assert disagreements(fill_all("classification", None, variants)) == []


def test_gradient_flow_text_and_numbers_agree():
    numbers = gradient_flow.compute(seed=0)
    assert numbers["agree"] and numbers["torch"]
    without_torch = copy.copy(numbers)
    without_torch |= {"agree": False, "torch": False}
    without_torch["parameters"] = [p | {"torch": None} for p in numbers["parameters"]]
    files = {"drawings": ["a.svg", "a.png", "b.svg"], "tape": "tape.txt", "explorer": "e.html"}
    variants = [(gradient_flow.report_text, n, files) for n in (numbers, without_torch)]
    assert disagreements(fill_all("gradient_flow", None, variants)) == []


def test_question_text_and_numbers_agree():
    numbers = question.compute(seed=0, steps=20)
    mistakes = numbers["mistakes"]
    assert mistakes["learning_rates"]["checks"] == {"lr_too_small": "warning"}
    assert mistakes["wrong_signs"]["checks"] == {"wrong_signs": "BBBLoss parts"}
    quiet = copy.deepcopy(numbers)  # nothing raised, no warnings
    quiet_mistakes = quiet["mistakes"]
    for mistake in quiet_mistakes.values():
        for attempt in mistake["attempts"].values():
            attempt |= {"caught": "not caught", "message": None, "op": None}
        mistake["checks"] = {key: "not caught" for key in mistake.get("checks", {})}
    variants = [(question.report_text, n, "picture.png") for n in (numbers, quiet)]
    assert disagreements(fill_all("question", question.WIDTH, variants)) == []


def test_mnist_text_and_numbers_agree():
    numbers = mnist.compute(epochs=1, n_train=100, n_samples=2, n_test=100, progress=False)
    variants = [(mnist.report_text, numbers, ["a.png", "b.png", "c.png"])]
    assert disagreements(fill_all("mnist", None, variants)) == []


def test_bandit_text_and_numbers_agree():
    numbers = bandit.compute(steps=5, seeds=(0, 1), hidden=4, progress=False)
    variants = [(bandit.report_text, numbers, ["a.png"])]
    assert disagreements(fill_all("bandit", None, variants)) == []


# --- the check can fail ------------------------------------------------------------------------


def test_a_field_without_a_number_and_a_number_without_a_field_are_found():
    template = Recording(Template("notes\n[a]\nR^2 {r2:.3f}, best {r2_best:.3f}\n[b]\nno fields\n"))
    with pytest.raises(KeyError, match="r2_best"):  # a missing number stops the demo itself
        template.fill("a", {"r2": 0.5})
    template.fill("a", {"r2": 0.5, "r2_best": 0.7, "r3": 0.1})  # an unused one does not
    assert disagreements(template) == [
        "[a] is given numbers it does not use: ['r3']",
        "[a] names numbers it is not given: ['r2_best']",
        "sections never filled: ['b']",
    ]


def test_a_field_renamed_in_a_real_template_is_found():
    numbers = regression.compute(epochs=2, n_points=50, progress=False)
    template = Recording(Template.of("regression"))
    lines = template.sections["report"]
    template.sections["report"] = [line.replace("{std_ratio:.2f}", "{ratio:.2f}") for line in lines]
    with pytest.raises(KeyError, match="ratio"):
        regression.report_text(numbers, ["a.png", "b.png"], template)


def test_every_template_ships_with_the_package():
    """pyproject.toml's package data covers every template (a non-editable install needs it)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = re.search(r'^"microbbb\.demos" = \[(.*)\]$', pyproject, re.M)
    assert listed, "pyproject.toml: no package data for microbbb.demos"
    patterns = re.findall(r'"([^"]+)"', listed.group(1))
    names = sorted(path.name for path in Path(TEMPLATES).iterdir())
    assert names == [
        "bandit.txt",
        "classification.txt",
        "gradient_flow.txt",
        "mnist.txt",
        "question.txt",
        "regression.txt",
    ]
    for name in names:
        assert any(fnmatch(f"templates/{name}", pattern) for pattern in patterns), name


def test_the_pages_the_templates_name_exist():
    for path in sorted(Path(TEMPLATES).iterdir()):
        for page in re.findall(r"\bdocs/[\w./-]*\w", path.read_text(encoding="utf-8")):
            assert (ROOT / page).is_file(), f"{path.name} names {page}, which does not exist"


# --- the rules of Template ---------------------------------------------------------------------


def test_sections_notes_and_trailing_blank_lines():
    template = Template("a note {not a field}\n[one]\n\nfirst\n\n\n[two]\nsecond\n")
    assert template.sections == {"one": ["", "first"], "two": ["second"]}
    assert template.fill("one", {}) == "\nfirst"


def test_blocks_are_placed_as_they_are_and_empty_blocks_leave_no_line():
    template = Template("[s]\ntable:\n    {rows}\n{nothing}\nend {x:.2f}\n", width=20)
    long_row = "a row far longer than the width"
    text = template.fill("s", {"rows": f"{long_row}\nrow 2", "nothing": "", "x": 1})
    assert text == f"table:\n    {long_row}\n    row 2\nend 1.00"


def test_a_value_of_several_lines_goes_on_under_its_field():
    template = Template("[s]\n  said:  {error} (end)\n")
    text = template.fill("s", {"error": "ValueError: one\n  two"})
    assert text == "  said:  ValueError: one\n           two (end)"


def test_long_lines_wrap_under_their_text_or_label():
    lines = ["  plain paragraph {words}", "  mistake:   {words}", "(a) {words}", "  short: {x}"]
    template = Template("\n".join(["[s]", *lines]), width=30)
    words = "one two three four five six seven"
    assert template.fill("s", {"words": words, "x": 1}).splitlines() == [
        "  plain paragraph one two",
        "    three four five six seven",
        "  mistake:   one two three",
        "               four five six",
        "               seven",
        "(a) one two three four five",
        "      six seven",
        "  short: 1",
    ]
    assert template.fill("s", {"words": words, "x": 1}, wrap=False).splitlines()[0] == (
        f"  plain paragraph {words}"
    )
