"""The analysis notebooks in notebooks/ run top to bottom on the project's sample data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLEXHUB_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.delenv("PLEXHUB_API_URL", raising=False)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: commit notebooks without outputs"
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "figure.png").is_file() or "figure" not in path.read_text()
    mimes = {m for c in nb.cells if c.cell_type == "code" for o in c.outputs
             for m in o.get("data", {})}
    widgets = "application/vnd.jupyter.widget-view+json" in mimes
    if nb.metadata.get("plexhub", {}).get("read_only"):
        assert not widgets  # published read-only: nothing in it needs a kernel
    else:
        assert widgets  # the viewer was shown
    assert "image/png" in mimes
