"""Refresh the vendored slices of GitHub's published OpenAPI descriptions.

The contract tests validate against ``github-rest.json`` and
``github-webhooks.json`` beside this file: the operations the emulator serves
(read from its routing table), the operations listed in ``EXTRA_OPERATIONS``,
the webhook events in ``WEBHOOKS``, and every component they reference, taken
from the npm packages ``@octokit/openapi`` and ``@octokit/openapi-webhooks``.

Run it from the repository root after adding a route, or to move to a newer
description (then read the diff: it is GitHub's change, and the contract tests
tell whether the emulator still conforms)::

    python -m github_contract.vendor                 # the pinned versions below
    python -m github_contract.vendor --rest-version 23.1.0 --webhooks-version 12.2.0
    python -m github_contract.vendor --check         # exit 1 if the files would change

It fetches the packages with ``npm pack`` (the npm registry through its own
client) into a temporary directory; the tests themselves never fetch anything.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REST_FILE = HERE / "github-rest.json"
WEBHOOKS_FILE = HERE / "github-webhooks.json"

REST_PACKAGE, REST_VERSION = "@octokit/openapi", "23.0.2"
WEBHOOKS_PACKAGE, WEBHOOKS_VERSION = "@octokit/openapi-webhooks", "12.1.0"
DESCRIPTION = "generated/api.github.com.json"  # github.com, not GHES or GHEC

# Operations the emulator does not serve yet but that planned work needs (GitHub App
# installations, reactions, pull request reviews): vendored so that a contract test
# can be written the moment the route lands.
EXTRA_OPERATIONS: tuple[str, ...] = (
    "users/get-by-username",
    "apps/get-authenticated",
    "apps/list-installations",
    "apps/get-installation",
    "apps/get-repo-installation",
    "apps/create-installation-access-token",
    "apps/list-repos-accessible-to-installation",
    "issues/delete-comment",
    "reactions/create-for-issue",
    "reactions/list-for-issue",
    "reactions/create-for-issue-comment",
    "reactions/list-for-issue-comment",
    "reactions/create-for-pull-request-review-comment",
    "pulls/list-reviews",
    "pulls/get-review",
    "pulls/create-review",
    "pulls/list-comments-for-review",
    "pulls/list-review-comments",
    "pulls/get-review-comment",
    "pulls/create-review-comment",
    "pulls/create-reply-for-review-comment",
    "pulls/list-review-comments-for-repo",
    "pulls/list-files",
    "repos/list-for-authenticated-user",
    "git/delete-ref",
    "repos/delete",
    # checks, statuses and Actions (CI rounds, issue #24)
    "checks/create", "checks/update", "checks/get", "checks/list-for-ref", "checks/list-annotations",
    "checks/create-suite", "checks/get-suite", "checks/list-suites-for-ref", "checks/list-for-suite",
    "repos/create-commit-status", "repos/get-combined-status-for-ref", "repos/list-commit-statuses-for-ref",
    "actions/list-workflow-runs-for-repo", "actions/get-workflow-run", "actions/list-jobs-for-workflow-run",
    "actions/get-job-for-workflow-run", "actions/download-job-logs-for-workflow-run",
)

# (event, action) pairs whose payloads the emulator sends or will send; action None = no action.
WEBHOOKS: tuple[tuple[str, str | None], ...] = (
    ("ping", None),
    ("issues", "opened"), ("issues", "edited"), ("issues", "labeled"), ("issues", "unlabeled"),
    ("issues", "closed"), ("issues", "reopened"),
    ("issue_comment", "created"), ("issue_comment", "edited"), ("issue_comment", "deleted"),
    ("pull_request", "opened"), ("pull_request", "closed"), ("pull_request", "reopened"),
    ("pull_request", "edited"), ("pull_request", "labeled"), ("pull_request", "unlabeled"),
    ("pull_request", "synchronize"),
    ("pull_request_review", "submitted"), ("pull_request_review", "edited"),
    ("pull_request_review", "dismissed"),
    ("pull_request_review_comment", "created"), ("pull_request_review_comment", "edited"),
    ("pull_request_review_comment", "deleted"),
    ("installation", "created"), ("installation", "deleted"),
    ("installation_repositories", "added"), ("installation_repositories", "removed"),
    ("check_suite", "completed"), ("check_run", "created"), ("check_run", "completed"), ("status", None),
    ("workflow_run", "requested"), ("workflow_run", "completed"),
)

_METHODS = ("get", "put", "post", "delete", "patch", "head")


def webhook_key(event: str, action: str | None) -> str:
    """Name a webhook the way the description does: ``issue_comment``/``created`` -> ``issue-comment-created``."""
    return "-".join([event.replace("_", "-"), *([action.replace("_", "-")] if action else [])])


def path_shape(template: str) -> str:
    """Reduce a path template to its literal skeleton: ``/repos/{owner}/{repo:int}`` -> ``/repos/{}/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", template.rstrip("/") or "/")


def emulator_routes() -> list[tuple[str, str]]:
    """Every (METHOD, pattern) the emulator's REST router serves, control routes included."""
    from github_emulator.app import build_router

    return build_router().routes()


