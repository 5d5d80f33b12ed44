"""The one error table: each error kind maps to one gRPC status code and one CLI exit code.

| kind          | raised when                                        | gRPC status        | CLI exit |
|---------------|----------------------------------------------------|--------------------|----------|
| ok            | allowed or rewritten, image returned               | OK                 | 0        |
| refused       | policy refused (prompt blocked / image still flagged) | OK, report says "refused", no image | 3 |
| bad-input     | a field violates a documented limit                | INVALID_ARGUMENT   | 2        |
| guard-failure | a safety component errored, timed out or is missing (fail closed) | INTERNAL | 1   |
| overload      | queue full / server not ready or unreachable       | UNAVAILABLE        | 1        |
| rate-limited  | a client's or the service's rate limit; a suspension | UNAVAILABLE + tag  | 4        |
| other         | anything else (NOT_FOUND: model not loaded)        | (as received)      | 1        |
| not-marked    | `t2iguard verify`: an image lacks the watermark     | (none: local)      | 5        |

A refusal is a decision, not a failure: it returns OK with the safety report (categories,
scores) and no image bytes, so that clients can show why. Triton's python backend has no
RESOURCE_EXHAUSTED: a rate limit travels as UNAVAILABLE whose message carries `RATE_LIMITED_TAG`
("rate-limited: ... retry after N s"); the client reads the kind and the seconds to wait back. Tests cover every row.

`t2iguard verify IMAGE...` exits 0 when every image carries the watermark, 5 (not-marked: a finding, like a
refusal) when one does not, and 2 (bad-input) when one cannot be read (not an image, truncated, under
256x256); 2 wins over 5.
"""

from __future__ import annotations

import re
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
RATE_LIMITED = ErrorKind("rate-limited", "UNAVAILABLE", "UNAVAILABLE", 4)
OTHER = ErrorKind("other", "UNKNOWN", None, 1)
NOT_MARKED = ErrorKind("not-marked", "OK", None, 5)  # a local finding of `t2iguard verify`; never on the wire

ERROR_TABLE: tuple[ErrorKind, ...] = (OK, REFUSED, BAD_INPUT, GUARD_FAILURE, OVERLOAD, RATE_LIMITED, OTHER,
                                      NOT_MARKED)
#: how a rate-limit refusal's message starts (it shares UNAVAILABLE with overload)
RATE_LIMITED_TAG = "rate-limited:"
_RETRY_AFTER = re.compile(r"retry after ([0-9.]+) s")


def kind_for_status(grpc_status: str, message: str = "") -> ErrorKind:
    """The error kind a client sees for a gRPC status name (`INVALID_ARGUMENT`, ...) and its message."""
    if grpc_status == "UNAVAILABLE" and RATE_LIMITED_TAG in message:
        return RATE_LIMITED
    for k in (BAD_INPUT, GUARD_FAILURE, OVERLOAD):
        if k.grpc_status == grpc_status:
            return k
    return OTHER


def retry_after(message: str) -> float | None:
    """The seconds a rate-limit message asks the client to wait, if it names them."""
    m = _RETRY_AFTER.search(message)
    return float(m.group(1)) if m else None


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


class RateLimited(T2IGuardError):
    """The client's or the service's rate limit, or a suspension: retry after `retry_after_s` seconds."""

    kind = RATE_LIMITED

    def __init__(self, message: str, retry_after_s: float | None = None):
        tagged = message if RATE_LIMITED_TAG in message else f"{RATE_LIMITED_TAG} {message}"
        super().__init__(tagged)
        self.retry_after_s = retry_after_s if retry_after_s is not None else retry_after(message)
