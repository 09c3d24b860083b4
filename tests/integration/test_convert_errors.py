"""What ``plexhub convert`` says when it cannot do what was asked: one line that names the
file, what was expected and what to try (issue 17, item 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexhub.cli import build_parser, main


def _truncated(src: Path, folder: Path, keep: float) -> Path:
    out = folder / f"truncated-{src.name}"
    data = src.read_bytes()
    out.write_bytes(data[:int(len(data) * keep)])
    return out


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("plexhub: error: "), err
    return err[0]


@pytest.mark.parametrize(("path", "keep"), [
    ("qptiff/small_vectra.qptiff", 0.5),   # directories kept, pixels cut
    ("qptiff/small_vectra.qptiff", 0.999),  # only the last strip's end missing
    ("svs/tcga-cr-7395-01a-01-ts1.svs", 0.5),  # the directories were at the end
])
def test_a_truncated_scanner_file_says_so_in_one_line(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str,
        keep: float) -> None:
    src = _truncated(real / path, tmp_path, keep)
    dst = tmp_path / "out.ome.zarr"
    assert main(["convert", "-q", str(src), str(dst)]) == 2
    line = _one_error_line(capsys)
    size = src.stat().st_size
    assert line.startswith(f"plexhub: error: {src}: is truncated: the file has {size:,} bytes"
                           " but its TIFF structure needs at least "), line
    assert "copy the complete file again" in line
    for noise in ("IndexError", "TiffFileError", "reshaped", "--debug"):
        assert noise not in line
    assert not dst.exists()
    assert not (tmp_path / ".out.ome.zarr.partial").exists()
    # `info` and an explicitly named reader say the same
    assert main(["info", str(src)]) == 2
    assert "is truncated" in _one_error_line(capsys)
    reader = path.split("/")[0]
    assert main(["convert", "-q", "--reader", reader, str(src), str(dst)]) == 2
    assert "is truncated" in _one_error_line(capsys)


def test_complete_real_tiffs_are_not_called_truncated(real: Path) -> None:
    from plexhub.ome_pipeline.readers.truncation import needed_bytes

    for tif in [*real.glob("*/*.tif*"), *real.glob("*/*.qptiff"), *real.glob("*/*.svs")]:
        found = needed_bytes(str(tif))
        assert found is not None, tif
        size, needed = found
        assert needed <= size, tif


def test_debug_works_after_the_subcommand_and_the_hint_is_true(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _truncated(real / "svs/tcga-cr-7395-01a-01-ts1.svs", tmp_path, 0.5)
    for argv in (["convert", "-q", str(src), str(tmp_path / "a.zarr"), "--debug"],
                 ["--debug", "convert", "-q", str(src), str(tmp_path / "a.zarr")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith(f"plexhub: error: {src}: is truncated")
    assert main(["info", str(src), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_the_debug_hint_of_an_unexpected_error_works_as_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import plexhub.ome_pipeline.conversion as conversion

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(conversion, "open_source", broken)
    argv = ["convert", "-q", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr")]
    assert main(argv) == 1
    line = _one_error_line(capsys)
    assert line.endswith("(rerun with --debug for details)")
    assert main([*argv, "--debug"]) == 1  # the hint, followed literally, is accepted
    assert "Traceback" in capsys.readouterr().err


def test_a_destination_in_a_missing_folder_is_refused(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "typo" / "out.ome.zarr"
    assert main(["convert", "-q", str(real / "labels/E34_mask.tiff"), str(dst)]) == 2
    line = _one_error_line(capsys)
    assert line == (f"plexhub: error: {dst}: its folder {dst.parent} does not exist "
                    f"(create it first with mkdir -p {dst.parent}, or choose another "
                    "destination)")
    assert not dst.parent.exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["convert", "-q", str(real / "labels/E34_mask.tiff"),
                 str(afile / "o.zarr")]) == 2
    assert f"{afile} is not a folder" in _one_error_line(capsys)


@pytest.fixture
def unwritable_folder() -> Iterator[tuple[Path, list[str]]]:
    """A folder the test's process may not write, and the command prefix that runs a
    command as a user without write access (root writes anywhere: run as nobody)."""
    base = Path(tempfile.mkdtemp(prefix="plexhub-ro-"))
    os.chmod(base, 0o755)
    folder = base / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root for this test"
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    try:
        yield folder, prefix
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(base)


def test_an_unwritable_destination_names_the_destination(
        real: Path, unwritable_folder: tuple[Path, list[str]]) -> None:
    folder, prefix = unwritable_folder
    dst = folder / "out.ome.zarr"
    res = subprocess.run([*prefix, sys.executable, "-m", "plexhub", "convert", "-q",
                          str(real / "labels/E34_mask.tiff"), str(dst)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(folder.parent)})
    assert res.returncode == 2, res.stderr
    [line] = res.stderr.strip().splitlines()
    assert line == (f"plexhub: error: {dst}: could not be written: permission denied "
                    "(check the destination folder and try again)")
    assert ".partial" not in line
    assert not list(folder.iterdir())


def test_as_labels_refuses_a_multichannel_fluorescence_image(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = real / "qptiff/small_vectra.qptiff"  # 3 channels of uint8: integers, not labels
    dst = tmp_path / "l.ome.zarr"
    assert main(["convert", "-q", "--as-labels", str(src), str(dst)]) == 2
    line = _one_error_line(capsys)
    assert line == (f"plexhub: error: {src}: has 3 channels (DAPI, FITC, Cy3) of uint8; "
                    "--as-labels needs a mask with one channel of object IDs (convert it "
                    "without --as-labels, or pass its segmentation mask)")
    assert not dst.exists()


def test_every_positional_argument_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("convert", "info", "validate", "synth"):  # the conversion's commands
        command = sub.choices[name]  # type: ignore[index]
        for action in command._actions:
            if not action.option_strings:
                assert action.help, f"plexhub {name}: {action.dest} has no help text"
    text = sub.choices["convert"].format_help()  # type: ignore[index]
    assert "the OME-Zarr store to write" in text
    assert "--debug" in text
