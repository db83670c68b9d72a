"""The pipeline: a short conductor (:mod:`.entry`) over stage modules, passing typed values (:mod:`.values`).

- :mod:`.entry`: intake and the straight line; the stage table executors run step by step;
- :mod:`.first_run`: the first run's change and publish stages;
- :mod:`.rounds`: feedback rounds, the second entry into the same line;
- :mod:`.change`: generate, guard, validate, scan, shared by both;
- :mod:`.outcome`: the result comment, labels and ledger record of how a job ends;
- :mod:`.job`: the job in flight and what every stage asks of its task.
"""

from __future__ import annotations

from runner.pipeline.entry import STAGE_TABLE, Pipeline
from runner.pipeline.values import (
    ROUND_STAGES,
    STAGES,
    Outcome,
    Plan,
    Pushed,
    Round,
    RoundPushed,
    Rounds,
    Stage,
    StageValue,
)

__all__ = ["ROUND_STAGES", "STAGES", "STAGE_TABLE", "Outcome", "Pipeline", "Plan", "Pushed", "Round",
           "RoundPushed", "Rounds", "Stage", "StageValue"]
