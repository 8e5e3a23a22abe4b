"""The README's two set-up commands are the ones CI runs, so the documented commands cannot rot."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", setup, flags=re.S)]


def test_readme_gives_exactly_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("streamlit run dashboard/app.py")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in [line.strip() for line in ci]


def test_requirements_files_named_by_the_commands_exist() -> None:
    for command in _readme_commands():
        for name in re.findall(r"-r (\S+)", command):
            assert (ROOT / name).is_file(), name


def test_readme_library_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    example = textwrap.dedent(re.findall(r"```python\n(.*?)```", text, flags=re.S)[0])
    namespace: dict = {}
    exec(compile(example, "README example", "exec"), namespace)  # our own README, not user input
    heatmap = namespace["maps"]["gradcam"].heatmap
    assert heatmap.shape == namespace["image"].shape[:2]
    assert heatmap.max() == 1.0
