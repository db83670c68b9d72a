"""Serve git smart HTTP by running ``git http-backend`` as a CGI program.

Using git's own server keeps clone, fetch and push (including
``--force-with-lease`` and gzip-compressed requests) exactly as real git
expects. This module decides who may do what and speaks CGI; the HTTP
server only feeds it the request body and streams the answer back.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .backend import Backend
from .errors import EmulatorError, Forbidden, ResourceNotFound
from .gitrepo import git_env

GIT_PREFIX = "/git/"
_PATH = re.compile(r"^/git/(?P<owner>[^/]+)/(?P<name>[^/]+?)\.git(?P<rest>/.*)?$")
_CHUNK = 64 * 1024


@functools.cache
def http_backend() -> str:
    """Locate ``git-http-backend`` (``/usr/lib/git-core`` on Debian, elsewhere on other systems)."""
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True)
    return str(Path(exec_path.stdout.strip(), "git-http-backend"))


@dataclass(frozen=True)
class GitTarget:
    """A smart-HTTP request, resolved to a repository and the git service it wants."""

    full_name: str
    rest: str
    pushing: bool


def parse_target(path: str, query: str) -> GitTarget | None:
    match = _PATH.match(path)
    if match is None:
        return None
    rest = match.group("rest") or "/"
    pushing = rest.endswith("/git-receive-pack") or "service=git-receive-pack" in query
    return GitTarget(f"{match.group('owner')}/{match.group('name')}", rest, pushing)


def authorize_git(backend: Backend, target: GitTarget, login: str | None,
                  installation_id: int | None = None) -> tuple[str, str]:
    """Return the canonical ``owner/name`` and the user, or raise the error git should see.

    Anonymous requests get a 401 challenge, so git retries with credentials;
    a repository the user cannot read is "not found"; pushing needs write.
    """
    if login is None:
        raise EmulatorError("Authentication required", status=401)
    try:
        repo = backend.authorize(target.full_name, login, "write" if target.pushing else "read",
                                 installation_id=installation_id)
    except ResourceNotFound:
        raise EmulatorError("Repository not found.", status=404) from None
    except Forbidden:
        raise EmulatorError(f"Permission to {target.full_name}.git denied to {login}.", status=403) from None
    return repo.full_name, login


@dataclass
class CgiReply:
    """The parsed head of the CGI output plus the rest of stdout, to stream."""

    status: int
    headers: list[tuple[str, str]]
    process: subprocess.Popen[bytes]
    stderr: IO[bytes]

    def body(self) -> Iterator[bytes]:
        assert self.process.stdout is not None
        try:
            while chunk := self.process.stdout.read1(_CHUNK):  # type: ignore[attr-defined]
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process.wait()
        self.stderr.close()


def run_backend(
    git_root: Path, *, full_name: str, target: GitTarget, method: str, query: str,
    headers: Mapping[str, str], body: IO[bytes], content_length: int, remote_user: str,
) -> CgiReply:
    """Start ``git http-backend`` for one request; ``body`` is a real file holding the request."""
    env = git_env({
        "GIT_PROJECT_ROOT": str(git_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        # Pushes are authorised above, so let http-backend accept them.
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true",
        "PATH_INFO": f"/{full_name}.git{target.rest}",
        "QUERY_STRING": query,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": headers.get("content-type", ""),
        "CONTENT_LENGTH": str(content_length),
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": "127.0.0.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
    })
    for name in ("content-encoding", "git-protocol", "accept"):
        if name in headers:
            env["HTTP_" + name.upper().replace("-", "_")] = headers[name]
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [http_backend()], stdin=body, stdout=subprocess.PIPE, stderr=stderr, env=env
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first:  # http-backend died before answering; its stderr says why
        process.wait()
        stderr.seek(0)
        raise EmulatorError(f"git http-backend failed: {stderr.read().decode(errors='replace')}", status=500)
    status, cgi_headers, line = 200, [], first.rstrip(b"\r\n")
    while line:
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            cgi_headers.append((name.strip(), value.strip()))
        line = process.stdout.readline().rstrip(b"\r\n")
    return CgiReply(status, cgi_headers, process, stderr)
