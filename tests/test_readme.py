"""The README and the presets stay true: the set-up commands, the generated config reference and
preset comments, the presets."""

from __future__ import annotations

from pathlib import Path

from scaling.cli.config_docs import annotate_preset, config_reference, preset_files
from scaling.config_loading import list_presets

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_readme_config_reference_is_current():
    begin, end = "<!-- config-reference:begin -->\n", "<!-- config-reference:end -->"
    block = README.split(begin, 1)[1].split(end, 1)[0]
    assert block == config_reference(), "run: .venv/bin/python scripts/update_readme_reference.py"


def test_readme_lists_every_model_preset():
    for name in list_presets("model"):
        assert f"`{name}`" in README, name


def test_preset_comments_are_generated_from_the_schema():
    files = preset_files(Path(__file__).resolve().parents[1] / "configs")
    assert {group for _, group in files} == {"model", "data"} and len(files) >= 7
    for path, group in files:
        text = path.read_text()
        fix = "run .venv/bin/python scripts/update_readme_reference.py"
        assert annotate_preset(text, group) == text, f"{path}: {fix}"
    assert "activation: swiglu  # str: MLP activation; one of swiglu | gelu | relu2\n" in \
        (Path(__file__).resolve().parents[1] / "configs" / "model" / "llama-60m.yaml").read_text()
