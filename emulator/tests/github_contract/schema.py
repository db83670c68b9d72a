"""Check the emulator's REST answers and webhook payloads against GitHub's published description.

The description is GitHub's own (``@octokit/openapi`` for REST, OpenAPI 3.0;
``@octokit/openapi-webhooks`` for webhook payloads, OpenAPI 3.1), vendored as
slices beside this file by ``python -m github_contract.vendor``. Nothing here
touches the network.

Three entry points; each raises :class:`SchemaMismatch` (an ``AssertionError``,
so pytest prints it) with every problem found, and returns the operation id::

    from github_contract.schema import validate_exchange, validate_response, validate_webhook

    validate_response("issues/create", 201, body)                       # by operationId
    validate_response("POST /repos/{owner}/{repo}/issues", 201, body)   # by template
    validate_response("POST /repos/octocat/hello/issues", 201, body)    # by concrete path
    validate_exchange(httpx_response)                                   # method, path, status, body
    validate_webhook("issues", "labeled", payload)                      # X-GitHub-Event + action

What is checked:

- the status is one the operation documents (a 2xx, 304 or error GitHub does not
  document for that operation is a mismatch: add it to the emulator only if GitHub
  sends it, and then the description is wrong, not the emulator);
- a response documented without content (204, 304) has no body, and one with
  content has a body that validates: required fields, types, ``nullable``, enums,
  ``oneOf`` (honouring a ``discriminator``) and the formats ``uri``, ``uri-template``,
  ``date-time`` and ``email`` (a ``uri`` must be absolute);
- with ``strict=True`` (the default) also that the body has no property the
  schema does not declare, so an invented or misspelled field is caught, not just
  a missing one. Objects whose schema declares no properties, or allows
  ``additionalProperties``, are open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4, DRAFT202012

HERE = Path(__file__).resolve().parent
REST_URI, WEBHOOKS_URI = "urn:github:rest", "urn:github:webhooks"
_MAX_PROBLEMS = 25


class SchemaMismatch(AssertionError):
    """What the emulator sent is not what GitHub's description allows; the message lists why."""


class _HttpResponse(Protocol):
    """What :func:`validate_exchange` needs: ``httpx.Response`` and ``requests.Response`` both fit."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def request(self) -> Any: ...


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # upper case
    path: str  # the description's template, e.g. /repos/{owner}/{repo}/issues/{issue_number}
    responses: Mapping[str, Any]

    @property
    def pointer(self) -> str:
        return "/paths/" + _escape(self.path) + "/" + self.method.lower()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# -- formats ---------------------------------------------------------------

_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_FORMATS = FormatChecker()


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # raises ValueError for 2024-02-30
    return True


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    """An absolute URI: scheme, host, no spaces and no template braces."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.scheme in ("mailto", "urn"))) and not re.search(
        r"[\s{}<>\"]", value)


@_FORMATS.checks("uri-template")
def _is_uri_template(value: object) -> bool:
    """An RFC 6570 template (or plain URI): balanced braces around variable names."""
    if not isinstance(value, str):
        return True
    bare = re.sub(r"\{[+#./;?&]?[A-Za-z0-9_,*%.]+\}", "", value)
    return "{" not in bare and "}" not in bare and _is_uri(bare or "x:")


@_FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or re.match(r"^[^@\s]+@[^@\s]+$", value) is not None


# -- validators ------------------------------------------------------------


