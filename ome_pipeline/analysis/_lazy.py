"""Heavy, untyped libraries (dask, scikit-image, distributed), imported when first used and
typed as ``Any`` so that strict mypy checks our code and not their missing stubs."""

from __future__ import annotations

import importlib
from typing import Any


def module(name: str) -> Any:
    return importlib.import_module(name)
