"""``from-seg`` on NIfTI and NRRD label maps, Slicer ``.seg.nrrd`` included.

The grids are oblique (rotated 35 degrees about a skew axis) with anisotropic
voxels (0.9 x 1.1 x 1.3 mm).  A NIfTI file here carries that grid in its sform and
a different, axial grid in its qform (as after a registration): the sform must win.
Meshes are measured against the true sphere in LPS; readings that take the qform,
or ignore both matrices (only the voxel sizes, as the Orthanc STL plugin does), are
shown to be centimetres off.
"""

from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.iod.color import rgb_from_dicom_lab
from encapsulated_stl.inputs.labelmaps import read_nifti_segments, read_nrrd_segments
from encapsulated_stl.series.slice_geometry import AffineGeometry
from encapsulated_stl.mesh.surface import extract_surface
from from_seg_data import CENTRE, model_triangles, sphere_errors, sphere_mask, tilted_ct

SHAPE_IJK = (56, 50, 44)
SPACING = np.array([0.9, 1.1, 1.3])
SMALL_CENTRE = CENTRE + np.array([11.0, -11.0, 11.0])
SMALL_RADIUS = 3.5
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def oblique_lps_affine() -> np.ndarray:
    """Voxel index -> LPS: rotated, anisotropic, centred on the sphere."""
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation((1.0, 2.0, 3.0), 35.0) * SPACING
    middle = (np.asarray(SHAPE_IJK) - 1) / 2.0
    matrix[:3, 3] = CENTRE - matrix[:3, :3] @ middle
    return matrix


def label_map_kji(lps_affine) -> np.ndarray:
    """``[k, j, i]`` uint8: 1 in the sphere, 2 in the small sphere."""
    geometry = AffineGeometry(lps_affine)
    shape = SHAPE_IJK[::-1]
    labels = sphere_mask(geometry, shape)
    labels[sphere_mask(geometry, shape, SMALL_CENTRE, SMALL_RADIUS) == 1] = 2
    return labels


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return tilted_ct(tmp_path_factory.mktemp("labelmaps") / "ct", tilt=15.0, slice_count=6)


def _nifti(path, labels_kji, sform_ras, qform_ras, sform_code=2, qform_code=1):
    image = nib.Nifti1Image(labels_kji.transpose(2, 1, 0).copy(), None)
    image.set_qform(qform_ras, code=qform_code)
    image.set_sform(sform_ras, code=sform_code)
    image.header.set_zooms(tuple(SPACING))
    nib.save(image, str(path))
    return path


def _axial_qform() -> np.ndarray:
    matrix = np.diag([*SPACING, 1.0])
    matrix[:3, 3] = (-40.0, 25.0, 10.0)
    return matrix


def test_nifti_sform_wins_over_a_different_qform_and_lands_on_the_true_spheres(ct, tmp_path, capsys):
    lps = oblique_lps_affine()
    path = _nifti(tmp_path / "labels.nii.gz", label_map_kji(lps), LPS_FROM_RAS @ lps, _axial_qform())
    code = main(["from-seg", str(path), "--reference", str(ct.directory), "-o", str(tmp_path / "out")])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1_Label_1.dcm", "2_Label_2.dcm"]
    # Binary masks on 0.9 x 1.1 x 1.3 mm voxels: the fit averages the half-voxel
    # staircase out.  Measured: centre 0.0004 mm, radius 0.03 mm, RMS 0.17 mm.
    ball = sphere_errors(model_triangles(tmp_path / "out" / "1_Label_1.dcm"))
    assert ball["centre"] <= 0.05 and ball["radius"] <= 0.1 and ball["rms"] <= 0.3
    small = sphere_errors(model_triangles(tmp_path / "out" / "2_Label_2.dcm"), SMALL_CENTRE, SMALL_RADIUS)
    assert small["centre"] <= 0.1 and small["radius"] <= 0.15

    # measured: 45 mm off through the qform, 35 mm with voxel sizes only
    segment = read_nifti_segments(path)[0]
    wrong_readings = {
        "qform": AffineGeometry(LPS_FROM_RAS @ nib.load(str(path)).get_qform()),
        "voxel sizes only": AffineGeometry(np.diag([*SPACING, 1.0])),
    }
    for name, geometry in wrong_readings.items():
        triangles = extract_surface(segment.volume, geometry, 0.5)
        assert sphere_errors(triangles)["centre"] >= 20.0, name


