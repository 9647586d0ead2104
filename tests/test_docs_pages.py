"""The documentation pages run: every ```python block of the tutorial-style pages executes,
in order, in one namespace per page; and every relative link in docs/ (Markdown pages and
the notebooks' Markdown cells) points to a file."""

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = [
    "bbb_gradients.md",
    "tutorial.md",
    "to_pytorch.md",
    "extending.md",
    "question.md",
    "explorer.md",
    "gradient_variance.md",
    "uncertainty.md",
    "making_bbb_work.md",
]

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
# [text](target) and ![alt](target); the target ends at whitespace or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
FENCED = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def run_blocks(page: str, blocks: list[str]) -> None:
    """Execute the blocks in order in one namespace; name the failing block."""
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page} (python block {number})", "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            first_line = block.strip().splitlines()[0]
            raise AssertionError(
                f"{page}: python block {number} of {len(blocks)} (starting {first_line!r})"
                f" raised {type(error).__name__}: {error}"
            ) from error


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the tutorial makes NaN on purpose
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert blocks, f"{page} has no ```python blocks"
    monkeypatch.chdir(tmp_path)  # files the examples write land in a temporary folder
    run_blocks(page, blocks)


def relative_links(text: str) -> list[str]:
    text = FENCED.sub("", text)  # links inside code are code, not links
    text = INLINE_CODE.sub("", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and anchors within the page
        targets.append(target)
    return targets


MARKDOWN = sorted(DOCS.rglob("*.md")) + sorted(DOCS.rglob("*.ipynb"))


def markdown_of(page: Path) -> str:
    """The Markdown of a page, or of a notebook's Markdown cells."""
    text = page.read_text(encoding="utf-8")
    if page.suffix != ".ipynb":
        return text
    cells = json.loads(text)["cells"]
    return "\n\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in cells
        if cell["cell_type"] == "markdown"
    )


@pytest.mark.parametrize("page", MARKDOWN, ids=[str(p.relative_to(DOCS)) for p in MARKDOWN])
def test_relative_links_point_to_files(page):
    broken = []
    for target in relative_links(markdown_of(page)):
        path = unquote(target.split("#", 1)[0])
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(DOCS)}: links to missing files: {broken}"


# --- the checks themselves must be able to fail ---------------------------------------------


def test_a_failing_block_fails():
    blocks = python_blocks("```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2\n```\n")
    assert len(blocks) == 2
    with pytest.raises(AssertionError, match="python block 2 of 2"):
        run_blocks("example.md", blocks)


def test_blocks_share_one_namespace_and_other_languages_are_skipped():
    text = "```python\nx = 1\n```\n```bash\nexit 1\n```\n```python\nassert x == 1\n```\n"
    blocks = python_blocks(text)
    assert len(blocks) == 2
    run_blocks("example.md", blocks)


def test_link_extraction():
    text = (
        "[a](tutorial.md) [b](https://example.org) [c](#anchor) ![d](img/x.png)"
        " [e](derivatives.md#logaddexp) `[f](not-a-link.md)`\n```\n[g](code.md)\n```\n"
    )
    assert relative_links(text) == ["tutorial.md", "img/x.png", "derivatives.md#logaddexp"]
