"""Operating the runner: preflight checks, doctor, smoke, demo, health and metrics server,
the terminal status line, and the configuration reference."""
