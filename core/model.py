"""Pure data model shared by every layer: no I/O, no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Channel:
    """One channel of an image as the source names it."""

    index: int
    label: str
    color: str  # six upper-case hex digits, RRGGBB
    marker: str | None = None


@dataclass(frozen=True)
class PhysicalSize:
    """Size of one pixel along an axis, with a UDUNITS-2 unit name."""

    value: float
    unit: str = "micrometer"


@dataclass(frozen=True)
class LevelInfo:
    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ImageSummary:
    """What a conversion produced for one image."""

    name: str
    path: str  # relative to the store root ("" for a single image)
    axes: str
    dtype: str
    levels: tuple[LevelInfo, ...]
    channels: tuple[Channel, ...]
    physical_sizes: dict[str, PhysicalSize] = field(default_factory=dict)
    is_label: bool = False


class JobState(StrEnum):
    """A conversion job's state: the text the catalog stores (``jobs.state``) and the API and
    its client (``plexhub.client``) send."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})  # no longer moves
