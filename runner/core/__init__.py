"""The pure core: task parsing, markdown, feedback rules, policy, rendering, model choice and pricing.

Nothing here does I/O: no network, git, clock or subprocess. Everything is a
function over frozen values, tested on plain values. It may import only
``runner.forge.base`` (our values), ``runner.config``, ``runner.errors`` and
``runner.log``.
"""
