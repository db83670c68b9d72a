"""The stages of the line that touch the world: workspace (the only place git runs), repository
config, guard, secret scan, validation, publish, report, transcript and transient-error retry.

Each is one noun-named module the pipeline calls in order; none imports the pipeline.
"""
