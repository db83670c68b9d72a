"""Secrets never reach a log line, whatever shape they travel in."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import structlog

from runner.config import load_settings
from runner.log import REDACTOR, Redactor, configure_logging


def test_redactor_masks_configured_and_token_shaped_secrets() -> None:
    redact = Redactor(["hunter2-secret"])
    assert redact("token=hunter2-secret!") == "token=***!"
    assert redact("ghp_" + "a" * 36) == "***"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact.value({"k": ["x hunter2-secret"]}) == {"k": ["x ***"]}


def test_settings_secrets_include_the_git_header_form() -> None:
    settings = load_settings(env_file=None, github_token="tok-123456", openai_api_key="sk-local-1")
    encoded = base64.b64encode(b"x-access-token:tok-123456").decode()
    assert set(settings.secrets()) == {"tok-123456", "sk-local-1", encoded}


@pytest.fixture()
def _restore_logging() -> Iterator[None]:
    """configure_logging binds the captured stderr; later tests in this worker must not log into a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("_restore_logging")
def test_log_lines_and_tracebacks_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "very-secret-value-42"
    configure_logging("INFO", "json", [secret])
    log = structlog.get_logger("t")
    log.info("calling", url=f"https://x/?t={secret}", headers={"Authorization": f"token {secret}"})
    try:
        raise RuntimeError(f"boom with {secret}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "calling" in err and "boom with ***" in err
    assert secret not in err
    assert secret in REDACTOR._secrets  # configured once, process-wide


def test_stdlib_records_are_json_lines_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    secret = "stdlib-secret-value-9"
    configure_logging("info", "json", [secret])
    logging.getLogger("urllib3.connectionpool").warning("Retrying %s with token %s", "/repos", secret)
    structlog.get_logger("t").info("ours", n=1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, stdlib ones included
    assert records[0]["logger"] == "urllib3.connectionpool" and records[0]["level"] == "warning"
    assert records[0]["event"] == "Retrying /repos with token ***"
    assert records[1]["event"] == "ours" and records[1]["n"] == 1
    assert secret not in "".join(lines)


def test_json_tracebacks_are_structured_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    secret = "trace-secret-value-77"
    configure_logging("INFO", "json", [secret])
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logging.getLogger("somelib").exception("library failed")
        structlog.get_logger("t").exception("we failed")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    for record in records:
        frames = record["exception"]
        assert isinstance(frames, list) and frames[0]["exc_type"] == "ValueError"
        assert frames[0]["exc_value"] == "bad ***"
    assert len(records) == 2


def test_debug_level_lets_library_debug_through(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("INFO", "json")
    logging.getLogger("urllib3").debug("hidden at info")
    configure_logging("DEBUG", "json")
    logging.getLogger("urllib3").debug("shown at debug")
    err = capsys.readouterr().err
    assert "hidden at info" not in err and "shown at debug" in err
    configure_logging("INFO", "json")
