"""Export to DICOM from Slicer, release by release (issue 11, point 5).

The CT is loaded by Slicer's own DICOMScalarVolumePlugin through DICOMUtils.loadSeriesByUID,
so it sits under its patient and study in the subject hierarchy as in Slicer.  The export
goes through the steps of Slicer's "Export to DICOM" (Testing/slicer_harness/export_dialog.py:
the subject hierarchy plugin's check for a patient and study, the dialog's examination of
every plugin, the tag editor's tags, the export to a folder or to the database).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest
import vtk

import slicer_scenes as scenes
from slicer_harness import qt

PLUGIN = "DICOMEncapsulatedSTLPlugin"
ROUND_TRIP_MM = 1e-3
#: A sphere fitted to a labelmap surface of the phantom's 9 mm sphere (1 x 1 x 2 mm voxels).
SPHERE_CENTRE_MM = 0.15
SPHERE_RADIUS_MM = 0.5
#: The same on the unevenly spaced series (0.8 x 0.8 x 1.5-3.5 mm voxels).
UNEVEN_SPHERE_CENTRE_MM = 0.3


def load_ct(harness, folder, regularization="default"):
    """The CT as Slicer's DICOM browser loads it (DICOMScalarVolumePlugin)."""
    from DICOMLib import DICOMUtils

    qt.QSettings().setValue("DICOM/ScalarVolume/AcquisitionGeometryRegularization", regularization)
    files = sorted(str(p) for p in folder.iterdir())
    for path in files:
        harness.database.insert(path)
    node_ids = DICOMUtils.loadSeriesByUID([harness.database.fileValue(files[0], "0020,000E")])
    nodes = [harness.slicer.mrmlScene.GetNodeByID(i) for i in node_ids]
    return next(n for n in nodes if n.IsA("vtkMRMLScalarVolumeNode"))


