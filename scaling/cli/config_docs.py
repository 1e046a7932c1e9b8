"""The config reference and the preset comments, generated from the schema.

Each field of :mod:`scaling.config` documents itself: its comment (after it, or on the lines just
above it) says what it means, and its metadata (:func:`scaling.config.choice`,
:func:`scaling.config.checked`) says which values it takes. This module reads both back, so the
README's reference (``scaling config docs``) and the trailing comments of the preset YAML files can
never drift from the code. Tests check that the README and the presets hold the current text;
``scripts/update_readme_reference.py`` rewrites both.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
from pathlib import Path

from scaling import config as schema


def _field_comments(cls: type) -> dict[str, str]:
    """Map field name → its comment: the trailing ``# comment`` on its line, else the comment lines
    directly above it."""
    comments: dict[str, str] = {}
    line_first_name: dict[int, str] = {}
    above: dict[int, str] = {}  # row → text of a comment that is alone on its line
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline):
        row = tok.start[0]
        if tok.type == tokenize.NAME and row not in line_first_name:
            line_first_name[row] = tok.string
        elif tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("# ").strip()
            if row in line_first_name:
                comments[line_first_name[row]] = text
            else:
                above[row] = text
    for row, name in line_first_name.items():
        block, r = [], row - 1
        while r in above:
            block.insert(0, above[r])
            r -= 1
        if block and name not in comments:
            comments[name] = " ".join(block)
    return comments


def _type_name(f: dataclasses.Field) -> str:
    name = str(f.type).replace("typing.", "").replace("| None", "or null").replace(" | ", " or ").strip()
    if schema.field_rule(f) and schema.field_choices(f):  # a number or a word: name the words
        name = name.replace(" or str", " or " + " or ".join(schema.field_choices(f)))
    return name


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "[]" if value == [] else repr(value)
    value = f.default
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def field_doc(f: dataclasses.Field, comment: str) -> str:
    """A field's meaning followed by the values it takes, as declared on the field."""
    choices, rule = schema.field_choices(f), schema.field_rule(f)
    if choices and rule:
        return f"{comment}; {' or '.join(choices)} or a {rule} number"
    if choices:
        return f"{comment}; one of {' | '.join(choices)}"
    if rule:
        return f"{comment}; must be {rule}"
    return comment


def _groups() -> list[tuple[str, type]]:
    return [(g.name, type(g.default_factory())) for g in dataclasses.fields(schema.Config)]


def config_reference() -> str:
    """Markdown tables, one per config group, of every key: type, default and meaning."""
    parts = []
    for group, cls in _groups():
        parts.append(f"**`{group}`** — {inspect.getdoc(cls).splitlines()[0]}\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        comments = _field_comments(cls)
        for f in dataclasses.fields(cls):
            doc = field_doc(f, comments.get(f.name, "")).replace("|", "\\|")
            parts.append(f"| `{group}.{f.name}` | {_type_name(f)} | `{_default(f)}` | {doc} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def preset_comment(group: str, key: str) -> str | None:
    """The trailing comment a preset's ``key`` line carries: ``<type>: <meaning> [<values>]``."""
    cls = dict(_groups()).get(group)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
    if key not in fields:
        return None
    f = fields[key]
    return f"{_type_name(f)}: {field_doc(f, _field_comments(cls).get(key, ''))}"


_KEY_LINE = re.compile(r"^(?P<key>[a-z_]+):(?P<value>[^#]*?)\s*(#.*)?$")


def annotate_preset(text: str, group: str) -> str:
    """The preset YAML ``text`` of config group ``group`` with each top-level key's trailing comment
    replaced by :func:`preset_comment` (other lines unchanged)."""
    out = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        comment = preset_comment(group, match["key"]) if match else None
        out.append(f"{match['key']}:{match['value']}  # {comment}" if comment else line)
    return "\n".join(out) + "\n"


def preset_files(root: Path) -> list[tuple[Path, str]]:
    """The preset YAML files under ``root`` (a ``configs/`` folder) with their config group."""
    return [(path, group) for group, _ in _groups() for path in sorted((root / group).glob("*.yaml"))]
