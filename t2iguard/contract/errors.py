"""The one error table: each error kind maps to one gRPC status code and one CLI exit code.

| kind          | raised when                                        | gRPC status        | CLI exit |
|---------------|----------------------------------------------------|--------------------|----------|
| ok            | allowed or rewritten, image returned               | OK                 | 0        |
| refused       | policy refused (prompt blocked / image still flagged) | OK, report says "refused", no image | 3 |
| bad-input     | a field violates a documented limit                | INVALID_ARGUMENT   | 2        |
| guard-failure | a safety component errored, timed out or is missing (fail closed) | INTERNAL | 1   |
| overload      | queue full / server not ready or unreachable       | UNAVAILABLE        | 1        |
| other         | anything else (NOT_FOUND: model not loaded)        | (as received)      | 1        |

A refusal is a decision, not a failure: it returns OK with the safety report (categories,
scores) and no image bytes, so that clients can show why. Tests cover every row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorKind:
    kind: str
    grpc_status: str  # grpc.StatusCode member name
    triton_code: str | None  # pb_utils.TritonError code name, for errors the service raises
    exit_code: int


OK = ErrorKind("ok", "OK", None, 0)
REFUSED = ErrorKind("refused", "OK", None, 3)
BAD_INPUT = ErrorKind("bad-input", "INVALID_ARGUMENT", "INVALID_ARG", 2)
GUARD_FAILURE = ErrorKind("guard-failure", "INTERNAL", "INTERNAL", 1)
OVERLOAD = ErrorKind("overload", "UNAVAILABLE", "UNAVAILABLE", 1)
OTHER = ErrorKind("other", "UNKNOWN", None, 1)

ERROR_TABLE: tuple[ErrorKind, ...] = (OK, REFUSED, BAD_INPUT, GUARD_FAILURE, OVERLOAD, OTHER)


def kind_for_status(grpc_status: str) -> ErrorKind:
    """The error kind a client sees for a gRPC status name (`INVALID_ARGUMENT`, ...)."""
    for k in (BAD_INPUT, GUARD_FAILURE, OVERLOAD):
        if k.grpc_status == grpc_status:
            return k
    return OTHER


class T2IGuardError(Exception):
    """Base of the service's own errors; `kind` places it in the table."""

    kind: ErrorKind = OTHER


class InvalidInput(T2IGuardError):
    """A request field violates a documented limit; the message names the field and the limit."""

    kind = BAD_INPUT


class GuardFailure(T2IGuardError):
    """A safety component failed: the request returns no image (fail closed)."""

    kind = GUARD_FAILURE


class Overloaded(T2IGuardError):
    kind = OVERLOAD
