"""The one error a protocol core raises: what to tell the caller and how to close."""

from __future__ import annotations

POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


class ProtocolError(Exception):
    """Bad input from the peer. ``code`` is a short machine name, ``close_code`` the websocket close code."""

    def __init__(self, code: str, message: str, close_code: int = POLICY_VIOLATION):
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code
