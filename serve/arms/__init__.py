"""Arms: the agents a call can be routed to (A/B)."""

from .base import Arm, ArmUnavailable, CallContext

ARMS = ("pipeline", "audio")

__all__ = ["ARMS", "Arm", "ArmUnavailable", "CallContext"]