def _openapi_30(keyword: Any) -> Any:
    """``oneOf``/``anyOf``/``allOf`` as GitHub's clients read them in an OpenAPI 3.0 description.

    - ``nullable: true`` admits null even without a ``type`` beside it: a commit's
      ``author`` is ``{nullable: true, oneOf: [simple-user, empty-object]}`` and GitHub
      sends null for an email it cannot map to an account;
    - a ``discriminator`` picks the alternative: ``GET /user`` answers
      ``oneOf: [private-user, public-user]`` told apart by ``user_view_type``, and a
      private user also fits the public schema, so plain ``oneOf`` would reject it.
    """

    def check(validator: Any, branches: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if instance is None and schema.get("nullable") is True:
            return
        discriminator = schema.get("discriminator")
        if not discriminator or not isinstance(instance, dict):
            # A discriminator names a property; it cannot pick among alternatives for an array.
            plain = {key: value for key, value in schema.items() if key != "discriminator"}
            yield from keyword(validator, branches, instance, plain)
            return
        name, mapping = discriminator["propertyName"], discriminator.get("mapping") or {}
        if instance.get(name) not in mapping:
            yield ValidationError(f"{name!r} must be one of {sorted(mapping)} to tell the alternatives "
                                  f"apart, not {_short(instance.get(name))}")
            return
        yield from validator.descend(instance, {"$ref": mapping[instance[name]]})

    return check


def _enum(validator: Any, enums: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    """``enum`` that lets ``nullable: true`` admit null, as GitHub's clients read it.

    GitHub's ``state_reason`` is ``{type: string, nullable: true, enum: [completed, ...]}``
    and an open issue carries ``"state_reason": null``; octokit types it ``... | null``.
    """
    if instance is None and schema.get("nullable") is True:
        return
    if instance not in enums:
        yield ValidationError(f"{_short(instance)} is not one of {enums!r}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_Rest = extend(OAS30Validator, {
    **{key: _openapi_30(OAS30Validator.VALIDATORS[key]) for key in ("oneOf", "anyOf", "allOf")},
    "enum": _enum,
})
_Hooks = extend(OAS31Validator)


class Description:
    """One vendored description: its document, a registry to resolve ``$ref`` and a validator class."""

    def __init__(self, doc: dict[str, Any], uri: str, validator_class: Any, spec: Any,
                 tolerated: frozenset[str] = frozenset()) -> None:
        self.doc = doc
        self.tolerated = tolerated  # property names strict mode lets through anywhere
        self.uri = uri
        self._class = validator_class
        self._registry: Registry[Any] = Registry().with_resource(uri, spec.create_resource(doc))

    @property
    def provenance(self) -> dict[str, str]:
        return dict(self.doc["x-vendored"])

    @lru_cache(maxsize=4096)  # noqa: B019 - one Description per file, kept for the session
    def validator(self, pointer: str) -> Any:
        schema = {"$ref": f"{self.uri}#{quote(pointer, safe='/~')}"}
        return self._class(schema, registry=self._registry, format_checker=_FORMATS)

    def resolve(self, pointer: str) -> tuple[str, Mapping[str, Any]]:
        """The schema at ``pointer``, following ``$ref`` until a schema without one is reached."""
        while True:
            node = _at(self.doc, pointer)
            ref = node.get("$ref") if isinstance(node, dict) else None
            if ref is None:
                return pointer, node
            if not ref.startswith("#/"):
                raise ValueError(f"unexpected $ref {ref!r}")
            pointer = ref[1:]

    def check(self, pointer: str, instance: Any, *, strict: bool, what: str) -> None:
        problems = [line for error in self.validator(pointer).iter_errors(instance) for line in _describe(error)]
        if strict and not problems:
            problems = [f"{path}: not in GitHub's schema" for path in _undeclared(self, pointer, instance, "$")]
        if problems:
            shown = problems[:_MAX_PROBLEMS]
            more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
            raise SchemaMismatch(f"{what} does not match GitHub's description "
                                 f"({self.provenance['package']} {self.provenance['version']}):\n  "
                                 + "\n  ".join(shown) + more)


def _at(doc: Any, pointer: str) -> Any:
    """The node at a JSON pointer such as ``/components/schemas/issue/allOf/0``."""
    node = doc
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


# Where GitHub's description contradicts what api.github.com sends and the emulator
# follows GitHub: (JSON pointer in the vendored description, keys to set, evidence).
# Keep this short; each entry is a bug report waiting to be filed upstream.
CORRECTIONS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("/components/schemas/pull-request-simple/properties/labels/items/properties/description",
     {"nullable": True},
     "a label without a description is null everywhere GitHub shows it; the same labels "
     "in pull-request (and the label schema itself) are declared nullable"),
    ("/paths/~1app~1installations/get/responses/200/content/application~1json/schema/items",
     {"$ref": "#/components/schemas/installation"},
     "the list's inline copy of an installation is stale: its account is allOf user AND "
     "enterprise (the installation schema says anyOf) and it lacks client_id and "
     "user_view_type, which GitHub sends in list and get alike"),
)


