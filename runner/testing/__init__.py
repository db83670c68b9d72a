"""The emulators, for plugin authors' tests: a thin re-export of the ``github-emulator`` distribution.

The runtime wheel and image carry no emulator code. Install it beside the runner::

    pip install -e ./emulator        # from a checkout of agent-runner
"""

from __future__ import annotations

try:
    from github_emulator import *  # noqa: F403
    from github_emulator import __all__  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the emulator installed
    raise ImportError(
        "runner.testing needs the GitHub and model emulators, which are a separate distribution: "
        "run `pip install -e ./emulator` from a checkout of agent-runner (or `make venv`)."
    ) from exc
