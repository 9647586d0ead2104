"""README.md stays true: its Python examples run, and CI runs its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _command(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)\n```", README, re.S)
    assert match, f"README.md has no {marker} block"
    return match.group(1).strip()


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_the_two_commands():
    assert _command("main-command") == (
        'pip install -e ".[demo]" && microbbb demo regression --out out/regression'
    )
    assert _command("test-command") == 'pip install -e ".[test]" && python -m pytest'


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    last = [line for line in script.splitlines() if line.strip()][-1]
    assert last == _command("test-command")
