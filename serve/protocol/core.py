"""What both wire formats share: the one error a core raises, and the checks of untrusted JSON.

Everything here runs on input from anyone who can open a socket, before any
token is checked, so each check is bounded: JSON nesting is measured before
the parser recurses into it, and caller data is capped by its encoded size.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013

MAX_JSON_DEPTH = 16
MAX_CALLER_JSON = 4096

# a JSON string (skipped whole, brackets inside it do not nest) or one bracket; possessive, so an
# unterminated string costs one linear scan
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+"|[\[\]{}]')


class ProtocolError(Exception):
    """Bad input from the peer. ``code`` is a short machine name, ``close_code`` the websocket close code."""

    def __init__(self, code: str, message: str, close_code: int = POLICY_VIOLATION):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Deepest bracket nesting of ``text``, counted up to ``limit + 1`` (enough to refuse it)."""
    if text.count("[") + text.count("{") <= limit:
        return 0  # cannot nest deeper than it has brackets: the common case costs two C-level counts
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif c in "]}":
            depth -= 1
    return deepest


def parse_object(msg: str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """One JSON object from a text message, or ``bad_json``; never recursion or number-size errors."""
    if json_depth(msg, max_depth) > max_depth:
        raise ProtocolError("bad_json", f"message nests deeper than {max_depth} levels")
    try:
        obj = json.loads(msg)
    except json.JSONDecodeError as e:
        raise ProtocolError("bad_json", f"message is not valid JSON: {e.msg} at position {e.pos}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer longer than Python converts
        raise ProtocolError("bad_json", f"message is not usable JSON: {e}"[:200]) from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", f"message must be a JSON object, got {type(obj).__name__}")
    return obj


def field(obj: dict[str, Any], key: str, kind: type, where: str = "", *, required: bool = True) -> Any:
    """``obj[key]`` when it has type ``kind``; ``None`` when absent and not required; else ``bad_message``."""
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, kind):
        raise ProtocolError("bad_message", f"field '{where}{key}' is missing or not a {kind.__name__}")
    return v


def check_token(given: Any, expected: str, how: str) -> None:
    """Constant-time comparison; anything but the right string is ``unauthorized``."""
    # surrogatepass: a lone surrogate in the JSON is a wrong token, not an encoding error
    if not isinstance(given, str) or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        raise ProtocolError("unauthorized", f"missing or wrong token ({how})")


def shown(value: Any, limit: int = 40) -> str:
    """A peer's value quoted in an error message: short, and ASCII-safe for the close reason."""
    text = ascii(value) if not isinstance(value, str) else ascii(value)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def caller_data(value: Any, where: str) -> dict[str, Any]:
    """Caller metadata as stored with the call: an object of at most ``MAX_CALLER_JSON`` bytes of JSON."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", f"field '{where}' must be an object")
    if len(json.dumps(value, default=str).encode()) > MAX_CALLER_JSON:
        raise ProtocolError("bad_message", f"field '{where}' is larger than {MAX_CALLER_JSON} bytes of JSON")
    return value


class ProtocolCore:
    """State every core keeps: ``await_start`` -> ``open`` -> ``closed``, and the token a start must carry.

    ``expected_token`` is set only when the upgrade request carried no Authorization header, so the
    first message has to authenticate the connection.
    """

    def __init__(self, expected_token: str | None = None):
        self.expected_token = expected_token
        self.state = "await_start"
        self.samples_in = 0

    def _authenticate(self, given: Any, how: str) -> None:
        if self.expected_token is not None:
            check_token(given, self.expected_token, how)

    def _opened(self) -> None:
        self.state = "open"
        self.expected_token = None
