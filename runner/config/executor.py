"""Choose who runs jobs: our own lease ledger (SQLite or PostgreSQL, by LEDGER_URL), or Temporal."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from runner.config.base import Group, empty_is_unset


class ExecutorSettings(Group):
    """EXECUTOR and the Temporal connection."""

    executor: Literal["ledger", "temporal"] = "ledger"
    """`ledger`: SQLite, or PostgreSQL when LEDGER_URL says so. `temporal`: one Temporal workflow per dispatch issue (see docs/scaling.md); LEASE_SECONDS is then the activity heartbeat timeout."""
    temporal_address: str = "localhost:7233"
    """The Temporal frontend, `host:port`."""
    temporal_namespace: str = "default"
    """The Temporal namespace."""
    temporal_task_queue: str = "agent-runner"
    """The Temporal task queue the workers listen on."""
    temporal_stage_hold_seconds: float = Field(default=300.0, gt=0, le=540)
    """With EXECUTOR=temporal, how long one stage holds in its activity (heartbeating) for a dependency that is down; then the attempt ends as a wait and Temporal retries it, spending no attempt. At most 540: the GitHub-only stages have 600 s to finish."""
    temporal_tls: bool = False
    """Connect to Temporal over TLS (implied by TEMPORAL_API_KEY)."""
    temporal_tls_client_cert_file: Path | None = None
    """mTLS client certificate for Temporal (PEM file)."""
    temporal_tls_client_key_file: Path | None = None
    """mTLS client key for Temporal (PEM file)."""
    temporal_tls_server_ca_file: Path | None = None
    """CA that signed the Temporal server's certificate (PEM file). Empty: the system's."""
    temporal_api_key: SecretStr | None = None
    """Temporal Cloud API key (implies TLS)."""

    _temporal_unset = field_validator("temporal_tls_client_cert_file", "temporal_tls_client_key_file",
                                      "temporal_tls_server_ca_file", "temporal_api_key", mode="before")(empty_is_unset)

    @model_validator(mode="after")
    def _check_mtls_pair(self) -> Self:
        if bool(self.temporal_tls_client_cert_file) != bool(self.temporal_tls_client_key_file):
            raise ValueError("TEMPORAL_TLS_CLIENT_CERT_FILE and TEMPORAL_TLS_CLIENT_KEY_FILE go together "
                             "(mTLS needs both); set both or neither")
        return self
