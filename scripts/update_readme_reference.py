"""Regenerate the config reference between the markers in README.md (run after changing scaling/config.py)."""

from pathlib import Path

from scaling.cli.config_docs import config_reference

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
head, rest = text.split(BEGIN, 1)
_, tail = rest.split(END, 1)
readme.write_text(f"{head}{BEGIN}\n{config_reference()}{END}{tail}")
print(f"updated {readme}")
