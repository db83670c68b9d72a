"""The pipeline: a short conductor over the stage modules (see docs/architecture.md)."""
