"""Run the GitHub emulator on its own: ``python -m github_emulator --port 8080``."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from .emulator import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m github_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--no-limits", action="store_true", help="do not enforce GitHub's secondary limits")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="run the rate-limit windows this many times faster (benchmarks)")
    args = parser.parse_args(argv)
    serve_forever(args.host, args.port, args.state_dir, functools.partial(print, flush=True),
                  limits=not args.no_limits, time_scale=args.time_scale)


if __name__ == "__main__":
    main()
