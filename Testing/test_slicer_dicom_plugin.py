"""Slicer DICOM plugin: Export to DICOM and loading from the DICOM browser (issue 4,
points 1-3), with real MRML and the application double for the Qt-only parts."""

import os
import types

import numpy as np
import pydicom
import pytest
import vtk

import slicer_application_double
import slicer_scenes as scenes

slicer = slicer_application_double.install()

import DICOMEncapsulatedSTLPlugin as plugin_module  # noqa: E402
from EncapsulatedSTL import EncapsulatedSTLLogic, _trianglesFromPolyData  # noqa: E402
from encapsulated_stl.acquisition_geometry import ras_from_lps  # noqa: E402
from encapsulated_stl.color import rgb_from_dicom_lab  # noqa: E402

ROUND_TRIP_MM = 1e-3


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    scenes.write_tilted_phantom(folder)
    return folder


@pytest.fixture
def plugin():
    parent = types.SimpleNamespace()
    plugin_module.DICOMEncapsulatedSTLPlugin(parent)
    assert parent.hidden and parent.categories == ["Developer Tools.DICOM Plugins"]
    return slicer.modules.dicomPlugins["DICOMEncapsulatedSTLPlugin"]()


def two_segment_scene(phantom_series):
    """The phantom as Slicer 5.8 shows it, with the sphere and a second block segment."""
    scene = scenes.build_tilted_scene(phantom_series, "sheared", lambda v: v > 0)
    matrix = scenes.sheared_ijk_to_ras(scene.geometry)
    block = np.zeros(scenes.PHANTOM_SHAPE, dtype=bool)
    block[3:8, 10:20, 40:55] = True
    second = scenes.add_labelmap_segment(scene.segmentation, block, matrix, "Block", (0.2, 0.5, 0.9))
    scene.segmentation.GetDisplayNode().SetSegmentOpacity3D(second, 0.5)
    return scene, second


def export_through_dialog(plugin, node, directory, **tags):
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    item = shNode.GetItemByDataNode(node) or shNode.CreateItem(shNode.GetSceneItemID(), node)
    exportables = plugin.examineForExport(item)
    assert len(exportables) == 1
    exportable = exportables[0]
    assert exportable.pluginClass == "DICOMEncapsulatedSTLPlugin"
    for name, value in tags.items():
        exportable.setTag(name, value)
    exportable.directory = str(directory)
    return exportable, plugin.export([exportable])


def test_export_dialog_writes_one_object_per_segment_linked_to_the_source(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    exportable, error = export_through_dialog(
        plugin, scene.segmentation, tmp_path, ModelUsage="implant", ImageLaterality="L")
    assert "source series" in exportable.tooltip
    for tag in ("SeriesDescription", "SeriesNumber", "ContentDescription", "ModelUsage", "ImageLaterality",
                "ModelMirroring", "ModelModification", "BurnedInAnnotation", "MeasurementUnits", "Segments"):
        assert exportable.tag(tag) is not None
    assert error == ""
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == 2
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in scene.source_files]
    source_uids = {str(ds.SOPInstanceUID) for ds in source}
    objects = [pydicom.dcmread(f) for f in files]
    assert {str(o.SeriesInstanceUID) for o in objects} == {str(objects[0].SeriesInstanceUID)}
    assert {str(o.ModelGroupUID) for o in objects} == {str(objects[0].ModelGroupUID)}
    colours = {"Structure": ((0.9, 0.3, 0.2), 1.0), "Block": ((0.2, 0.5, 0.9), 0.5)}
    for o in objects:
        assert o.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.3"
        assert o.StudyInstanceUID == source[0].StudyInstanceUID
        assert o.FrameOfReferenceUID == source[0].FrameOfReferenceUID
        assert o.PatientID == "PHANTOM-1"
        assert {str(i.ReferencedSOPInstanceUID) for i in o.SourceInstanceSequence} == source_uids
        assert o.ModelUsageCodeSequence[0].CodeValue == "129016"
        assert o.ImageLaterality == "L"
        assert o.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
        colour, opacity = colours[o.ContentDescription]
        assert np.allclose(rgb_from_dicom_lab(o.RecommendedDisplayCIELabValue), colour, atol=0.01)
        assert float(o.RecommendedPresentationOpacity) == pytest.approx(opacity)


