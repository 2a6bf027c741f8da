"""Wire formats as pure state machines: bytes/text in -> frames, frames -> bytes/text out. No sockets here."""

from .core import ProtocolError
from .native import NativeProtocol
from .twilio import TwilioProtocol

__all__ = ["NativeProtocol", "ProtocolError", "TwilioProtocol"]
