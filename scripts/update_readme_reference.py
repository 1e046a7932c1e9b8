"""Regenerate what is derived from the config schema (run after changing scaling/config.py): the config
reference between the markers in README.md and the trailing comments of the preset YAML files."""

from pathlib import Path

from scaling.cli.config_docs import annotate_preset, config_reference, preset_files

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"

root = Path(__file__).resolve().parents[1]
readme = root / "README.md"
text = readme.read_text()
head, rest = text.split(BEGIN, 1)
_, tail = rest.split(END, 1)
readme.write_text(f"{head}{BEGIN}\n{config_reference()}{END}{tail}")
print(f"updated {readme}")
for path, group in preset_files(root / "configs"):
    text = path.read_text()
    if annotate_preset(text, group) != text:
        path.write_text(annotate_preset(text, group))
        print(f"updated {path}")