def test_merged_export_is_one_object(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    _, error = export_through_dialog(plugin, scene.segmentation, tmp_path, Segments="merged")
    assert error == ""
    assert len(list(tmp_path.glob("*.dcm"))) == 1


def loadables_for(plugin, files):
    slicer.dicomDatabase.insert(files)
    return plugin.examineForImport([[str(f) for f in files]])


def test_round_trip_gives_the_same_world_surface(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    # the closed surface as the user sees it: their conversion parameters are kept
    scene.segmentation.GetSegmentation().SetConversionParameter("Smoothing factor", "0.2")
    scene.segmentation.RemoveClosedSurfaceRepresentation()
    _, error = export_through_dialog(plugin, scene.segmentation, tmp_path, Segments="separate")
    assert error == ""
    files = sorted(tmp_path.glob("*.dcm"))
    loadables = loadables_for(plugin, files)
    models = [l for l in loadables if not l.asSegmentation and len(l.files) == 1]
    assert len(models) == 2 and all(l.confidence == 0.99 and not l.warning for l in models)
    group = [l for l in loadables if len(l.files) == 2]
    assert len(group) == 1 and group[0].selected and group[0].confidence == 0.99
    source_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in scene.source_files}
    assert set(models[0].referencedInstanceUIDs) == source_uids

    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    segmentation = scene.segmentation.GetSegmentation()
    for loadable in models:
        node = plugin.load(loadable)
        assert node and node.IsA("vtkMRMLModelNode")
        segment_id = segmentation.GetSegmentIdBySegmentName(node.GetName())
        poly = vtk.vtkPolyData()
        slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentClosedSurfaceRepresentation(
            scene.segmentation, segment_id, poly, True)
        expected = _trianglesFromPolyData(poly)
        actual = _trianglesFromPolyData(node.GetPolyData())
        assert actual.shape == expected.shape
        error_mm = float(np.linalg.norm(actual - expected, axis=-1).max())
        print(f"round trip '{node.GetName()}': {len(actual)} triangles, max vertex difference {error_mm:.2e} mm")
        assert error_mm <= ROUND_TRIP_MM
        expected_colour = segmentation.GetSegment(segment_id).GetColor()
        assert np.allclose(node.GetDisplayNode().GetColor(), expected_colour, atol=0.01)
        item = shNode.GetItemByDataNode(node)
        dataset = pydicom.dcmread(loadable.files[0], stop_before_pixels=True)
        assert shNode.GetItemUID(item, "DICOM") == dataset.SeriesInstanceUID
        referenced = shNode.GetItemAttribute(item, "DICOM.ReferencedInstanceUIDs").split()
        assert set(referenced) == source_uids

    segmentation_node = plugin.load(group[0])
    assert segmentation_node.IsA("vtkMRMLSegmentationNode")
    names = {segmentation_node.GetSegmentation().GetNthSegment(i).GetName() for i in range(2)}
    assert names == {"Structure", "Block"}


def test_model_under_linear_transform_is_exported_in_world_coordinates(tmp_path):
    scene = slicer_application_double.new_scene()
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(12.0)
    sphere.SetThetaResolution(24)
    sphere.SetPhiResolution(12)
    sphere.Update()
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

    logic = EncapsulatedSTLLogic()
    files = logic.exportNode(model, outputDirectory=tmp_path, units="cm")
    dataset = pydicom.dcmread(files[0])
    assert "SourceInstanceSequence" not in dataset and dataset.FrameOfReferenceUID
    assert any("no source series" in m for m in logic.messages)
    local = _trianglesFromPolyData(sphere.GetOutput()).reshape(-1, 3)
    matrix = scenes.numpy_from_matrix(transform.GetMatrix())
    expected = ras_from_lps(local @ matrix[:3, :3].T + matrix[:3, 3]).reshape(-1, 3, 3)
    loaded = logic.readModels(files)[0]
    assert loaded.units == "cm"
    error = float(np.abs(loaded.triangles_mm() - expected).max())
    assert error <= 1e-4


def test_empty_segment_gives_a_message_and_writes_nothing(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    scenes.add_labelmap_segment(scene.segmentation, np.zeros(scenes.PHANTOM_SHAPE, dtype=bool),
                                scenes.sheared_ijk_to_ras(scene.geometry), "Nothing", (1, 1, 0))
    _, error = export_through_dialog(plugin, scene.segmentation, tmp_path)
    assert "'Nothing'" in error and "empty" in error
    assert os.listdir(tmp_path) == []


def test_unusable_directory_gives_a_message(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    missing = tmp_path / "not there"
    _, error = export_through_dialog(plugin, scene.segmentation, missing)
    assert "does not exist" in error and not missing.exists()
    a_file = tmp_path / "a file"
    a_file.write_bytes(b"")
    _, error = export_through_dialog(plugin, scene.segmentation, a_file)
    assert error and os.listdir(tmp_path) == ["a file"]


def test_no_source_series_is_said_and_patient_comes_from_the_dialog(plugin, tmp_path):
    scene = slicer_application_double.new_scene()
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "Guide")
    model.SetAndObservePolyData(sphere.GetOutput())
    exportable, error = export_through_dialog(
        plugin, model, tmp_path, PatientName="Doe^Jane", PatientID="P-42", StudyDescription="Planning")
    assert "No source series found" in exportable.tooltip
    assert error == ""
    dataset = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert str(dataset.PatientName) == "Doe^Jane" and dataset.PatientID == "P-42"


def test_broken_files_never_break_examine(plugin, phantom_series, tmp_path):
    scene, _ = two_segment_scene(phantom_series)
    good = EncapsulatedSTLLogic().exportNode(scene.segmentation, outputDirectory=tmp_path)[0]
    dataset = pydicom.dcmread(good)
    dataset.EncapsulatedDocument = bytes(dataset.EncapsulatedDocument)[:200]
    dataset.EncapsulatedDocumentLength = 200
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    broken = tmp_path / "broken.dcm"
    dataset.save_as(broken)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"not DICOM at all")
    loadables = loadables_for(plugin, [broken, garbage])
    assert loadables, "the broken object is still offered, with its problem"
    primary = [l for l in loadables if not l.asSegmentation][0]
    assert "cannot be loaded" in primary.warning and "truncated" in primary.warning
    assert not primary.selected
    assert plugin.load(primary) is False
    assert "Could not load" in primary.warning
