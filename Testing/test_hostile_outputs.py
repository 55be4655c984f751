"""What the commands must never touch: inputs, devices, symbolic links, permissions.

Every command checks its output before any work: a directory, a device, a FIFO or
one of its own inputs is refused (also with ``--force``), a symbolic link's target is
written and the link kept, and a written file gets the permissions a plain copy
would get (``0666`` less the umask; a replaced file keeps its own).  Inputs that are
not regular files (a FIFO, ``/dev/zero``) are refused at once, without reading.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.errors import OutputError
from encapsulated_stl.files import check_output_path, write_atomically
from conftest import run_console_script as run_process
from stl_samples import binary_stl_by_hand, cube_triangles

STL = binary_stl_by_hand(cube_triangles(20.0, origin=(-10.0, -10.0, -10.0)))


def run(capsys, *argv):
    """``encapsulated-stl`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_error_line(err: str, *expected: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], err


@pytest.fixture
def stl_file(tmp_path) -> Path:
    path = tmp_path / "part.stl"
    path.write_bytes(STL)
    return path


@pytest.fixture
def model_file(tmp_path, stl_file, capsys) -> Path:
    path = tmp_path / "part.dcm"
    assert run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", path)[0] == 0
    return path


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


# -- outputs that name an input ---------------------------------------------------------


def test_wrap_refuses_to_write_over_its_stl_even_with_force(stl_file, capsys):
    before = digest(stl_file)
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", stl_file, "--force")
    assert code == 2
    one_error_line(err, str(stl_file), "is an input")
    assert digest(stl_file) == before


def test_extract_refuses_to_write_over_its_object_even_with_force(model_file, capsys):
    before = digest(model_file)
    code, _, err = run(capsys, "extract", model_file, "-o", model_file, "--force")
    assert code == 2
    one_error_line(err, "is an input")
    assert digest(model_file) == before


def test_a_hard_link_to_the_input_is_the_input(stl_file, tmp_path, capsys):
    link = tmp_path / "same.dcm"
    os.link(stl_file, link)
    before = digest(stl_file)
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", link, "--force")
    assert code == 2
    one_error_line(err, "is an input")
    assert digest(stl_file) == before


def test_wrap_refuses_to_write_over_a_slice_of_its_reference_series(stl_file, phantom_ct, tmp_path, capsys):
    series = tmp_path / "ct"
    shutil.copytree(phantom_ct, series)
    slice_file = sorted(p for p in series.rglob("*") if p.is_file())[3]
    before = digest(slice_file)
    code, _, err = run(capsys, "wrap", stl_file, "--reference", series, "-o", slice_file, "--force")
    assert code == 2
    one_error_line(err, str(slice_file), "is an input")
    assert digest(slice_file) == before


def test_from_ct_refuses_to_write_over_a_slice_of_its_series(phantom_ct, tmp_path, capsys):
    series = tmp_path / "ct"
    shutil.copytree(phantom_ct, series)
    slice_file = sorted(p for p in series.rglob("*") if p.is_file())[0]
    before = digest(slice_file)
    code, _, err = run(
        capsys, "from-ct", series, "--threshold", "300", "-o", slice_file, "--force", "-q"
    )
    assert code == 2
    one_error_line(err, "is an input")
    assert digest(slice_file) == before


# -- outputs that are not regular files -------------------------------------------------


def test_an_output_that_is_a_directory_is_refused(stl_file, tmp_path, capsys):
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", tmp_path, "--force")
    assert code == 2
    one_error_line(err, "is a directory")
    assert tmp_path.is_dir()


def test_an_output_that_is_a_fifo_is_refused_at_once(stl_file, tmp_path):
    fifo = tmp_path / "out.dcm"
    os.mkfifo(fifo)
    code, _, err = run_process("wrap", stl_file, "--patient-id", "P1", "-o", fifo, "--force", timeout=60)
    assert code == 2
    one_error_line(err, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="making a device node needs root")
def test_an_output_that_is_a_device_is_never_replaced(stl_file, tmp_path, capsys):
    # /dev/null's own numbers, in a folder of ours: what `-o /dev/null --force` would meet
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", device, "--force")
    assert code == 2
    one_error_line(err, "character device")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert os.lstat(device).st_rdev == os.makedev(1, 3)


def test_dev_null_itself_is_refused(stl_file, capsys):
    before = os.stat("/dev/null")
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", "/dev/null", "--force")
    assert code == 2
    one_error_line(err, "/dev/null", "character device")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


# -- symbolic links ---------------------------------------------------------------------


def test_a_symlinked_output_writes_its_target_and_keeps_the_link(stl_file, tmp_path, capsys):
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    target = elsewhere / "model.dcm"
    target.write_bytes(b"old content")
    link = tmp_path / "model.dcm"
    link.symlink_to(target)
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", link, "--force", "-q")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes()[128:132] == b"DICM"
    assert not list(tmp_path.glob(".model.dcm*")) and not list(elsewhere.glob(".model.dcm*"))


def test_a_dangling_symlink_creates_its_target(stl_file, tmp_path, capsys):
    target = tmp_path / "made.dcm"
    link = tmp_path / "link.dcm"
    link.symlink_to(target)
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", link, "-q")
    assert code == 0, err
    assert link.is_symlink() and target.is_file()


def test_a_symlink_to_an_input_is_the_input(stl_file, tmp_path, capsys):
    link = tmp_path / "out.dcm"
    link.symlink_to(stl_file)
    before = digest(stl_file)
    code, _, err = run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", link, "--force")
    assert code == 2
    one_error_line(err, "is an input")
    assert digest(stl_file) == before and link.is_symlink()


# -- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_output_gets_the_permissions_of_a_plain_copy(stl_file, tmp_path, capsys, umask, mask, mode):
    umask(mask)
    output = tmp_path / "new.dcm"
    assert run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", output, "-q")[0] == 0
    assert stat.S_IMODE(output.stat().st_mode) == mode
    extracted = tmp_path / "new.stl"
    assert run(capsys, "extract", output, "-o", extracted, "-q")[0] == 0
    assert stat.S_IMODE(extracted.stat().st_mode) == mode


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664])
def test_force_keeps_the_permissions_of_the_file_it_replaces(stl_file, tmp_path, capsys, umask, mode):
    umask(0o077)
    output = tmp_path / "old.dcm"
    output.write_bytes(b"previous")
    output.chmod(mode)
    assert run(capsys, "wrap", stl_file, "--patient-id", "P1", "-o", output, "--force", "-q")[0] == 0
    assert stat.S_IMODE(output.stat().st_mode) == mode
    assert output.read_bytes()[128:132] == b"DICM"


# -- inputs that are not regular files --------------------------------------------------


@pytest.mark.parametrize("command", ["wrap", "extract", "info"])
def test_a_fifo_input_is_refused_without_blocking(command, tmp_path):
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    argv = [command, fifo] + ([] if command == "info" else ["-o", tmp_path / "out"])
    code, _, err = run_process(*argv, timeout=60)
    assert code == 2
    one_error_line(err, str(fifo), "FIFO")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["wrap", "extract", "info"])
def test_dev_zero_is_refused_without_reading(command, tmp_path):
    argv = [command, "/dev/zero"] + ([] if command == "info" else ["-o", tmp_path / "out"])
    code, _, err = run_process(*argv, timeout=60)
    assert code == 2
    one_error_line(err, "/dev/zero", "character device")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["wrap", "from-seg"])
def test_a_fifo_as_reference_series_file_is_refused(command, stl_file, tmp_path):
    import nibabel as nib
    import numpy as np

    fifo = tmp_path / "slice.dcm"
    os.mkfifo(fifo)
    labels = tmp_path / "labels.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), str(labels))
    output = tmp_path / ("out.dcm" if command == "wrap" else "models")
    source = stl_file if command == "wrap" else labels
    code, _, err = run_process(command, source, "--reference", fifo, "-o", output, timeout=60)
    assert code == 2
    one_error_line(err, str(fifo), "FIFO")
    assert not output.exists()


# -- the library --------------------------------------------------------------------------


def test_write_atomically_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.dcm"

    def write(stream):
        stream.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_atomically(target, write)
    assert list(tmp_path.iterdir()) == []


def test_check_output_path_names_the_path_as_given(tmp_path):
    with pytest.raises(OutputError) as raised:
        check_output_path(tmp_path / "missing" / "model.dcm")
    assert "does not exist" in str(raised.value)
    assert str(raised.value).startswith(str(tmp_path / "missing" / "model.dcm"))
