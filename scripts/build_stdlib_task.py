"""Write the shipped ``stdlib-nextline`` task from this interpreter's standard library.

    python scripts/build_stdlib_task.py [--items 300] [--seed 0]
        [--out scaling/evaluation/data/stdlib-nextline.jsonl]

The shipped file was built with CPython 3.11; another version's library gives other (equally valid) items.
"""

from __future__ import annotations

import argparse

from data_pipelines import stdlib_sources
from scaling.evaluation.stdlib_task import build_items, write_task
from scaling.evaluation.tasks import SHIPPED_DIR, SHIPPED_TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(SHIPPED_DIR / SHIPPED_TASKS["stdlib-nextline"]))
    args = parser.parse_args()
    items = build_items(stdlib_sources(), args.items, seed=args.seed)
    print(f"wrote {len(items)} items to {write_task(items, args.out)}")


if __name__ == "__main__":
    main()
