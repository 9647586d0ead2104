"""The lecture notebooks in docs/notebooks run top to bottom, are stored without outputs,
and each finishes within its time budget."""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "docs" / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
BUDGET = 60.0  # seconds per notebook, kernel start included: a budget, not a benchmark
CELL_TIMEOUT = 120  # seconds; a hung cell fails instead of blocking CI


def stored_outputs(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    return [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


# Run first in each notebook: every figure a cell shows (plt.show, or left open at the end of
# the cell) is checked for an x and a y label on each of its visible axes (images drawn with
# axis("off") have none to label). The last cell fails on any axis without one.
LABEL_CHECK = """
import matplotlib.pyplot as _plt
from IPython import get_ipython as _get_ipython

_unlabelled, _checked = [], set()


def _check_figures():
    for number in _plt.get_fignums():
        figure = _plt.figure(number)
        if id(figure) in _checked:
            continue
        _checked.add(id(figure))
        for ax in figure.axes:
            if ax.axison and ax.get_visible() and not (ax.get_xlabel() and ax.get_ylabel()):
                _unlabelled.append(
                    f"{ax.get_title()!r}: x label {ax.get_xlabel()!r}, y label {ax.get_ylabel()!r}"
                )


def _show_checked(*args, _show=_plt.show, **kwargs):
    _check_figures()
    return _show(*args, **kwargs)


_plt.show = _show_checked
_get_ipython().events.register("post_execute", _check_figures)
"""
LABEL_VERDICT = """
_check_figures()
assert _checked, "no figure was checked"
assert not _unlabelled, "axes without a label: " + "; ".join(_unlabelled)
"""


def with_label_check(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook that checks the axis labels of every figure it shows."""
    checked = nbformat.from_dict(notebook)
    checked.cells = [
        nbformat.v4.new_code_cell(LABEL_CHECK),
        *notebook.cells,
        nbformat.v4.new_code_cell(LABEL_VERDICT),
    ]
    return checked


def execute(notebook: nbformat.NotebookNode, workdir: Path) -> float:
    """Run every cell with the python3 kernel in ``workdir``; return the seconds it took."""
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.monotonic()
    client.execute()
    return time.monotonic() - start


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
    assert not stored_outputs(notebook), (
        f"{path.name}: code cells {stored_outputs(notebook)} were stored with outputs;"
        " clear them (jupyter nbconvert --clear-output --inplace) before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_top_to_bottom_within_budget(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    plots = any("plt." in "".join(cell.source) for cell in notebook.cells)
    try:
        seconds = execute(with_label_check(notebook) if plots else notebook, tmp_path)
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}")
    assert seconds < BUDGET, f"{path.name} took {seconds:.1f} s; the budget is {BUDGET:.0f} s"


# --- the checks themselves must be able to fail ---------------------------------------------


def small_notebook(*sources: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


def test_an_error_in_a_cell_fails(tmp_path):
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        execute(small_notebook("x = 1", "1 / 0"), tmp_path)


def test_stored_outputs_are_detected():
    notebook = small_notebook("print(1)", "2")
    assert stored_outputs(notebook) == []
    notebook.cells[1].execution_count = 1
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    assert stored_outputs(notebook) == [0, 1]


def test_the_working_directory_is_the_given_folder(tmp_path):
    execute(small_notebook("open('here.txt', 'w').write('x')"), tmp_path)
    assert (tmp_path / "here.txt").exists()


def test_an_axis_without_a_label_fails(tmp_path):
    plot = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\n"
    labelled = plot + "ax.set(xlabel='x', ylabel='y')\nplt.show()"
    execute(with_label_check(small_notebook("%matplotlib inline", labelled)), tmp_path)
    image = plot + "ax.axis('off')\nplt.show()"  # an image: nothing to label
    execute(with_label_check(small_notebook(labelled, image)), tmp_path)
    for unlabelled in [plot + "ax.set_xlabel('x')\nplt.show()", plot + "ax.set_ylabel('y')"]:
        with pytest.raises(CellExecutionError, match="axes without a label"):  # shown or not
            execute(with_label_check(small_notebook(unlabelled)), tmp_path)
