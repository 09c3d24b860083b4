"""One error hierarchy for plexhub, rooted at :class:`PlexhubError`.

Each error is also the builtin a caller would naturally catch (``FileNotFoundError``,
``ValueError``...), and its message says what was given, what was expected and what to try.
"""

from __future__ import annotations


class PlexhubError(Exception):
    """Base of every error plexhub raises on purpose."""

    def __init__(self, subject: str, problem: str, hint: str = "") -> None:
        self.subject = subject
        self.problem = problem
        self.hint = hint
        text = f"{subject}: {problem}" if subject else problem
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class InputError(PlexhubError, ValueError):
    """A source file or argument is not what plexhub can use."""


class UnsupportedFormatError(InputError):
    """No reader recognises the source, or the named reader does not exist."""


class CorruptFileError(InputError):
    """The source looks like a known format but is truncated or damaged."""


class MissingFileError(PlexhubError, FileNotFoundError):
    """A file the source refers to (or the source itself) does not exist."""


class DestinationExistsError(PlexhubError, FileExistsError):
    """The output already exists and overwriting was not asked for."""


class ValidationError(PlexhubError, ValueError):
    """An output failed validation against the OME-NGFF schemas or our stricter checks."""


class ConfigurationError(PlexhubError, ValueError):
    """A setting has a value plexhub cannot use."""


class NotFoundError(PlexhubError, LookupError):
    """A catalog entity does not exist, or the caller may not know that it exists."""


class PermissionDeniedError(PlexhubError, PermissionError):
    """The caller is known but may not do this."""


class ConflictError(PlexhubError):
    """The request conflicts with the current state (a duplicate, a finished job...)."""


class TooLargeError(InputError):
    """A request or document is larger than a limit in ``plexhub.limits`` allows (HTTP 413)."""


class BusyError(PlexhubError):
    """The caller already has as many expensive requests in flight as a limit allows; it may
    try again after ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, subject: str, problem: str, hint: str = "",
                 retry_after: int = 1) -> None:
        super().__init__(subject, problem, hint)
        self.retry_after = retry_after


class DestinationWriteError(PlexhubError, OSError):
    """The output could not be written (disk full, quota, a name too long, read-only...);
    the message names the destination and the cause."""


class CatalogSchemaError(PlexhubError, RuntimeError):
    """The catalog's schema is not the one this plexhub needs (not migrated yet, or newer);
    the service refuses to start on it and names the command that fixes it."""
