"""The README documents what the code has: every setting in the settings table (and nothing
that is not a setting), and the limits table as plexhub.limits generates it."""

from __future__ import annotations

import re
from pathlib import Path

from plexhub.limits import markdown_table
from plexhub.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_settings_table_matches_settings() -> None:
    table = _section("Settings")
    documented = set(re.findall(r"`(PLEXHUB_[A-Z0-9_]+)`", table))
    fields = {f"PLEXHUB_{name.upper()}" for name in Settings.model_fields}
    assert sorted(fields - documented) == [], "settings missing from the README's table"
    assert sorted(documented - fields) == [], "README rows that are no setting"


def test_every_setting_has_help_text() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"


def test_limits_table_is_generated() -> None:
    text = README.read_text()
    start = text.index("<!-- limits-table -->\n") + len("<!-- limits-table -->\n")
    end = text.index("<!-- /limits-table -->")
    assert text[start:end] == markdown_table()
