"""agent-runner: turn labeled dispatch issues into one idempotent pull request each."""

__version__ = "0.1.0"
