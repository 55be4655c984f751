"""The core's path from a viewer's surfaces to objects, with no Slicer: the Slicer Logic
only converts its nodes to ``Surface`` and its volume to ``ShownVolume``, so what it
relies on is proven here on plain arrays (inputs/surfaces.py, the geometry mapping in
series/acquisition_geometry.py, all-or-nothing saving and the destination parser).

The volume is the tilted phantom of the Slicer tests (24 slices, 1 mm pixels, 2 mm
table steps, a 20 degree gantry tilt), written as CT files; the triangles are voxel
indices whose exact LPS position the slice geometry gives.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import slicer_scenes as scenes
from encapsulated_stl.errors import EncapsulatedSTLError, OutputError
from encapsulated_stl.inputs.surfaces import Surface, merged_surface, surface_models
from encapsulated_stl.iod.document import encapsulated_stl_bytes
from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, save_datasets, study_differences
from encapsulated_stl.pacs.peers import DicomNode, DicomWebServer, peer_for_destination
from encapsulated_stl.series.acquisition_geometry import ShownVolume, lps_from_ras
from encapsulated_stl.series.slice_geometry import SliceGeometry
from encapsulated_stl.series.source_series import scan_series

#: float32 STL coordinates of points within 200 mm of the origin: 2e-5 mm apart at most.
STL_ROUNDING_MM = 1e-4


def stl_triangles(dataset) -> np.ndarray:
    """The ``(n, 3, 3)`` vertices of the binary STL inside an object, read here from the bytes."""
    document = bytes(encapsulated_stl_bytes(dataset))  # a zero-copy view of the stored bytes
    count = int(np.frombuffer(document, "<u4", 1, 80)[0])
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    return np.frombuffer(document, record, count, 84)["vertices"].astype(np.float64)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """``(source series, exact geometry, stored voxels [k, j, i])`` in file (slice) order."""
    paths = scenes.write_tilted_phantom(tmp_path_factory.mktemp("phantom"))
    source = scan_series(paths)[0]
    order = sorted(range(len(source)), key=lambda n: source.files[n].name)
    datasets = [pydicom.dcmread(source.files[n]) for n in order]
    geometry = SliceGeometry.from_datasets(datasets)
    voxels = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])
    return source, geometry, voxels


def shown(matrix: np.ndarray, voxels: np.ndarray) -> ShownVolume:
    """A volume a viewer shows through the IJK-to-RAS ``matrix`` (4 x 4), no transforms."""
    return ShownVolume(
        voxels.shape,
        lambda ijk: ijk @ matrix[:3, :3].T + matrix[:3, 3],
        lambda ras: np.linalg.solve(matrix[:3, :3], (ras - matrix[:3, 3]).T).T,
        lambda k: voxels[k],
    )


def index_triangles(count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(205)
    slices, rows, columns = scenes.PHANTOM_SHAPE
    return rng.uniform([0, 0, 0], [columns - 1, rows - 1, slices - 1], (count, 3, 3))


def test_a_volume_shown_orthogonally_gives_exact_lps_through_the_slice_geometry(phantom):
    source, geometry, voxels = phantom
    ijk = index_triangles()
    exact = geometry.lps_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape)
    volume = shown(scenes.orthogonal_ijk_to_ras(geometry), voxels)
    drawn = volume.world_ras_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape)
    assert np.abs(lps_from_ras(drawn) - exact).max() > 3.0  # the plain reading is millimetres off
    told = []
    [dataset] = surface_models([Surface("bone", drawn)], source, volume, explain=told.append)
    assert np.abs(stl_triangles(dataset) - exact).max() < STL_ROUNDING_MM
    assert len(told) == 1 and "mapped through the exact slice geometry" in told[0]


def test_a_volume_shown_at_its_dicom_positions_is_only_flipped(phantom):
    source, geometry, voxels = phantom
    ijk = index_triangles()
    exact = geometry.lps_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape)
    volume = shown(scenes.sheared_ijk_to_ras(geometry), voxels)
    drawn = volume.world_ras_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape)
    told = []
    [dataset] = surface_models([Surface("bone", drawn)], source, volume, explain=told.append)
    assert np.abs(stl_triangles(dataset) - exact).max() < STL_ROUNDING_MM
    assert "shown at the DICOM slice positions" in told[0]


def test_resampled_voxels_on_a_wrong_grid_are_taken_where_they_are_shown(phantom):
    """Voxels that are not the stored slices were moved into the grid (a hardened
    transform): the surface drawn on them is where it is shown, no correction."""
    source, geometry, voxels = phantom
    ijk = index_triangles()
    volume = shown(scenes.orthogonal_ijk_to_ras(geometry), voxels + 500.0)  # other values
    drawn = volume.world_ras_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape)
    told = []
    [dataset] = surface_models([Surface("bone", drawn)], source, volume, explain=told.append)
    assert np.abs(stl_triangles(dataset) - lps_from_ras(drawn)).max() < STL_ROUNDING_MM
    assert "resampled" in told[0]


def test_surfaces_become_one_series_of_one_group_with_their_names_colours_and_units(phantom):
    source, geometry, voxels = phantom
    ijk = index_triangles()
    drawn = scenes.exact_ras(geometry, ijk.reshape(-1, 3)).reshape(ijk.shape)
    surfaces = [Surface("Liver", drawn, (0.8, 0.3, 0.2), 0.5), Surface("Vessels", drawn[:10], (0.1, 0.2, 0.9))]
    made = surface_models(surfaces, source, metadata=ModelMetadata(units="cm", content_description="Plan"),
                          made_here=True)
    assert [ds.ContentDescription for ds in made] == ["Plan: Liver", "Plan: Vessels"]
    assert [int(ds.InstanceNumber) for ds in made] == [1, 2]
    assert len({ds.SeriesInstanceUID for ds in made}) == 1 and len({ds.ModelGroupUID for ds in made}) == 1
    assert made[0].RecommendedDisplayCIELabValue != made[1].RecommendedDisplayCIELabValue
    assert float(made[0].RecommendedPresentationOpacity) == 0.5 and "RecommendedPresentationOpacity" not in made[1]
    assert all("DerivationAlgorithmSequence" in ds for ds in made)
    exact_cm = geometry.lps_from_index(ijk.reshape(-1, 3)).reshape(ijk.shape) / 10.0
    assert np.abs(stl_triangles(made[0]) - exact_cm).max() < STL_ROUNDING_MM / 10
    assert all(ds.StudyInstanceUID == source.study_instance_uid for ds in made)

    [alone] = surface_models(surfaces[:1], source)  # a mesh made elsewhere: no derivation claimed
    assert alone.ContentDescription == "Liver" and "ModelGroupUID" not in alone
    assert "DerivationAlgorithmSequence" not in alone


def test_merged_surfaces_are_one_model_without_a_colour_of_their_own():
    a, b = np.zeros((3, 3, 3)), np.ones((5, 3, 3))
    merged = merged_surface([Surface("a", a, (1, 0, 0)), Surface("b", b, (0, 1, 0), 0.3)], "both")
    assert merged.name == "both" and merged.triangles_ras.shape == (8, 3, 3)
    assert merged.color is None and merged.opacity is None


def test_surfaces_without_a_source_share_one_new_study_and_need_a_patient_id():
    drawn = index_triangles(5)
    surfaces = [Surface("a", drawn), Surface("b", drawn)]
    made = surface_models(surfaces, new_study=NewStudy(patient_id="P-205"))
    assert len({(ds.StudyInstanceUID, ds.FrameOfReferenceUID) for ds in made}) == 1
    assert all(ds.PatientID == "P-205" for ds in made)
    with pytest.raises(EncapsulatedSTLError, match="needs a Patient ID"):
        surface_models(surfaces)
    with pytest.raises(EncapsulatedSTLError, match="unknown units 'inch'"):
        surface_models(surfaces, metadata=ModelMetadata(units="inch"), new_study=NewStudy(patient_id="P"))
    with pytest.raises(EncapsulatedSTLError, match="no surfaces"):
        surface_models([], new_study=NewStudy(patient_id="P"))


def test_saving_several_objects_is_all_or_nothing(tmp_path):
    made = surface_models([Surface("a", index_triangles(4)), Surface("b", index_triangles(6))],
                          new_study=NewStudy(patient_id="P-205"))
    blocked = tmp_path / "b.dcm"
    blocked.mkdir()  # the second object cannot be written: the first must not stay
    with pytest.raises(OutputError):
        save_datasets([(made[0], tmp_path / "a.dcm"), (made[1], blocked)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dcm"] and blocked.is_dir()

    replaced = tmp_path / "old.dcm"
    replaced.write_bytes(b"an earlier file")
    with pytest.raises(OutputError):
        save_datasets([(made[0], replaced), (made[1], blocked)], force=True)
    assert replaced.exists()  # not created by the call, so not removed by it

    written = save_datasets([(made[0], tmp_path / "a.dcm"), (made[1], tmp_path / "c.dcm")])
    assert [p.name for p in written] == ["a.dcm", "c.dcm"]
    assert all(pydicom.dcmread(p).SOPInstanceUID == ds.SOPInstanceUID for p, ds in zip(written, made))


def test_one_destination_text_names_a_dicom_node_or_a_dicomweb_server():
    node = peer_for_destination("ORTHANC@127.0.0.1:4242", calling_ae_title=" ")
    assert isinstance(node, DicomNode) and (node.ae_title, node.port) == ("ORTHANC", 4242)
    assert node.calling_ae_title == "ENCAPSULATEDSTL"
    server = peer_for_destination(" https://pacs.example.org/dicom-web ", token="t", timeout=5)
    assert isinstance(server, DicomWebServer) and server.timeout == 5.0
    for destination, options, problem in [
        ("", {}, "give a destination"),
        ("http://pacs/dicom-web", {"tls_certificate": "c.pem"}, "client certificate and key are for DICOM TLS"),
        ("ORTHANC@127.0.0.1:4242", {"user": "u"}, "is for a DICOMweb server"),
        ("ftp://pacs/dicom-web", {}, "ftp"),
    ]:
        with pytest.raises(EncapsulatedSTLError, match=problem):
            peer_for_destination(destination, **options)


def test_patient_and_study_values_a_source_overrides_are_named(phantom):
    source, _geometry, _voxels = phantom
    header = source.datasets[0]  # Phantom^Tilted, PHANTOM-1, no birth date, no study description
    given = NewStudy(patient_name="Other^Name", patient_id="PHANTOM-1", patient_birth_date="No name",
                     study_description="No study description")
    assert study_differences(given, header, ["No name", "No study description"]) == [
        "Patient Name 'Phantom^Tilted' (not 'Other^Name')"]
    assert study_differences(given, header) == [
        "Patient Name 'Phantom^Tilted' (not 'Other^Name')", "Patient Birth Date '' (not 'No name')",
        "Study Description '' (not 'No study description')"]
    assert study_differences(NewStudy(), header) == []


def test_surfaces_loaded_from_objects_become_new_versions_of_them(tmp_path):
    from encapsulated_stl.inputs.surfaces import surface_versions
    from encapsulated_stl.iod.model import read_encapsulated_model
    from encapsulated_stl.series.acquisition_geometry import ras_from_lps

    triangles = index_triangles(6)
    earlier = []
    for name in ("a", "b"):
        dataset = surface_models([Surface(name, ras_from_lps(triangles))], metadata=ModelMetadata(units="cm"),
                                 new_study=NewStudy(patient_id="P-15", study_instance_uid="1.2.826.0.1.3680043.8.498.15",
                                                    frame_of_reference_uid="1.2.826.0.1.3680043.8.498.16"))[0]
        earlier.append(read_encapsulated_model(save_datasets([(dataset, tmp_path / f"{name}.dcm")])[0]))
    edited = [Surface("a", ras_from_lps(triangles + 1.0), (0.1, 0.2, 0.3)), Surface("b", ras_from_lps(triangles))]
    made = surface_versions(edited, [[earlier[0]], [earlier[1]]])
    assert len({ds.SeriesInstanceUID for ds in made}) == 1 and [int(ds.InstanceNumber) for ds in made] == [1, 2]
    for dataset, before, surface in zip(made, earlier, edited):
        named = dataset.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert named.ReferencedSOPInstanceUID == before.sop_instance_uid
        assert dataset.MeasurementUnitsCodeSequence[0].CodeValue == "cm"  # the earlier object's units
        np.testing.assert_allclose(stl_triangles(dataset) * 10.0, lps_from_ras(surface.triangles_ras), atol=1e-4)
        assert dataset.FrameOfReferenceUID == "1.2.826.0.1.3680043.8.498.16"
    with pytest.raises(EncapsulatedSTLError, match="one list of earlier objects per surface"):
        surface_versions(edited, [[earlier[0]]])
