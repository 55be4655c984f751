"""Previews (issue 15, point 2): every object carries an Icon Image Sequence, a 64 x 64
MONOCHROME2 rendering of the model's anterior view; ``preview`` draws any model to a
PNG; the demo draws the true shape, the model and the tilt-ignoring reading.

Rendering is offscreen with VTK on a machine with no display and no GPU: the tests run
without ``DISPLAY`` (one of them in a process whose environment has none), so VTK
renders through EGL or OSMesa, with Mesa's software renderer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

import encapsulated_stl as estl
from conftest import missing
from encapsulated_stl.cli import main
from encapsulated_stl.mesh import render as rendering
from from_seg_data import sorted_datasets, sphere_mask, tilted_ct, write_seg
from png_files import png_pixels
from stl_samples import binary_stl_by_hand, cube_triangles


def run(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def box(low, high) -> np.ndarray:
    """Closed, outward-facing (n, 3, 3) triangles of an axis-aligned box."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    return cube_triangles(1.0) * (high - low) + low


def lit_span(picture: np.ndarray, columns: slice = slice(None)):
    """(first row, last row, first column, last column) of the non-black pixels."""
    lit = picture[:, columns].max(axis=2) > 0
    rows, cols = np.where(lit.any(axis=1))[0], np.where(lit.any(axis=0))[0]
    return rows[0], rows[-1], cols[0], cols[-1]


def rendered(layers, size, **options):
    try:
        return rendering.render(layers, size, **options)
    except rendering.RenderingUnavailable as error:
        missing(f"VTK cannot render here: {error.reason}")


@pytest.fixture()
def cube_stl(tmp_path):
    path = tmp_path / "cube.stl"
    path.write_bytes(binary_stl_by_hand(cube_triangles(20.0, origin=(-10.0, 30.0, 100.0))))
    return path


# -- the view ----------------------------------------------------------------------------

# Two boxes: one on the patient's right, low and anterior; one on the left, high and posterior.
RIGHT_LOW = box((-40.0, -30.0, 0.0), (-20.0, -10.0, 10.0))
LEFT_HIGH = box((20.0, 10.0, 30.0), (40.0, 30.0, 50.0))


def expected_spans(size, low, high, across_axis, up_axis, across_sign):
    """Where the fitted parallel projection puts each box, in pixels: the bounds' centre at
    the picture's centre, the larger side filling it less a margin on each side."""
    corners = np.concatenate([RIGHT_LOW, LEFT_HIGH]).reshape(-1, 3)
    centre = (corners.min(0) + corners.max(0)) / 2
    extent = corners.max(0) - corners.min(0)
    per_mm = size / (max(extent[across_axis], extent[up_axis]) * (1 + 2 * rendering.MARGIN))
    column = size / 2 + across_sign * (np.array([low[across_axis], high[across_axis]]) - centre[across_axis]) * per_mm
    row = size / 2 - (np.array([high[up_axis], low[up_axis]]) - centre[up_axis]) * per_mm
    return row, np.sort(column)


@pytest.mark.parametrize("view, across_axis, across_sign", [("anterior", 0, +1), ("left", 1, +1)])
def test_views_are_in_patient_orientation_and_fitted_to_the_model(view, across_axis, across_sign):
    """Anterior: patient's left (+L) to the right, head up.  Left: posterior (+P) to the
    right, head up.  Each box lands where the projection puts it, to a pixel."""
    size = 256
    picture = rendered([rendering.Layer(np.concatenate([RIGHT_LOW, LEFT_HIGH]))], size, view=view)
    assert picture.shape == (size, size, 3) and picture.dtype == np.uint8
    half = size // 2
    for part, columns in ((RIGHT_LOW, slice(0, half)), (LEFT_HIGH, slice(half, size))):
        corners = part.reshape(-1, 3)
        rows, cols = expected_spans(size, corners.min(0), corners.max(0), across_axis, 2, across_sign)
        top, bottom, first, last = lit_span(picture, columns)
        first, last = first + columns.start, last + columns.start
        assert abs(top - rows[0]) <= 1.0 and abs(bottom + 1 - rows[1]) <= 1.0, (view, top, bottom, rows)
        assert abs(first - cols[0]) <= 1.0 and abs(last + 1 - cols[1]) <= 1.0, (view, first, last, cols)


