"""The config reference, generated from the schema: every key with its type, default and doc comment.

The comment after each field in :mod:`scaling.config` is its documentation; this module reads it
back from the source so the README's reference (``scaling config docs``) can never drift from
the code. A test checks that the README holds the current reference.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize

from scaling import config as schema


def _field_comments(cls: type) -> dict[str, str]:
    """Map field name → the trailing ``# comment`` on its line in the class source."""
    comments: dict[str, str] = {}
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline)
    line_first_name: dict[int, str] = {}
    for tok in tokens:
        row = tok.start[0]
        if tok.type == tokenize.NAME and row not in line_first_name:
            line_first_name[row] = tok.string
        elif tok.type == tokenize.COMMENT and row in line_first_name:
            comments[line_first_name[row]] = tok.string.lstrip("# ").strip()
    return comments


def _type_name(f: dataclasses.Field) -> str:
    return str(f.type).replace("typing.", "").replace("| None", "or null").strip()


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "[]" if value == [] else repr(value)
    value = f.default
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def config_reference() -> str:
    """Markdown tables, one per config group, of every key: type, default and meaning."""
    parts = []
    for group in dataclasses.fields(schema.Config):
        cls = type(group.default_factory())
        parts.append(f"**`{group.name}`** — {inspect.getdoc(cls).splitlines()[0]}\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        comments = _field_comments(cls)
        for f in dataclasses.fields(cls):
            doc = comments.get(f.name, "").replace("|", "\\|")
            parts.append(f"| `{group.name}.{f.name}` | {_type_name(f)} | `{_default(f)}` | {doc} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
