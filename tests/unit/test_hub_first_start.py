"""A scientist's first server start (plexhub.hub.spawner): the project's notebooks in
~/plexhub without overwriting edits, the news pop-up off, the environment's bin on PATH; and
the hub's page overrides (plexhub's name; no server buttons for sponsors)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import jinja2

from plexhub.hub.config import TEMPLATES, may_start_servers
from plexhub.hub.spawner import (
    NEWS_SETTINGS,
    QUICKSTART,
    prepare_home,
    project_notebooks,
    with_bin_first,
)


def test_the_projects_notebooks_are_found_and_include_the_quick_start() -> None:
    found = project_notebooks()
    assert found is not None
    assert (found / QUICKSTART).is_file()


def test_first_start_copies_notebooks_and_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.ipynb").write_text("{}")
    (src / QUICKSTART).write_text('{"v": 1}')
    home = tmp_path / "home"
    home.mkdir()
    created = prepare_home(home, src)
    assert home / "plexhub" / QUICKSTART in created
    assert json.loads((home / NEWS_SETTINGS).read_text()) == {"fetchNews": "false"}
    # the user edits a notebook and chooses news on; the project's copy changes
    (home / "plexhub" / QUICKSTART).write_text('{"mine": true}')
    (home / NEWS_SETTINGS).write_text('{"fetchNews": "true"}')
    (home / "plexhub" / "a.ipynb").unlink()
    (src / QUICKSTART).write_text('{"v": 2}')
    again = prepare_home(home, src)
    assert again == [home / "plexhub" / "a.ipynb"]  # only what was missing
    assert json.loads((home / "plexhub" / QUICKSTART).read_text()) == {"mine": True}
    assert json.loads((home / NEWS_SETTINGS).read_text()) == {"fetchNews": "true"}
    assert oct((home / "plexhub").stat().st_mode & 0o777) == "0o700"


def test_first_start_without_notebooks_still_turns_news_off(tmp_path: Path) -> None:
    assert prepare_home(tmp_path, None) == [
        tmp_path / ".jupyter", tmp_path / ".jupyter" / "lab",
        tmp_path / ".jupyter" / "lab" / "user-settings",
        tmp_path / ".jupyter" / "lab" / "user-settings" / "@jupyterlab",
        tmp_path / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension",
        tmp_path / NEWS_SETTINGS]


def test_the_environments_bin_leads_the_path_once() -> None:
    bin_dir = str(Path(sys.executable).parent)
    assert with_bin_first("/usr/bin:/bin") == f"{bin_dir}:/usr/bin:/bin"
    assert with_bin_first(f"/usr/bin:{bin_dir}") == f"{bin_dir}:/usr/bin"
    assert (Path(with_bin_first("/usr/bin").split(os.pathsep)[0]) / "plexhub").exists()


def _user(admin: bool, *groups: str) -> SimpleNamespace:
    return SimpleNamespace(admin=admin, name="u",
                           groups=[SimpleNamespace(name=g) for g in groups])


def test_who_may_start_servers() -> None:
    assert may_start_servers(_user(False, "plexhub-scientists"))
    assert may_start_servers(_user(True))
    assert not may_start_servers(_user(False, "plexhub-sponsors", "org-acme"))
    assert not may_start_servers(None)


def _env() -> jinja2.Environment:
    stock = Path(sys.prefix) / "share" / "jupyterhub" / "templates"
    return jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(TEMPLATES)),
        jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader(str(stock))})]))


def test_home_page_has_no_server_buttons_for_sponsors() -> None:
    home = _env().get_template("home.html")
    kw = {"base_url": "/hub/", "prefix": "/", "static_url": lambda p, **k: p,
          "user": None, "default_server": SimpleNamespace(active=False),
          "allow_named_servers": False, "url": "/hub/spawn", "xsrf": "x"}
    page = home.render(plexhub_may_start_servers=False, **kw)
    assert "My Server" not in page
    assert "Add New Server" not in page
    assert 'href="/services/plexhub/portal/"' in page
    assert "<title>plexhub</title>" in page.replace("\n", "").replace(" ", "")
    scientist = home.render(plexhub_may_start_servers=True, **kw)
    assert "My Server" in scientist