def test_the_same_mesh_gives_the_same_pixels_and_a_moved_one_other_pixels():
    first = rendered([rendering.Layer(RIGHT_LOW)], 128)
    again = rendered([rendering.Layer(RIGHT_LOW.copy())], 128)
    assert np.array_equal(first, again)
    stretched = RIGHT_LOW * np.array([1.0, 1.0, 2.0])  # taller: the fitted picture changes
    assert not np.array_equal(first, rendered([rendering.Layer(stretched)], 128))


def test_rendering_needs_no_display_and_prints_nothing(tmp_path, cube_stl):
    """In a process with no DISPLAY or WAYLAND_DISPLAY, the installed command renders
    (EGL or OSMesa here, Mesa's software renderer) and VTK says nothing on stderr."""
    import vtkmodules.vtkRenderingOpenGL2 as opengl

    if not any(hasattr(opengl, name) for name in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow")):
        pytest.skip(f"this VTK ({rendering.vtk_version()}) was built to render through X only, as "
                    "VTK 9.2's wheels were (Slicer 5.6 and 5.8 bundle 9.2, and Slicer has a display)")
    environment = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = tmp_path / "cube.png"
    result = subprocess.run(
        [sys.executable, "-m", "encapsulated_stl", "preview", cube_stl, "-o", out, "--size", "64"],
        capture_output=True, text=True, env=environment, stdin=subprocess.DEVNULL, timeout=120)
    if result.returncode == 2 and "cannot draw" in result.stderr:
        missing(f"VTK cannot render here: {result.stderr.strip()}")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    picture = png_pixels(out.read_bytes())
    top, bottom, first, last = lit_span(picture)
    # A cube seen face on fills the square picture less the margins: 64 / 1.08 = 59.3 pixels.
    assert abs((bottom - top + 1) - 64 / (1 + 2 * rendering.MARGIN)) <= 1.5
    assert abs((last - first + 1) - 64 / (1 + 2 * rendering.MARGIN)) <= 1.5


def test_without_egl_osmesa_or_display_the_object_is_written_without_an_icon(tmp_path, cube_stl, capsys,
                                                                               monkeypatch):
    """A server without the libraries: the icon is left out with a notice naming what to
    install, and the object is still written (the sequence is optional)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: None)
    code, out, err = run(capsys, "wrap", cube_stl, "-o", tmp_path / "cube.dcm", "--patient-id", "P1")
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("notice: the model is stored without an icon:")
    assert "EGL" in err and "OSMesa" in err
    assert "IconImageSequence" not in pydicom.dcmread(tmp_path / "cube.dcm")
    code, _out, err = run(capsys, "preview", cube_stl, "-o", tmp_path / "cube.png")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'cube.png'}: cannot draw") and err.count("\n") == 1
    assert not (tmp_path / "cube.png").exists()


def test_a_triangle_soup_is_not_drawn_for_minutes(tmp_path, capsys):
    """50,000 random triangles across a 300 mm cube cover the picture about 3,300 times
    over (a surface: a few times).  wrap writes the object without an icon and says why;
    preview refuses in one line.  Either answers at once, never after minutes."""
    soup = tmp_path / "soup.stl"
    triangles = np.random.default_rng(0).uniform(-150, 150, (50_000, 3, 3)).astype(np.float32)
    soup.write_bytes(binary_stl_by_hand(triangles))
    code, _out, err = run(capsys, "wrap", soup, "-o", tmp_path / "soup.dcm", "--patient-id", "P1")
    assert code == 0 and err.startswith("notice: the model is stored without an icon: the triangles cover")
    assert "IconImageSequence" not in pydicom.dcmread(tmp_path / "soup.dcm")
    code, _out, err = run(capsys, "preview", soup, "-o", tmp_path / "soup.png")
    assert code == 2 and err.startswith(f"error: {soup}: the triangles cover the picture ") and err.count("\n") == 1
    overdraw = float(err.split("picture ")[1].split(" times")[0].replace(",", ""))
    assert 2500 < overdraw < 4500  # about 50,000 x 0.076 (a random triangle's mean area in a square) / 1.08²


# -- the icon ------------------------------------------------------------------------------

def icon_of(path) -> pydicom.Dataset:
    dataset = pydicom.dcmread(path)
    assert len(dataset.IconImageSequence) == 1
    return dataset.IconImageSequence[0]


def test_wrap_stores_a_64_pixel_monochrome_icon_of_the_anterior_view(tmp_path, cube_stl, capsys):
    code, _out, err = run(capsys, "wrap", cube_stl, "-o", tmp_path / "cube.dcm", "--patient-id", "P1")
    assert code == 0, err
    if "without an icon" in err:
        missing(f"VTK cannot render here: {err.strip()}")
    icon = icon_of(tmp_path / "cube.dcm")
    assert (icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.PhotometricInterpretation) == (64, 64, 1, "MONOCHROME2")
    assert (icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation) == (8, 8, 7, 0)
    assert icon["PixelData"].VR == "OB" and len(icon.PixelData) == 64 * 64
    pixels = np.frombuffer(icon.PixelData, np.uint8).reshape(64, 64)
    # The cube face on: a lit square of 64 / 1.08 = 59.3 pixels a side, 85.7 % of the icon
    # (edge pixels are part lit: each is the mean of 4 x 4 rendered pixels).
    assert abs((pixels > 0).mean() - (1 / (1 + 2 * rendering.MARGIN)) ** 2) < 0.03
    assert pixels[32, 32] > 200 and pixels[0, 0] == 0


def test_the_icon_shows_the_mesh_only_never_patient_or_text(tmp_path, cube_stl, capsys):
    """Two objects of the same STL for different patients and descriptions carry the same
    icon; another mesh gives another."""
    written = []
    for number, (patient, description) in enumerate([("Doe^Jane", "left femur"), ("Roe^Rick", "skull")]):
        out = tmp_path / f"{number}.dcm"
        code, _out, err = run(capsys, "wrap", cube_stl, "-o", out, "--patient-id", f"ID{number}",
                              "--patient-name", patient, "--description", description)
        assert code == 0, err
        written.append(icon_of(out).PixelData)
    assert written[0] == written[1]
    other = tmp_path / "other.stl"
    other.write_bytes(binary_stl_by_hand(box((0, 0, 0), (40, 10, 10))))
    assert run(capsys, "wrap", other, "-o", tmp_path / "other.dcm", "--patient-id", "ID0")[0] == 0
    assert icon_of(tmp_path / "other.dcm").PixelData != written[0]


def test_no_icon_leaves_the_sequence_out(tmp_path, cube_stl, capsys):
    code, _out, err = run(capsys, "wrap", cube_stl, "-o", tmp_path / "cube.dcm", "--patient-id", "P1", "--no-icon")
    assert code == 0 and err == ""
    assert "IconImageSequence" not in pydicom.dcmread(tmp_path / "cube.dcm")
    assert "IconImageSequence" not in estl.wrap(cube_stl, patient_id="P1", icon=False)


def test_every_writer_stores_an_icon(tmp_path, capsys):
    """from-ct, from-seg and revise (and wrap, above) go through one writer."""
    phantom = tilted_ct(tmp_path / "ct")
    made = estl.from_ct(tmp_path / "ct", 500.0)
    source = sorted_datasets(phantom)
    seg = write_seg(tmp_path / "seg.dcm", source, sphere_mask(phantom.geometry, (36, 64, 64))[None], ["Ball"])
    segmented = estl.from_segmentation(seg, tmp_path / "ct")
    estl.save(made, tmp_path / "ct-model.dcm")
    revised = estl.revise(cube_triangles(20.0), [tmp_path / "ct-model.dcm"])
    for dataset in [made, *segmented, revised]:
        if "IconImageSequence" not in dataset:
            missing("VTK cannot render here")
        item = dataset.IconImageSequence[0]
        pixels = np.frombuffer(item.PixelData, np.uint8).reshape(item.Rows, item.Columns)
        assert (item.Rows, item.Columns) == (64, 64) and 0.2 < (pixels > 0).mean() < 0.9


# -- preview -------------------------------------------------------------------------------

def test_preview_writes_the_same_picture_as_the_api_for_stl_and_dicom(tmp_path, cube_stl, capsys):
    code, out, err = run(capsys, "preview", cube_stl, "-o", tmp_path / "a.png", "--size", "96")
    if code == 2 and "cannot draw" in err:
        missing(f"VTK cannot render here: {err.strip()}")
    assert code == 0 and err == "" and "96 x 96" in out
    from_file = png_pixels((tmp_path / "a.png").read_bytes())
    assert np.array_equal(from_file, estl.preview(cube_stl, size=96))
    # The same mesh wrapped in metres draws the same picture: it is fitted to the model.
    metres = tmp_path / "metres.stl"
    metres.write_bytes(binary_stl_by_hand(cube_triangles(20.0, origin=(-10.0, 30.0, 100.0)) / 1000.0))
    assert run(capsys, "wrap", metres, "-o", tmp_path / "m.dcm", "--units", "m", "--patient-id", "P")[0] == 0
    assert run(capsys, "preview", tmp_path / "m.dcm", "-o", tmp_path / "m.png", "--size", "96")[0] == 0
    assert np.array_equal(png_pixels((tmp_path / "m.png").read_bytes()), from_file)
    mode = os.stat(tmp_path / "a.png").st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.parametrize("arguments, fragment", [
    (["--size", "8"], "--size: the picture size must be 16 to 8192 pixels"),
    (["--size", "100000"], "--size: the picture size must be 16 to 8192 pixels"),
    (["--view", "top"], "invalid choice"),
])
def test_preview_refuses_bad_options_in_one_line(tmp_path, cube_stl, capsys, arguments, fragment):
    code, _out, err = run(capsys, "preview", cube_stl, "-o", tmp_path / "a.png", *arguments)
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert not (tmp_path / "a.png").exists()


def test_preview_refuses_what_is_not_its_to_write(tmp_path, cube_stl, capsys):
    before = cube_stl.read_bytes()
    code, _out, err = run(capsys, "preview", cube_stl, "-o", cube_stl, "--force")
    assert code == 2 and "is an input" in err
    assert run(capsys, "preview", cube_stl, "-o", tmp_path)[0] == 2
    (tmp_path / "old.png").write_bytes(b"keep")
    code, _out, err = run(capsys, "preview", cube_stl, "-o", tmp_path / "old.png")
    assert code == 2 and "--force" in err and (tmp_path / "old.png").read_bytes() == b"keep"
    broken = tmp_path / "broken.stl"
    broken.write_bytes(before[:200])
    code, _out, err = run(capsys, "preview", broken, "-o", tmp_path / "b.png")
    assert code == 2 and err.startswith(f"error: {broken}: ") and err.count("\n") == 1
    assert cube_stl.read_bytes() == before and not (tmp_path / "b.png").exists()


def test_png_bytes_are_a_valid_png_of_the_pixels():
    pixels = np.random.default_rng(5).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    assert np.array_equal(png_pixels(rendering.png_bytes(pixels)), pixels)


def test_objects_with_other_producers_icons_read_as_before(tmp_path, cube_stl, capsys):
    """An icon of another kind (RGB, 128 x 96, as some producers write) or none at all
    changes nothing in what is read: the same triangles, facts and no problems."""
    assert run(capsys, "wrap", cube_stl, "-o", tmp_path / "plain.dcm", "--patient-id", "P1", "--no-icon")[0] == 0
    plain = pydicom.dcmread(tmp_path / "plain.dcm")
    icon = pydicom.Dataset()
    icon.SamplesPerPixel, icon.PhotometricInterpretation, icon.PlanarConfiguration = 3, "RGB", 0
    icon.Rows, icon.Columns = 96, 128
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = bytes(range(256)) * (96 * 128 * 3 // 256)
    plain.IconImageSequence = [icon]
    plain.save_as(tmp_path / "foreign.dcm")
    before, after = estl.read(tmp_path / "plain.dcm"), estl.read(tmp_path / "foreign.dcm")
    assert np.array_equal(before.triangles_mm(), after.triangles_mm()) and after.problems == before.problems == []
    facts = []
    for name in ("plain", "foreign"):
        code, out, err = run(capsys, "info", tmp_path / f"{name}.dcm", "--json")
        assert code == 0 and err == ""
        facts.append({k: v for k, v in json.loads(out).items() if k != "file"})
    assert facts[0] == facts[1]