def segment_volume(harness, volume, name="Segmentation", threshold=0.0, segments=(("Sphere", (0.9, 0.3, 0.2)),)):
    """Segments thresholded from the loaded CT's voxels, as the Segment Editor makes them
    (same geometry and parent transform as the volume)."""
    import slicer.util

    voxels = slicer.util.arrayFromVolume(volume)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    segmentation = harness.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segmentation.SetAndObserveTransformNodeID(volume.GetTransformNodeID())
    ids = []
    for index, (segment_name, colour) in enumerate(segments):
        mask = voxels > threshold
        if index:  # a second, smaller part: the lower half of the sphere
            mask[: voxels.shape[0] // 2] = False
        ids.append(scenes.add_labelmap_segment(segmentation, mask, scenes.numpy_from_matrix(matrix), segment_name, colour))
    return segmentation, ids


def open_dialog(harness, node):
    sh = harness.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(harness.slicer.mrmlScene)
    item = sh.GetItemByDataNode(node) or sh.CreateItem(sh.GetSceneItemID(), node)
    dialog = harness.export_dialog()
    assert dialog.open(item)
    dialog.select(dialog.row_of(PLUGIN))
    return dialog


def read(paths):
    return [pydicom.dcmread(p) for p in paths]


def sphere_fit(points):
    from encapsulated_stl.inputs.phantom import fit_sphere

    return fit_sphere(np.asarray(points).reshape(-1, 3))


def test_segments_are_exported_one_object_each_in_the_source_study_and_frame(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume, segments=(("Sphere", (0.9, 0.3, 0.2)), ("Lower half", (0.2, 0.5, 0.9))))
    dialog = open_dialog(mrml, segmentation)
    exportable = dialog.exportables[0]
    assert "source series" in exportable.tooltip
    source = pydicom.dcmread(next(phantom_ct.iterdir()), stop_before_pixels=True)
    assert exportable.tag("PatientID") == source.PatientID  # from the CT's patient item
    dialog.edit("ModelUsage", "implant")
    dialog.edit("ImageLaterality", "L")
    result = dialog.export(str(tmp_path))
    assert result.ok, result.error
    objects = read(result.files)
    assert len(objects) == 2
    assert {str(o.SeriesInstanceUID) for o in objects} == {str(objects[0].SeriesInstanceUID)}
    assert len({str(o.ModelGroupUID) for o in objects}) == 1
    for o in objects:
        assert o.StudyInstanceUID == source.StudyInstanceUID and o.PatientID == source.PatientID
        assert o.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert len(o.SourceInstanceSequence) == 24
        assert o.ImageLaterality == "L"
        assert int(o.SeriesNumber) == int(source.SeriesNumber) + 1  # the next free number in the study
        (icon,) = o.IconImageSequence  # each segment's own picture (see test_previews.py)
        assert (icon.Rows, icon.Columns, icon.PhotometricInterpretation) == (64, 64, "MONOCHROME2")
    assert objects[0].IconImageSequence[0].PixelData != objects[1].IconImageSequence[0].PixelData
    # nothing to tell: the dialog's patient and study are the CT's
    assert not [s for s in mrml.user.shown if s.title == "Encapsulated STL export"]
    sphere = next(o for o in objects if o.ContentDescription == "Sphere")
    from encapsulated_stl.iod.model import model_from_dataset

    centre, radius = sphere_fit(model_from_dataset(sphere).triangles_mm())
    true_centre = scenes.phantom_sphere_centre_lps()
    print(f"sphere centre off by {np.linalg.norm(centre - true_centre):.3f} mm, radius {radius:.3f} mm")
    assert np.linalg.norm(centre - true_centre) < SPHERE_CENTRE_MM
    assert abs(radius - scenes.PHANTOM_SPHERE_RADIUS_MM) < SPHERE_RADIUS_MM


@pytest.fixture(scope="module")
def uneven_tilted_ct(tmp_path_factory):
    """A 20 degree tilted CT with uneven table steps and a missing slice: Slicer shows it
    differently under each acquisition geometry setting."""
    from encapsulated_stl.inputs.phantom import Sphere, write_phantom

    steps = [2.0] * 8 + [3.5] * 6 + [1.5] * 8
    return write_phantom(tmp_path_factory.mktemp("uneven"), objects=(Sphere((10.0, -5.0, 38.0), 12.0, 1000.0),),
                         slice_count=len(steps) + 1, spacing_mm=steps, missing_slices=(11,), rows=96, columns=96,
                         pixel_spacing_mm=(0.8, 0.8), edge_width_mm=0.1)


def test_an_uneven_series_shown_without_regularization_gives_the_true_sphere(mrml, uneven_tilted_ct, tmp_path):
    """With Slicer's acquisition geometry regularization "none" an unevenly spaced tilted series
    is shown on an even grid, which is wrong; the exported model is still where the sphere is.

    (The other settings make DICOMScalarVolumePlugin build a grid transform, which fails under
    slicer-core's VTK 9.6: ``GetTransformFromParent().GetDisplacementGrid()`` is None.  Volumes
    under such a transform, and hardened ones, are tested with transforms built by the tests in
    test_slicer_export_geometry.py.)"""
    from encapsulated_stl.iod.model import read_encapsulated_model

    volume = load_ct(mrml, uneven_tilted_ct.directory, "none")
    assert volume.GetParentTransformNode() is None
    segmentation, _ = segment_volume(mrml, volume, threshold=uneven_tilted_ct.iso_level())
    result = open_dialog(mrml, segmentation).export(str(tmp_path))
    assert result.ok, result.error
    sphere = uneven_tilted_ct.objects[0]
    centre, radius = sphere_fit(read_encapsulated_model(result.files[0]).triangles_mm())
    error = float(np.linalg.norm(centre - np.asarray(sphere.centre)))
    print(f"none: centre off by {error:.3f} mm, radius {radius:.3f} mm (true {sphere.radius})")
    assert error < UNEVEN_SPHERE_CENTRE_MM
    assert abs(radius - sphere.radius) < SPHERE_RADIUS_MM
    # Slicer's own world coordinates put the sphere elsewhere: the correction mattered
    from vtk.util.numpy_support import vtk_to_numpy

    from encapsulated_stl.series.acquisition_geometry import lps_from_ras

    surface = vtk.vtkPolyData()
    mrml.slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentClosedSurfaceRepresentation(
        segmentation, segmentation.GetSegmentation().GetNthSegmentID(0), surface, True)
    shown_centre, _ = sphere_fit(lps_from_ras(vtk_to_numpy(surface.GetPoints().GetData()).astype(float)))
    print(f"as Slicer shows it: centre off by {np.linalg.norm(shown_centre - np.asarray(sphere.centre)):.2f} mm")
    assert np.linalg.norm(shown_centre - np.asarray(sphere.centre)) > 1.0


def test_a_patient_changed_in_the_dialog_is_told_and_the_source_wins(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    dialog = open_dialog(mrml, segmentation)
    dialog.edit("PatientName", "Someone^Else")
    dialog.edit("PatientID", "OTHER-7")
    result = dialog.export(str(tmp_path))
    assert result.ok, result.error
    (model,) = read(result.files)
    assert str(model.PatientName) == "Phantom^Tilted" and model.PatientID == "PHANTOM-1"
    told = [s for s in mrml.user.shown if s.title == "Encapsulated STL export"]
    assert len(told) == 1
    assert "Patient Name 'Phantom^Tilted' (not 'Someone^Else')" in told[0].text
    assert "Patient ID 'PHANTOM-1' (not 'OTHER-7')" in told[0].text and "source images" in told[0].text


def test_without_a_source_the_patient_and_study_are_the_dialogs(mrml, tmp_path):
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    model = mrml.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLModelNode", "Guide")
    model.SetAndObservePolyData(sphere.GetOutput())
    dialog = open_dialog(mrml, model)  # not under a study: the user accepts a new patient and study
    asked = [s for s in mrml.user.shown if s.title == "Create new patient and study for DICOM export?"]
    assert len(asked) == 1
    assert "No source series found" in dialog.exportables[0].tooltip
    study_uid = dialog.exportables[0].tag("StudyInstanceUID")
    assert dialog.exportables[0].tag("PatientName") == "Anonymous"
    dialog.edit("PatientName", "Doe^Jane")
    dialog.edit("PatientID", "P-42")
    result = dialog.export(str(tmp_path))
    assert result.ok, result.error
    (dataset,) = read(result.files)
    assert str(dataset.PatientName) == "Doe^Jane" and dataset.PatientID == "P-42"
    assert dataset.StudyInstanceUID == study_uid
    assert int(dataset.SeriesNumber) == 1  # the first series of a new study


def test_series_numbers_do_not_collide_in_the_study(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    first = open_dialog(mrml, segmentation)
    assert first.exportables[0].tag("SeriesNumber") == "3"  # the CT is series 2
    assert first.export().ok  # to the database: series 3 is now taken
    second = open_dialog(mrml, segmentation)
    assert second.exportables[0].tag("SeriesNumber") == "4"
    second.edit("SeriesNumber", "2")  # the CT's number, typed by the user
    result = second.export(str(tmp_path))
    assert result.ok, result.error
    (model,) = read(result.files)
    assert int(model.SeriesNumber) == 4
    told = [s.text for s in mrml.user.shown if s.title == "Encapsulated STL export"]
    assert any("Series Number 2 is already used" in t and "series 4" in t for t in told)


def test_export_to_the_database_copies_the_files_in(mrml, phantom_ct):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    result = open_dialog(mrml, segmentation).export()  # to the DICOM database
    assert result.ok, result.error
    assert not os.path.exists(result.directory)  # the temporary folder is gone
    uid = str(pydicom.dcmread(next(phantom_ct.iterdir()), stop_before_pixels=True).StudyInstanceUID)
    series = [s for s in mrml.database.seriesForStudy(uid)
              if mrml.database.fileValue(mrml.database.filesForSeries(s, 1)[0], "0008,0060") == "M3D"]
    (path,) = mrml.database.filesForSeries(series[0])
    assert path.startswith(mrml.database.databaseDirectory) and os.path.isfile(path)


def test_a_loaded_model_exports_again_with_its_source_and_its_geometry(mrml, phantom_ct, tmp_path):
    from DICOMLib import DICOMUtils

    from encapsulated_stl.iod.model import read_encapsulated_model

    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    (tmp_path / "first").mkdir()
    first = open_dialog(mrml, segmentation).export(str(tmp_path / "first"))
    assert first.ok, first.error
    for path in first.files:
        mrml.database.insert(path)
    original = read_encapsulated_model(first.files[0])
    node_ids = DICOMUtils.loadSeriesByUID([str(original.series_instance_uid)])
    model = next(mrml.slicer.mrmlScene.GetNodeByID(i) for i in node_ids
                 if mrml.slicer.mrmlScene.GetNodeByID(i).IsA("vtkMRMLModelNode"))
    dialog = open_dialog(mrml, model)
    # the tag editor fills the series tags from the loaded series' item
    assert dialog.exportables[0].tag("SeriesNumber") == str(original.dataset.SeriesNumber)
    (tmp_path / "again").mkdir()
    again = dialog.export(str(tmp_path / "again"))
    assert again.ok, again.error
    copy = read_encapsulated_model(again.files[0])
    assert copy.source_instance_uids and set(copy.source_instance_uids) == set(original.source_instance_uids)
    assert copy.series_instance_uid != original.series_instance_uid
    assert int(copy.dataset.SeriesNumber) != int(original.dataset.SeriesNumber)
    assert copy.dataset.StudyInstanceUID == original.dataset.StudyInstanceUID
    difference = np.abs(copy.triangles_mm() - original.triangles_mm()).max()
    print(f"re-export of a loaded model: {copy.mesh.triangle_count} triangles, {difference:.2e} mm")
    assert copy.mesh.triangle_count == original.mesh.triangle_count and difference < ROUND_TRIP_MM


def test_merged_segments_are_one_object(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume, segments=(("Sphere", (1, 0, 0)), ("Lower half", (0, 0, 1))))
    dialog = open_dialog(mrml, segmentation)
    dialog.edit("Segments", "merged")
    result = dialog.export(str(tmp_path))
    assert result.ok and len(result.files) == 1


def test_an_empty_segment_is_a_message_and_nothing_is_written(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    scenes.add_labelmap_segment(segmentation, np.zeros(mrml.slicer.util.arrayFromVolume(volume).shape, dtype=bool),
                                np.eye(4), "Nothing", (1, 1, 0))
    result = open_dialog(mrml, segmentation).export(str(tmp_path))
    assert not result.ok and "'Nothing'" in result.error and "empty" in result.error
    assert os.listdir(tmp_path) == []


def test_a_folder_that_cannot_take_the_files_is_a_message(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    a_file = tmp_path / "a file"
    a_file.write_bytes(b"")
    dialog = open_dialog(mrml, segmentation)
    dialog.exportables[0].setDirectory(str(a_file))
    plugin = mrml.dicom_plugins[PLUGIN]()
    error = plugin.export(dialog.exportables)
    assert error and os.listdir(tmp_path) == ["a file"]


def test_a_model_under_a_linear_transform_is_exported_in_world_coordinates(mrml, tmp_path):
    from encapsulated_stl.series.acquisition_geometry import ras_from_lps
    from encapsulated_stl.iod.model import read_encapsulated_model

    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(12.0)
    sphere.SetThetaResolution(24)
    sphere.SetPhiResolution(12)
    sphere.Update()
    scene = mrml.slicer.mrmlScene
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "Implant")
    model.SetAndObservePolyData(sphere.GetOutput())
    model.CreateDefaultDisplayNodes()
    transform = vtk.vtkTransform()
    transform.Translate(10.0, -20.0, 35.0)
    transform.RotateZ(30.0)
    transform.RotateX(-15.0)
    transform_node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform_node.SetMatrixTransformToParent(transform.GetMatrix())
    model.SetAndObserveTransformNodeID(transform_node.GetID())
    dialog = open_dialog(mrml, model)
    dialog.edit("MeasurementUnits", "cm")
    result = dialog.export(str(tmp_path))
    assert result.ok, result.error
    loaded = read_encapsulated_model(result.files[0])
    assert loaded.units == "cm" and "SourceInstanceSequence" not in loaded.dataset
    points = np.array([sphere.GetOutput().GetPoint(i) for i in range(sphere.GetOutput().GetNumberOfPoints())])
    matrix = scenes.numpy_from_matrix(transform.GetMatrix())
    expected = ras_from_lps(points @ matrix[:3, :3].T + matrix[:3, 3])
    # every exported vertex is a transformed sphere point
    actual = loaded.triangles_mm().reshape(-1, 3)
    nearest = np.min(np.linalg.norm(actual[:, None, :] - expected[None, :, :], axis=-1), axis=1)
    assert nearest.max() <= 1e-4


def test_a_source_damaged_since_loading_stops_the_export_with_its_name(mrml, phantom_ct, tmp_path):
    ct = tmp_path / "ct"  # a copy: the phantom is shared with the other tests
    shutil.copytree(phantom_ct, ct)
    volume = load_ct(mrml, ct)
    segmentation, _ = segment_volume(mrml, volume)
    uids = volume.GetAttribute("DICOM.instanceUIDs").split()
    damaged = mrml.database.fileForInstance(uids[len(uids) // 2])
    with open(damaged, "r+b") as stream:  # cut inside the pixel data, as a failed copy does
        stream.truncate(stream.seek(0, 2) - 1000)
    (tmp_path / "out").mkdir()
    result = open_dialog(mrml, segmentation).export(str(tmp_path / "out"))
    assert not result.ok
    assert damaged in result.error and "repair or remove" in result.error
    assert list((tmp_path / "out").iterdir()) == []


def test_long_names_are_cut_to_fit_typed_values_that_do_not_fit_are_refused(mrml, phantom_ct, tmp_path):
    """A segment and a segmentation named past 64 characters give descriptions cut to fit
    with "..." (dciodvfy: nothing of our own); a description typed in the tag editor past
    its limit stops the export with the reason, nothing written."""
    from dicom_checks import dciodvfy

    long_name = "Mandible with both condyles, coronoid processes and the inferior alveolar canals"
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume, name=long_name, segments=((long_name, (0.9, 0.3, 0.2)),))
    dialog = open_dialog(mrml, segmentation)
    assert dialog.exportables[0].tag("SeriesDescription") == long_name[:61] + "..."
    (tmp_path / "ok").mkdir()
    (tmp_path / "refused").mkdir()
    result = dialog.export(str(tmp_path / "ok"))
    assert result.ok, result.error
    (path,) = result.files
    (model,) = read(result.files)
    assert model.ContentDescription == long_name[:61] + "..."
    assert model.SeriesDescription == long_name[:61] + "..."
    errors, warnings = dciodvfy(path)
    source_errors, source_warnings = dciodvfy(next(phantom_ct.iterdir()))
    inherited = {line.split(" - ", 1)[-1] for line in source_errors + source_warnings}
    assert [line for line in errors + warnings if line.split(" - ", 1)[-1] not in inherited] == []

    typed = open_dialog(mrml, segmentation)
    typed.edit("ContentDescription", "x" * 65)
    refused = typed.export(str(tmp_path / "refused"))
    assert not refused.ok and "Content Description (0070,0081)" in refused.error and "at most 64" in refused.error
    assert list((tmp_path / "refused").iterdir()) == []


def test_the_modules_export_without_a_source_takes_the_patient_it_sits_under_or_asks(mrml, tmp_path):
    """The module's Export (no dialog, no tag editor) writes a model without source images only
    with a Patient ID: the one of the patient the node sits under in the subject hierarchy;
    under none, it stops and says so (never an empty or invented Patient ID)."""
    from EncapsulatedSTL import EncapsulatedSTLLogic

    from encapsulated_stl.errors import EncapsulatedSTLError

    sphere = vtk.vtkSphereSource()
    sphere.Update()
    model = mrml.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLModelNode", "Guide")
    model.SetAndObservePolyData(sphere.GetOutput())
    logic = EncapsulatedSTLLogic()
    with pytest.raises(EncapsulatedSTLError, match="needs a Patient ID"):
        logic.exportNode(model, outputDirectory=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    sh = mrml.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.slicer.mrmlScene)
    constants = mrml.slicer.vtkMRMLSubjectHierarchyConstants
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Doe, Jane")
    sh.SetItemLevel(patient, constants.GetDICOMLevelPatient())
    sh.SetItemAttribute(patient, constants.GetDICOMPatientIDAttributeName(), "P-7")
    sh.SetItemAttribute(patient, constants.GetDICOMPatientNameAttributeName(), "Doe^Jane")
    sh.SetItemParent(sh.GetItemByDataNode(model) or sh.CreateItem(sh.GetSceneItemID(), model), patient)
    (path,) = logic.exportNode(model, outputDirectory=str(tmp_path))
    written = pydicom.dcmread(path)
    assert written.PatientID == "P-7" and str(written.PatientName) == "Doe^Jane"


def _exported_and_loaded(mrml, phantom_ct, folder):
    """Two segments exported from the CT into the database, then loaded back by the DICOM
    browser as one segmentation (one Model Group): (objects, segmentation node)."""
    from DICOMLib import DICOMUtils

    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume, segments=(("Sphere", (0.9, 0.3, 0.2)), ("Lower half", (0.2, 0.5, 0.9))))
    folder.mkdir()
    first = open_dialog(mrml, segmentation).export(str(folder))
    assert first.ok, first.error
    for path in first.files:
        mrml.database.insert(path)
    objects = read(first.files)
    node_ids = DICOMUtils.loadSeriesByUID([str(objects[0].SeriesInstanceUID)])
    loaded = next(mrml.slicer.mrmlScene.GetNodeByID(i) for i in node_ids
                  if mrml.slicer.mrmlScene.GetNodeByID(i).IsA("vtkMRMLSegmentationNode"))
    return {str(o.ContentDescription): o for o in objects}, loaded


def test_segments_loaded_from_objects_are_offered_as_new_versions_of_them(mrml, phantom_ct, tmp_path):
    from encapsulated_stl.iod.model import read_encapsulated_model
    from dicom_checks import own_findings

    earlier, loaded = _exported_and_loaded(mrml, phantom_ct, tmp_path / "first")
    dialog = open_dialog(mrml, loaded)
    exportable = dialog.exportables[0]
    assert exportable.tag("Version") == "edited" and "new version" in exportable.tooltip
    (tmp_path / "second").mkdir()
    result = dialog.export(str(tmp_path / "second"))
    assert result.ok, result.error
    for path in result.files:
        version = read_encapsulated_model(path)
        before = earlier[version.description]  # the segment's name is the earlier description
        assert [(p.sop_instance_uid, p.purpose) for p in version.predecessors] == [(before.SOPInstanceUID, "edited")]
        for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID"):
            assert version.dataset.get(keyword) == before.get(keyword)
        assert version.series_instance_uid != before.SeriesInstanceUID
        assert set(version.source_instance_uids) == {i.ReferencedSOPInstanceUID for i in before.SourceInstanceSequence}
        from encapsulated_stl.iod.model import model_from_dataset

        difference = np.abs(version.triangles_mm() - model_from_dataset(before).triangles_mm()).max()
        assert difference < ROUND_TRIP_MM, difference
    assert len({read_encapsulated_model(p).series_instance_uid for p in result.files}) == 1
    assert own_findings(result.files[0], next(phantom_ct.iterdir())) == []


def test_merged_loaded_segments_are_one_version_of_both_and_new_is_a_new_model(mrml, phantom_ct, tmp_path):
    from encapsulated_stl.iod.model import read_encapsulated_model

    earlier, loaded = _exported_and_loaded(mrml, phantom_ct, tmp_path / "first")
    dialog = open_dialog(mrml, loaded)
    dialog.edit("Segments", "merged")
    dialog.edit("Version", "component")
    (tmp_path / "merged").mkdir()
    merged = dialog.export(str(tmp_path / "merged"))
    assert merged.ok and len(merged.files) == 1, merged.error
    version = read_encapsulated_model(merged.files[0])
    assert sorted((p.sop_instance_uid, p.purpose) for p in version.predecessors) == sorted(
        (o.SOPInstanceUID, "component") for o in earlier.values())

    dialog = open_dialog(mrml, loaded)
    dialog.edit("Version", "new")
    (tmp_path / "new").mkdir()
    new = dialog.export(str(tmp_path / "new"))
    assert new.ok, new.error
    assert all(not read_encapsulated_model(p).predecessors for p in new.files)


@pytest.mark.parametrize("value, problem", [("edited", "was not loaded from an Encapsulated STL object"),
                                            ("copy", "Version must be new, edited or component")])
def test_a_version_of_what_was_not_loaded_or_a_bad_version_is_a_message(mrml, phantom_ct, tmp_path, value, problem):
    volume = load_ct(mrml, phantom_ct)
    segmentation, _ = segment_volume(mrml, volume)
    dialog = open_dialog(mrml, segmentation)
    assert dialog.exportables[0].tag("Version") == "new"
    dialog.edit("Version", value)
    result = dialog.export(str(tmp_path))
    assert not result.ok and problem in result.error
    assert list(tmp_path.iterdir()) == []


def _cup(mrml):
    cup = vtk.vtkSphereSource()  # a sphere open at the bottom: a cup, no inside to print
    cup.SetRadius(10.0)
    cup.SetEndPhi(150.0)
    cup.Update()
    model = mrml.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLModelNode", "Cup")
    model.SetAndObservePolyData(cup.GetOutput())
    dialog = open_dialog(mrml, model)
    dialog.edit("PatientID", "P-15")
    return dialog


def test_a_surface_that_would_not_print_is_named_before_writing_and_written_if_the_user_says_so(mrml, tmp_path):
    dialog = _cup(mrml)
    mrml.user.answers = [qt.QMessageBox.Ok]
    result = dialog.export(str(tmp_path))
    assert result.ok, result.error
    assert len(result.files) == 1
    told = [s for s in mrml.user.shown if s.title == "Encapsulated STL export"]
    # asked once, before writing, with the problems as check words them; nothing after
    assert len(told) == 1 and told[0].icon == qt.QMessageBox.Question
    assert "'Cup' would not print as it is" in told[0].text and "Export them all the same?" in told[0].text
    assert "boundary edge(s): the surface is not closed" in told[0].text


def test_a_surface_that_would_not_print_is_not_written_when_the_user_cancels(mrml, tmp_path):
    dialog = _cup(mrml)
    mrml.user.answers = [qt.QMessageBox.Cancel]
    result = dialog.export(str(tmp_path))
    assert not result.ok and result.error == "Nothing was exported (surfaces that would not print: 'Cup')."
    assert result.files == []