def test_nifti_without_sform_uses_the_qform(tmp_path):
    lps = oblique_lps_affine()  # a rotation with voxel sizes: a qform can hold it exactly
    bogus_sform = np.diag([2.0, 2.0, 2.0, 1.0])
    path = _nifti(tmp_path / "liver.nii", (label_map_kji(lps) == 1).astype(np.uint8),
                  bogus_sform, LPS_FROM_RAS @ lps, sform_code=0, qform_code=1)
    [segment] = read_nifti_segments(path)
    assert (segment.number, segment.name) == (1, "liver")  # one label: named after the file
    part = segment.cropped()
    errors = sphere_errors(extract_surface(part.volume, part.geometry, part.level))
    assert errors["centre"] <= 0.05 and errors["radius"] <= 0.1


def _seg_nrrd(path, labels_kji, lps_affine):
    header = {
        "space": "left-posterior-superior",
        "space directions": lps_affine[:3, :3].T,
        "space origin": lps_affine[:3, 3],
        "kinds": ["domain"] * 3,
        "Segment0_ID": "Segment_1", "Segment0_Name": "Tumour", "Segment0_Color": "0.9 0.1 0.2",
        "Segment0_LabelValue": "1", "Segment0_Layer": "0",
        "Segment1_ID": "Segment_2", "Segment1_Name": "Node", "Segment1_Color": "0.1 0.8 0.3",
        "Segment1_LabelValue": "2", "Segment1_Layer": "0",
    }
    nrrd.write(str(path), labels_kji.transpose(2, 1, 0).copy(), header, index_order="F")
    return path


def test_slicer_seg_nrrd_gives_names_colours_and_exact_geometry(ct, tmp_path, capsys):
    lps = oblique_lps_affine()
    path = _seg_nrrd(tmp_path / "case.seg.nrrd", label_map_kji(lps), lps)
    segments = read_nrrd_segments(path)
    assert [(s.number, s.name, s.color) for s in segments] == [
        (1, "Tumour", (0.9, 0.1, 0.2)), (2, "Node", (0.1, 0.8, 0.3))]
    code = main(["from-seg", str(path), "--reference", str(ct.directory), "-o", str(tmp_path / "out"),
                 "--segments", "tumour", "-q"])
    assert code == 0, capsys.readouterr().err
    import pydicom
    model = pydicom.dcmread(tmp_path / "out" / "1_Tumour.dcm")
    assert model.ContentDescription == "Tumour"
    assert np.allclose(rgb_from_dicom_lab(model.RecommendedDisplayCIELabValue), (0.9, 0.1, 0.2), atol=1 / 255)
    errors = sphere_errors(model_triangles(tmp_path / "out" / "1_Tumour.dcm"))
    assert errors["centre"] <= 0.05 and errors["radius"] <= 0.1 and errors["rms"] <= 0.3


def test_ras_nrrd_label_map_is_flipped_to_lps(tmp_path):
    lps = oblique_lps_affine()
    ras = LPS_FROM_RAS @ lps
    header = {"space": "right-anterior-superior", "space directions": ras[:3, :3].T,
              "space origin": ras[:3, 3], "kinds": ["domain"] * 3}
    path = tmp_path / "ball.nrrd"
    nrrd.write(str(path), (label_map_kji(lps) == 1).astype(np.int16).transpose(2, 1, 0).copy(),
               header, index_order="F")
    [segment] = read_nrrd_segments(path)
    assert segment.name == "ball"
    part = segment.cropped()
    errors = sphere_errors(extract_surface(part.volume, part.geometry, part.level))
    assert errors["centre"] <= 0.05 and errors["radius"] <= 0.1


def test_bad_label_maps_exit_2_naming_the_file(ct, tmp_path, capsys):
    cases = {}
    four_d = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.uint8), np.eye(4)), str(four_d))
    cases[four_d] = "3D"
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    cases[garbage] = "cannot read as NIfTI"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases[text] = "unknown file type"
    no_space = tmp_path / "plain.nrrd"
    nrrd.write(str(no_space), np.ones((3, 3, 3), np.uint8))
    cases[no_space] = "no 'space directions'"
    for path, fragment in cases.items():
        code = main(["from-seg", str(path), "--reference", str(ct.directory), "-o", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2, path
        assert err.count("\n") == 1 and str(path) in err and fragment in err, err
    assert not (tmp_path / "o").exists()
