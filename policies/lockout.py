"""Login lockout: from the times of failed logins, is a name or address locked, and until when.

A pure evaluator over a failure history (seconds since the epoch, any order). Failures are
counted in a sliding window; ``max_failures`` of them within ``window`` seconds lock the key
for ``lock_seconds``, each further lock of the same history twice as long as the one before,
up to ``max_lock_seconds``. Failures that fall inside a lock do not count: while locked the
caller refuses the login without checking the password, so there is nothing to count (and a
locked-out guesser cannot push the lock further by guessing on). A success or an admin's
unlock clears the history; the caller forgets failures older than :meth:`LockoutRule.horizon`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LockoutRule:
    max_failures: int = 5
    window: float = 900.0
    lock_seconds: float = 900.0
    max_lock_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window <= 0 or self.lock_seconds <= 0:
            raise ValueError(f"a lockout rule needs max_failures >= 1 and positive times, "
                             f"got {self}")

    def lock_length(self, earlier_locks: int) -> float:
        """Seconds of the lock that follows ``earlier_locks`` locks."""
        return float(min(self.lock_seconds * 2.0 ** min(earlier_locks, 60),
                         max(self.max_lock_seconds, self.lock_seconds)))

    @property
    def horizon(self) -> float:
        """Failures older than this many seconds cannot matter any more (the longest lock
        plus a window on each side); forgetting them also starts the doubling over."""
        return max(self.max_lock_seconds, self.lock_seconds) + 2 * self.window


@dataclass(frozen=True)
class LockState:
    """What a failure history means at one moment."""

    locked: bool
    until: float | None  # when the current (or last) lock ends; None: never locked
    locks: int  # locks in the history
    counted: int  # failures that count toward the next lock (those in the window, not locked)


def evaluate(failures: Iterable[float], now: float, rule: LockoutRule) -> LockState:
    """The lock state of one key at ``now``, from the times of its failed logins."""
    locks = 0
    until: float | None = None
    recent: list[float] = []
    for t in sorted(failures):
        if t > now:
            continue  # clocks that went back: the future cannot count yet
        if until is not None and t < until:
            continue  # refused while locked: not checked, not counted
        recent = [x for x in recent if t - x < rule.window]
        recent.append(t)
        if len(recent) >= rule.max_failures:
            until = t + rule.lock_length(locks)
            locks += 1
            recent = []
    locked = until is not None and now < until
    counted = 0 if locked else sum(1 for x in recent if now - x < rule.window)
    return LockState(locked=locked, until=until, locks=locks, counted=counted)