def _corrected(doc: dict[str, Any]) -> dict[str, Any]:
    """Apply :data:`CORRECTIONS`: set the keys given, or with ``$ref`` replace the schema."""
    for pointer, patch, _ in CORRECTIONS:
        node = _at(doc, pointer)
        if "$ref" in patch:
            node.clear()
        node.update(patch)
    return doc


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _describe(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem; a failed ``oneOf``/``anyOf`` lists each alternative's problems."""
    where = _json_path(error.absolute_path)
    if error.context:
        lines: list[str] = []
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        for index, errors in branches.items():
            for sub in errors:
                lines += _describe(sub, f"{prefix}{error.validator}[{index}] ")
        return lines or [f"{prefix}{where}: fits none of the {error.validator} alternatives"]
    if error.validator == "type":
        message = f"{_short(error.instance)} is not of type {error.validator_value!r}"
        if error.instance is None:
            message = "null, but GitHub's schema is not nullable here"
    elif error.validator in ("required", "format", "enum"):
        message = error.message if error.validator != "format" else (
            f"{_short(error.instance)} is not a {error.validator_value!r}")
    else:
        message = error.message if len(error.message) < 200 else error.message[:197] + "..."
    return [f"{prefix}{where}: {message}"]


def _branches(desc: Description, pointer: str, instance: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The schema at ``pointer`` and every ``allOf`` part and fitting ``anyOf``/``oneOf`` branch under it."""
    pointer, schema = desc.resolve(pointer)
    yield pointer, schema
    for index, _ in enumerate(schema.get("allOf", ())):
        yield from _branches(desc, f"{pointer}/allOf/{index}", instance)
    discriminator = schema.get("discriminator") or {}
    mapped = (discriminator.get("mapping") or {}).get(
        instance.get(discriminator.get("propertyName")) if isinstance(instance, dict) else None)
    if mapped:
        yield from _branches(desc, mapped[1:], instance)
        return
    for key in ("anyOf", "oneOf"):
        for index, _ in enumerate(schema.get(key, ())):
            if desc.validator(f"{pointer}/{key}/{index}").is_valid(instance):
                yield from _branches(desc, f"{pointer}/{key}/{index}", instance)


def _undeclared(desc: Description, pointer: str, instance: Any, path: str) -> Iterator[str]:
    """Paths of properties in ``instance`` that no applicable schema declares."""
    branches = list(_branches(desc, pointer, instance))
    if isinstance(instance, dict):
        declared: dict[str, list[str]] = {}
        # Open unless some branch lists its properties (even none) or forbids others.
        open_object = not any("properties" in schema or schema.get("additionalProperties") is False
                              for _, schema in branches)
        for branch, schema in branches:
            for name in schema.get("properties") or {}:
                declared.setdefault(name, []).append(f"{branch}/properties/{_escape(name)}")
            if schema.get("additionalProperties") not in (None, False):
                open_object = True
        for key, value in instance.items():
            for sub in declared.get(key, ()):
                yield from _undeclared(desc, sub, value, f"{path}.{key}")
            if key not in declared and not open_object and key not in desc.tolerated:
                yield f"{path}.{key}"
    elif isinstance(instance, list):
        for branch, schema in branches:
            if isinstance(schema.get("items"), dict):
                for index, item in enumerate(instance):
                    yield from _undeclared(desc, f"{branch}/items", item, f"{path}[{index}]")


def _newer(doc: dict[str, Any]) -> dict[str, Any]:
    """Merge ``github-rest-newer.json`` (GitHub's own, newer description) over npm's: the newer wins.

    A schema's ``properties`` are updated key by key and its ``required`` list extended."""
    newer = json.loads((HERE / "github-rest-newer.json").read_text())
    for patch in newer["schemas"]:
        schema = _at(doc, patch["pointer"])
        schema.setdefault("properties", {}).update(patch.get("properties", {}))
        schema["required"] = [*schema.get("required", []),
                              *(r for r in patch.get("required", []) if r not in schema.get("required", []))]
    return doc


@cache
def rest() -> Description:
    doc = _newer(_corrected(json.loads((HERE / "github-rest.json").read_text())))
    return Description(doc, REST_URI, _Rest, DRAFT4)


# GitHub puts ``user_view_type`` in every user object it sends since 2024; the webhooks
# description declares it in some inline user schemas and not in others (an issue's user
# in ``issues.labeled`` lacks it, the sender has it).
WEBHOOK_TOLERATED = frozenset({"user_view_type"})


@cache
def webhooks() -> Description:
    doc = json.loads((HERE / "github-webhooks.json").read_text())
    return Description(doc, WEBHOOKS_URI, _Hooks, DRAFT202012, WEBHOOK_TOLERATED)


# -- operations ------------------------------------------------------------


@cache
def operations() -> tuple[Operation, ...]:
    """Every vendored REST operation."""
    found = []
    for path, item in rest().doc["paths"].items():
        for method, operation in item.items():
            found.append(Operation(operation["operationId"], method.upper(), path, operation["responses"]))
    return tuple(found)


def _template_regex(template: str) -> re.Pattern[str]:
    # {path} and {ref} may hold slashes (contents paths, refs like heads/main).
    def group(m: re.Match[str]) -> str:
        return "(.+)" if m.group(1) in ("path", "ref", "branch") else "([^/]+)"

    return re.compile("^" + re.sub(r"\{(\w+)\}", group, re.escape(template).replace(r"\{", "{").replace(r"\}", "}")) + "/?$")


def operation(ref: str) -> Operation:
    """Find an operation by id (``issues/create``), or by ``METHOD /template`` or ``METHOD /concrete/path``."""
    if " " not in ref:
        for op in operations():
            if op.operation_id == ref:
                return op
        raise KeyError(f"operation {ref!r} is not vendored; add it to EXTRA_OPERATIONS in "
                       "tests/contract/vendor.py and run python -m github_contract.vendor")
    method, _, path = ref.partition(" ")
    method, path = method.upper(), urlsplit(path.strip()).path.rstrip("/") or "/"
    candidates = [op for op in operations() if op.method == method
                  and (op.path == path or _template_regex(op.path).match(path))]
    if not candidates:
        raise KeyError(f"no vendored operation serves {method} {path}")
    # A literal segment beats a parameter: /issues/comments is not /issues/{issue_number}.
    return max(candidates, key=lambda op: len(re.sub(r"\{\w+\}", "", op.path)))


def _response_pointer(op: Operation, status: int) -> tuple[str, Mapping[str, Any]]:
    key = str(status) if str(status) in op.responses else "default"
    if key not in op.responses:
        raise SchemaMismatch(f"{op.method} {op.path} ({op.operation_id}) answered {status}; GitHub "
                             f"documents only {', '.join(sorted(op.responses))}")
    return rest().resolve(f"{op.pointer}/responses/{key}")


def validate_response(op_ref: str, status: int, body: Any, *, strict: bool = True) -> str:
    """Check one REST answer (``body`` parsed JSON, or None when empty); return the operationId."""
    __tracebackhide__ = True  # pytest shows the mismatch, not this helper's frames
    op = operation(op_ref)
    pointer, response = _response_pointer(op, status)
    content = response.get("content") or {}
    what = f"{op.method} {op.path} ({op.operation_id}) {status}"
    if not content:
        # A success documented without content (204, 304) has none; an error documented
        # without content only leaves its body unspecified.
        if status < 400 and body not in (None, b"", ""):
            raise SchemaMismatch(f"{what}: GitHub sends no body, the emulator sent {str(body)[:200]!r}")
        return op.operation_id
    media = content.get("application/json") or next(iter(content.values()))
    if "schema" not in media:
        return op.operation_id
    if body is None:
        raise SchemaMismatch(f"{what}: GitHub sends a JSON body, the emulator sent none")
    media_key = "application/json" if "application/json" in content else next(iter(content))
    rest().check(f"{pointer}/content/{_escape(media_key)}/schema", body, strict=strict, what=what)
    return op.operation_id


def validate_exchange(response: _HttpResponse, op_ref: str | None = None, *, strict: bool = True) -> str:
    """Check an ``httpx``/``requests`` response; the operation comes from its request unless given."""
    __tracebackhide__ = True  # pytest shows the mismatch, not this helper's frames
    request = response.request
    if op_ref is None:
        op_ref = f"{request.method} {urlsplit(str(request.url)).path}"
    body = json.loads(response.content) if response.content else None
    return validate_response(op_ref, response.status_code, body, strict=strict)


def validate_webhook(event: str, action: str | None, payload: Any, *, strict: bool = True) -> str:
    """Check one webhook payload by ``X-GitHub-Event`` and its ``action``; return the webhook key."""
    __tracebackhide__ = True  # pytest shows the mismatch, not this helper's frames
    from .vendor import webhook_key

    key = webhook_key(event, action)
    hooks = webhooks().doc["webhooks"]
    if key not in hooks:
        raise KeyError(f"webhook {key!r} is not vendored; add ({event!r}, {action!r}) to WEBHOOKS in "
                       "tests/contract/vendor.py and run python -m github_contract.vendor")
    webhooks().check(f"/webhooks/{_escape(key)}", payload, strict=strict, what=f"webhook {key}")
    return key
