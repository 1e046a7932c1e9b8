"""The shipped offline task ``stdlib-nextline``: the real next line of a Python function among four.

Each item shows the last lines of a function from the interpreter's standard library (up to the
line to predict) and offers four lines: the one that follows in the source and three reorderings of
its own space-separated words, at the same indentation. Every choice has the same bytes and the
same tokens in another order, so length and token frequencies give nothing away: a model that
knows only which tokens are common scores chance (25 %), and accuracy rises with what it learned
of code's structure and of the context. (Distractor lines drawn from other functions leave models
small enough for a CPU at chance: they rank lines by their own frequency, not by the context.)
Built deterministically from a list of files and a seed; ``scripts/build_stdlib_task.py`` writes
the file the package ships.

The items come from the same library the built-in corpus trains on, so the task measures how well a
model learned that code, memorisation included; it is a downstream metric that needs no download,
not a benchmark to compare with published numbers.
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

CONTEXT_LINES = 8  # lines of the function shown before the line to predict
MIN_CHARS, MAX_CHARS = 12, 72  # length of a candidate line without its indentation
MIN_WORDS = 4  # space-separated words of a line to predict (enough distinct reorderings)
N_CHOICES = 4


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _docstring_lines(fn: ast.AST) -> set[int]:
    body = getattr(fn, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        return set(range(body[0].lineno, body[0].end_lineno + 1))
    return set()


def _candidate(line: str) -> bool:
    text = line.strip()
    return (MIN_CHARS <= len(text) <= MAX_CHARS and not text.startswith(("#", '"', "'")) and "\t" not in line
            and "  " not in text and text.isascii())


def function_targets(source: str) -> list[tuple[list[str], str]]:
    """(context lines, next line) pairs: one per function of ``source`` with a candidate line past its
    third line (the first such line at or after the function's middle)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.end_lineno - fn.lineno < 4:
            continue
        skip = _docstring_lines(fn)
        first, last = fn.lineno + 2, fn.end_lineno  # 1-based line numbers
        middle = (first + last) // 2
        for number in range(middle, last + 1):
            line = lines[number - 1]
            if number not in skip and _candidate(line):
                start = max(fn.lineno, number - CONTEXT_LINES)
                out.append((lines[start - 1: number - 1], line))
                break
    return out


def reorderings(line: str, n: int, rng: random.Random) -> list[str]:
    """Up to ``n`` distinct reorderings of ``line``'s space-separated words (indentation kept), none
    equal to ``line``, in a deterministic order for a given ``rng`` state."""
    indent, words = " " * _indent(line), line.strip().split(" ")
    found: list[str] = []
    for _ in range(50):
        shuffled = words[:]
        rng.shuffle(shuffled)
        candidate = indent + " ".join(shuffled)
        if candidate != line and candidate not in found:
            found.append(candidate)
        if len(found) == n:
            break
    return found


def build_items(files: list[Path], n_items: int, seed: int = 0) -> list[dict]:
    """``n_items`` task items from ``files`` (deterministic for the same files, order and seed)."""
    pairs = []
    for path in files:
        pairs += function_targets(Path(path).read_text(encoding="utf-8", errors="replace"))
    rng = random.Random(seed)
    rng.shuffle(pairs)
    items = []
    for context, line in pairs:
        if len(line.strip().split(" ")) < MIN_WORDS:
            continue
        distractors = reorderings(line, N_CHOICES - 1, rng)
        if len(distractors) < N_CHOICES - 1:
            continue
        choices = [line, *distractors]
        rng.shuffle(choices)
        items.append({"context": "".join(c + "\n" for c in context), "choices": [c + "\n" for c in choices],
                      "label": choices.index(line)})
        if len(items) == n_items:
            break
    return items


def write_task(items: list[dict], path: str | Path) -> Path:
    """Write items as JSON lines (sorted keys, one item per line)."""
    path = Path(path)
    path.write_text("".join(json.dumps(item, sort_keys=True) + "\n" for item in items), encoding="utf-8")
    return path