def _npm_pack(package: str, version: str, into: Path) -> tuple[Path, str]:
    """Fetch one package tarball with npm; return its path and the registry's integrity string."""
    out = subprocess.run(
        ["npm", "pack", "--json", "--pack-destination", str(into), f"{package}@{version}"],
        check=True, capture_output=True, text=True, timeout=600,
    )
    info = json.loads(out.stdout)[0]
    return into / info["filename"], info["integrity"]


def _read_member(tarball: Path, member: str) -> Any:
    with tarfile.open(tarball) as tar:
        handle = tar.extractfile(f"package/{member}")
        assert handle is not None, f"{member} missing from {tarball.name}"
        return json.load(handle)


def _strip(node: Any, *, names: bool = False) -> Any:
    """Drop examples and prose, which validation never reads; ``names`` marks a ``properties`` map."""
    if isinstance(node, dict):
        if names:
            return {key: _strip(value) for key, value in node.items()}
        return {
            key: _strip(value, names=key in ("properties", "patternProperties", "schemas", "responses",
                                               "headers", "content", "mapping", "webhooks", "paths"))
            for key, value in node.items()
            if key not in ("example", "examples", "description", "externalDocs", "x-github",
                           "x-github-breaking-changes", "x-octokit", "title")
        }
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(doc: dict[str, Any], roots: Any) -> dict[str, dict[str, Any]]:
    """Copy every component that ``roots`` reference, directly or through other components."""
    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(roots))
    while pending:
        ref = pending.pop()
        if not ref.startswith("#/components/"):
            raise ValueError(f"unexpected $ref {ref!r}")
        section, name = ref.removeprefix("#/components/").split("/", 1)
        if section == "examples" or name in components.get(section, {}):
            continue
        value = _strip(doc["components"][section][name])
        components.setdefault(section, {})[name] = value
        pending.extend(_refs(value))
    return {section: dict(sorted(items.items())) for section, items in sorted(components.items())}


def rest_slice(doc: dict[str, Any], routes: list[tuple[str, str]], extra: Iterable[str]) -> dict[str, Any]:
    """The operations matching ``routes`` (by path shape) or named in ``extra``, with their components."""
    shapes = {(method.lower(), path_shape(pattern)) for method, pattern in routes}
    wanted = set(extra)
    paths: dict[str, dict[str, Any]] = {}
    found: set[str] = set()
    for path, item in doc["paths"].items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            if (method, path_shape(path)) in shapes or operation["operationId"] in wanted:
                paths.setdefault(path, {})[method] = {
                    "operationId": operation["operationId"], "summary": operation.get("summary", ""),
                    "responses": _strip(operation["responses"], names=True),
                }
                found.add(operation["operationId"])
    missing = wanted - found
    if missing:
        raise SystemExit(f"EXTRA_OPERATIONS not in the description: {sorted(missing)}")
    paths = dict(sorted(paths.items()))
    return {"openapi": doc["openapi"], "paths": paths, "components": _closure(doc, paths)}


def webhooks_slice(doc: dict[str, Any], wanted: Iterable[tuple[str, str | None]]) -> dict[str, Any]:
    """The payload schema of each wanted (event, action), keyed like the description."""
    hooks: dict[str, Any] = {}
    for event, action in wanted:
        key = webhook_key(event, action)
        if key not in doc["webhooks"]:
            raise SystemExit(f"webhook {key!r} not in the description")
        body = doc["webhooks"][key]["post"]["requestBody"]["content"]["application/json"]["schema"]
        hooks[key] = _strip(body)
    hooks = dict(sorted(hooks.items()))
    return {"openapi": doc["openapi"], "webhooks": hooks, "components": _closure(doc, hooks)}


def _render(provenance: dict[str, str], body: dict[str, Any]) -> str:
    return json.dumps({"x-vendored": provenance, **body}, indent=1, sort_keys=False) + "\n"


def build(rest_version: str, webhooks_version: str) -> dict[Path, str]:
    """Fetch both packages and render both vendored files."""
    with tempfile.TemporaryDirectory(prefix="openapi-") as tmp:
        rest_tgz, rest_integrity = _npm_pack(REST_PACKAGE, rest_version, Path(tmp))
        hooks_tgz, hooks_integrity = _npm_pack(WEBHOOKS_PACKAGE, webhooks_version, Path(tmp))
        rest_doc, hooks_doc = _read_member(rest_tgz, DESCRIPTION), _read_member(hooks_tgz, DESCRIPTION)
    script = "python -m github_contract.vendor"
    return {
        REST_FILE: _render(
            {"package": REST_PACKAGE, "version": rest_version, "integrity": rest_integrity,
             "file": DESCRIPTION, "refresh": script},
            rest_slice(rest_doc, emulator_routes(), EXTRA_OPERATIONS)),
        WEBHOOKS_FILE: _render(
            {"package": WEBHOOKS_PACKAGE, "version": webhooks_version, "integrity": hooks_integrity,
             "file": DESCRIPTION, "refresh": script},
            webhooks_slice(hooks_doc, WEBHOOKS)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-version", default=REST_VERSION, help=f"{REST_PACKAGE} version")
    parser.add_argument("--webhooks-version", default=WEBHOOKS_VERSION, help=f"{WEBHOOKS_PACKAGE} version")
    parser.add_argument("--check", action="store_true", help="only tell whether the files are current")
    args = parser.parse_args(argv)
    files = build(args.rest_version, args.webhooks_version)
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.name}: {len(text) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
