"""Print how long the task parser and the secret scan take on adversarial input, with shipped defaults.

    .venv/bin/python bench/hostile_text.py

Figures, not assertions: the suite only guards against stalls. Each figure is
the median of several runs; "size" is the input in characters.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.core.task import parse_task  # noqa: E402
from runner.errors import TaskSpecError  # noqa: E402
from runner.steps import secrets  # noqa: E402

CANONICAL = ('<!-- agent_task_metadata {"task_id": "bench-1234"} -->\n\n## Instruction\n\nDo it.\n\n'
             "Target Repository: octo/target\n")
SIZE = 100_000
BODIES: dict[str, str] = {
    "canonical": CANONICAL,
    "spaces": CANONICAL + " " * SIZE,
    "target line of spaces": "Target Repository:" + " " * SIZE + "x\n" + CANONICAL,
    "heading of spaces": "## " + " " * SIZE + "#\n" + CANONICAL,
    "comment openers": CANONICAL + "<!--" * (SIZE // 4),
    "comment pairs": CANONICAL + "<!-- -->" * (SIZE // 8),
    "fence markers": CANONICAL + "```\n" * (SIZE // 4),
    "nested JSON": "<!-- agent_task_metadata " + "[" * SIZE + "]" * SIZE + " -->\n" + CANONICAL,
    "zero-width": CANONICAL + "\u200b" * SIZE,
}


def median_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def parse(body: str) -> None:
    try:
        parse_task(body, dispatch_repo="octo/dispatch", issue_number=1)
    except TaskSpecError:
        pass


def main() -> int:
    print(f"{'parser input':28} {'size':>9} {'median ms':>10}")
    for name, body in BODIES.items():
        print(f"{name:28} {len(body):>9} {median_ms(lambda b=body: parse(b)):>10.2f}")
    lines = [(i, f"value_{i} = compute({i}) + other_thing({i * 7})") for i in range(1, 10_001)]
    long_line = [(1, "var a=1;" * (SIZE // 8))]
    print(f"\n{'secret scan input':28} {'lines':>9} {'median ms':>10}")
    print(f"{'10,000 ordinary lines':28} {len(lines):>9} {median_ms(lambda: secrets.scan_lines('a.py', lines), 3):>10.1f}")
    print(f"{'one 100 KB line':28} {1:>9} {median_ms(lambda: secrets.scan_lines('a.js', long_line), 3):>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
