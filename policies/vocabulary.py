"""The controlled vocabulary of findings (organ -> terms, severity grades, distributions),
as data: ``policies/vocabulary/findings.yaml`` ships with plexhub; a CRO adds its own terms in
``findings-vocabulary.yaml`` beside its compliance profiles (``PLEXHUB_PROFILES_DIR``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plexhub.errors import InputError

SHIPPED = Path(__file__).parent / "vocabulary" / "findings.yaml"
CRO_FILE = "findings-vocabulary.yaml"


@dataclass(frozen=True)
class Vocabulary:
    severity: dict[int, str]
    distribution: tuple[str, ...]
    organs: dict[str, tuple[str, ...]]

    def check(self, tissue: str, term: str, severity: int, distribution: str) -> None:
        """Raise InputError naming what is not in the vocabulary."""
        terms = self.organs.get(tissue)
        if terms is None:
            raise InputError(f"tissue {tissue!r}", "is not in the findings vocabulary",
                             f"use one of: {', '.join(sorted(self.organs))}")
        if term not in terms:
            raise InputError(f"term {term!r}", f"is not a finding of {tissue}",
                             f"use one of: {'; '.join(terms)}")
        if severity not in self.severity:
            raise InputError(f"severity {severity}", "is not a grade 0-5")
        if distribution and distribution not in self.distribution:
            raise InputError(f"distribution {distribution!r}", "is not in the vocabulary",
                             f"use one of: {', '.join(self.distribution)}")

    def as_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "distribution": list(self.distribution),
                "organs": {k: list(v) for k, v in self.organs.items()}}


def _read(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise InputError(str(path), "is not a vocabulary document (a mapping)")
    return doc


def load_vocabulary(extra_dir: Path | None = None) -> Vocabulary:
    doc = _read(SHIPPED)
    organs: dict[str, list[str]] = {k: list(v) for k, v in doc["organs"].items()}
    distribution = list(doc["distribution"])
    extra = extra_dir / CRO_FILE if extra_dir is not None else None
    if extra is not None and extra.is_file():
        more = _read(extra)
        for organ, terms in (more.get("organs") or {}).items():
            have = organs.setdefault(str(organ), [])
            have += [str(t) for t in terms or [] if str(t) not in have]
        distribution += [str(d) for d in more.get("distribution") or []
                         if str(d) not in distribution]
    return Vocabulary({int(k): str(v) for k, v in doc["severity"].items()},
                      tuple(distribution), {k: tuple(v) for k, v in organs.items()})
