"""Validation in a helper process that imports its libraries while the conversion starts.

The validation needs zarr-python and ome-zarr-models, ~0.35 s of imports in a fresh process,
which a one-shot ``plexhub convert`` used to pay after writing, serially. The command starts
this helper first: it imports them on the core the conversion's own single-threaded start-up
(imports, opening the source) leaves idle, then waits for one request on stdin, validates, and
answers one JSON line. Measured on the 10,000² bench file: see the README's figures.

Anything unexpected (the helper cannot start, dies, or answers nonsense) falls back to
validating in this process, so the helper can only save time, never change a verdict; a
:class:`~plexhub.errors.ValidationError` it reports is raised here unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from plexhub.errors import ValidationError


class ValidatorProcess:
    """``validate(path, expect_version=...)`` answered by the helper process."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "plexhub.ome_pipeline.validate_child"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
        except OSError:
            self._proc = None

    def __enter__(self) -> ValidatorProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def validate(self, path: str, expect_version: str | None = None,
                 documents: Mapping[str, bytes] | None = None) -> list[str]:
        request: dict[str, Any] = {"path": str(path), "expect": expect_version}
        if documents is not None:  # the store's metadata as written (JSON text)
            request["documents"] = {k: v.decode() for k, v in documents.items()}
        answer = self._ask(request)
        if answer is not None and isinstance(answer.get("checked"), list):
            return [str(p) for p in answer["checked"]]
        if answer is not None and isinstance(answer.get("invalid"), dict):
            e = answer["invalid"]
            raise ValidationError(str(e.get("subject", path)), str(e.get("problem", "")),
                                  str(e.get("hint", "")))
        from plexhub.ome_pipeline.validate import validate_store

        return validate_store(path, expect_version=expect_version, documents=documents)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        proc, self._proc = self._proc, None  # one request per helper
        if proc is None or proc.stdin is None or proc.stdout is None:
            return None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.close()
            line = proc.stdout.readline()
            proc.wait(timeout=5)
            answer = json.loads(line)
            return answer if isinstance(answer, dict) else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            _stop(proc)
            return None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _documents(request: dict[str, Any]) -> dict[str, bytes] | None:
    docs = request.get("documents")
    return None if docs is None else {str(k): str(v).encode() for k, v in docs.items()}


def _serve() -> int:
    import ome_zarr_models  # noqa: F401  (the point: import while the parent starts up)
    import zarr  # noqa: F401

    from plexhub.ome_pipeline.validate import validate_store

    line = sys.stdin.readline()
    if not line:  # the conversion ended without asking
        return 0
    request = json.loads(line)
    try:
        answer: dict[str, Any] = {
            "checked": validate_store(request["path"], expect_version=request.get("expect"),
                                      documents=_documents(request))}
    except ValidationError as exc:
        answer = {"invalid": {"subject": exc.subject, "problem": exc.problem,
                              "hint": exc.hint}}
    except Exception as exc:  # the parent validates again and reports the real error
        answer = {"crashed": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = _serve()
    os._exit(code)  # the parent waits for the exit: skip the ~0.1 s interpreter teardown
