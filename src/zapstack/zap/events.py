"""What :class:`~zapstack.zap.ingress.IngressMachine` emits: two verdicts and two sentinels.

``next_event`` returns :class:`FrameAccepted` (a verified, zero-copy view of
the frame), :class:`FrameRejected` (the stage, wire code and byte offset that
prove the frame bad; reset the stream with ``code``), ``NEED_DATA`` (feed more
bytes) or ``END`` (the machine is finished).  The verdicts are frozen values,
safe to share with any thread; the sentinels are compared by identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from zapstack.errors import RemoteProtocolError, Stage, WireCode
from zapstack.zap.views import FrameView

__all__ = ["END", "NEED_DATA", "Event", "FrameAccepted", "FrameRejected", "Sentinel"]


class Sentinel:
    """A named marker returned by :meth:`IngressMachine.next_event`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")
END: Final = Sentinel("END")


@dataclass(frozen=True, slots=True)
class FrameAccepted:
    """A complete frame that passed stages 1-4."""

    view: FrameView
    """A :class:`TxView` or :class:`BlockView` over the one received buffer."""


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The stream's bytes prove the frame bad: reset the stream with ``code``."""

    stage: Stage
    """Pipeline stage that caught it."""
    code: WireCode
    """Application error code for RESET_STREAM / STOP_SENDING."""
    offset: int
    """0-based index of the byte that proves the frame bad."""
    reason: str
    """Human-readable explanation."""

    def error(self) -> RemoteProtocolError:
        """The same verdict as an exception."""
        return RemoteProtocolError(
            f"stage {self.stage.name} byte {self.offset}: {self.reason}",
            code=self.code,
            stage=self.stage,
            offset=self.offset,
        )


Event = FrameAccepted | FrameRejected | Sentinel
