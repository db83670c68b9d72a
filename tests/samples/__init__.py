"""GitHub's JSON as it arrives, kept as files (as gidgethub keeps its samples), loaded by name.

Each file has the full shape GitHub sends (every field, not only those we read), so a
test that parses it also shows that the fields we ignore do no harm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def load(name: str) -> Any:
    """The parsed JSON of ``tests/samples/<name>.json``."""
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
