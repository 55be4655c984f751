"""Encapsulated OBJ + MTL (Supplement 208) in Slicer, release by release: a segmentation
exported as one OBJ with a group per segment and its colours in an MTL, through Slicer's
"Export to DICOM" steps (Segments: obj), and loaded back through Slicer's DICOM browser
as one segmentation with the same names, colours, opacities and surfaces.

The export and loading paths are those of test_slicer_export_dialog.py and
test_slicer_browser.py: the release's own DICOMLib, DICOMScalarVolumePlugin and, on 5.12
and later, DICOMM3DPlugin, with only Qt, CTK and the application replaced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import vtk
from pydicom.uid import generate_uid

import slicer_scenes as scenes
from slicer_harness import qt
from slicer_harness.browser import Browser
from test_slicer_browser import LOAD_ANYWAY, M3D_CONFIDENCE, loadables_of
from test_slicer_export_dialog import load_ct, open_dialog

OBJ_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"
MTL_CLASS = "1.2.840.10008.5.1.4.1.1.104.5"
#: The acceptance criterion: a colour back within 1 CIELab unit, an opacity to 1e-6, every
#: vertex within 1e-3 mm of the STL export's.
CIELAB_UNITS = 1.0
OPACITY = 1e-6
VERTEX_MM = 1e-3
#: Three segments with distinct names (a space and a '#', which OBJ names must escape),
#: colours and one opacity below 1.
SEGMENTS = (("Sphere", (0.9, 0.3, 0.2), 1.0), ("Lower half", (0.2, 0.5, 0.9), 0.6),
            ("Side cap #2", (0.3, 0.8, 0.25), 1.0))


def three_segments(harness, volume):
    """The CT's sphere, its lower half and a cap of one side, drawn on the loaded CT's
    grid as the Segment Editor draws them."""
    import slicer.util

    voxels = slicer.util.arrayFromVolume(volume)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    segmentation = harness.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Skull parts")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    sphere = voxels > 0
    lower = sphere.copy()
    lower[: voxels.shape[0] // 2] = False
    cap = sphere.copy()
    cap[:, :, :34] = False  # the columns past the sphere's centre (column 32)
    for mask, (name, colour, opacity) in zip((sphere, lower, cap), SEGMENTS):
        segment_id = scenes.add_labelmap_segment(segmentation, mask, scenes.numpy_from_matrix(matrix), name, colour)
        segmentation.GetDisplayNode().SetSegmentOpacity3D(segment_id, opacity)
    return segmentation


def export(harness, segmentation, folder, segments):
    folder.mkdir()
    dialog = open_dialog(harness, segmentation)
    dialog.edit("Segments", segments)
    result = dialog.export(str(folder))
    assert result.ok, result.error
    return result.files


def cielab(rgb):
    """CIELab (L*, a*, b*) of an sRGB colour, by the project's DICOM CIELab conversion
    (PS3.3 C.10.7.1.1), unscaled to CIELab units."""
    from encapsulated_stl.iod.color import dicom_lab_from_rgb

    lab = np.asarray(dicom_lab_from_rgb(rgb), dtype=np.float64)
    return np.array([lab[0] * 100.0 / 65535.0, lab[1] * 255.0 / 65535.0 - 128.0, lab[2] * 255.0 / 65535.0 - 128.0])


def canonical(triangles):
    """Triangles in an order that does not depend on how they were listed: each rotated
    (orientation kept) to start at its smallest vertex, then sorted."""
    triangles = np.asarray(triangles, dtype=np.float64)
    keys = np.round(triangles, 4)
    first = np.lexsort((keys[:, :, 2], keys[:, :, 1], keys[:, :, 0]), axis=-1)[:, 0]
    order = (first[:, None] + np.arange(3)[None, :]) % 3
    rotated = np.take_along_axis(triangles, order[:, :, None], axis=1)
    flat = np.round(rotated.reshape(len(rotated), 9), 4)
    return rotated[np.lexsort(flat.T[::-1])]


def stl_surfaces_ras(files):
    """Each segment's triangles (RAS mm) as the STL export wrote them, by segment name."""
    from encapsulated_stl.iod.model import read_encapsulated_model
    from encapsulated_stl.series.acquisition_geometry import ras_from_lps

    models = [read_encapsulated_model(path) for path in files]
    return {model.description: ras_from_lps(model.triangles_mm()) for model in models}


def loaded_segments(segmentation):
    """{name: (rgb, opacity 3D, closed surface triangles RAS mm)} of a loaded segmentation."""
    import slicer
    from encapsulated_stl.mesh.polydata import triangles_from_polydata

    segments = segmentation.GetSegmentation()
    found = {}
    for index in range(segments.GetNumberOfSegments()):
        segment_id = segments.GetNthSegmentID(index)
        surface = vtk.vtkPolyData()
        assert slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentClosedSurfaceRepresentation(
            segmentation, segment_id, surface, True)
        found[segments.GetSegment(segment_id).GetName()] = (
            segments.GetSegment(segment_id).GetColor(), segmentation.GetDisplayNode().GetSegmentOpacity3D(segment_id),
            triangles_from_polydata(surface))
    return found


def move_to_another_series(path, series_number=77):
    """Rewrite an object into a series of its own (same study, same SOP Instance UID), as
    a PACS that files the MTL apart from its OBJ would."""
    dataset = pydicom.dcmread(path)
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SeriesNumber = series_number
    dataset.save_as(path)
    return str(dataset.SeriesInstanceUID)


def insert(harness, paths):
    for path in paths:
        assert harness.database.insert(str(path))


def split(files):
    """(OBJ file, MTL file) of an export."""
    classes = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID): path for path in files}
    assert sorted(classes) == [OBJ_CLASS, MTL_CLASS] and len(files) == 2
    return classes[OBJ_CLASS], classes[MTL_CLASS]


@pytest.mark.parametrize("layout", ["one series", "MTL in another series"])
def test_segments_exported_as_obj_load_back_with_their_names_colours_opacities_and_surfaces(
        mrml, phantom_ct, tmp_path, layout):
    """The issue's acceptance criterion: Export to DICOM with Segments "obj", then the DICOM
    browser's Load of the OBJ's series, against the STL export of the same segments."""
    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    stl = stl_surfaces_ras(export(mrml, segmentation, tmp_path / "stl", "separate"))
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    obj_series = str(pydicom.dcmread(obj_file, stop_before_pixels=True).SeriesInstanceUID)
    if layout == "MTL in another series":
        assert move_to_another_series(mtl_file) != obj_series
    insert(mrml, [obj_file, mtl_file])

    mrml.user.answers = [qt.QMessageBox.No]  # the model only, not the CT it references
    browser = Browser(mrml).select([obj_series])
    nodes = browser.load()
    assert LOAD_ANYWAY not in " ".join(s.text for s in mrml.user.shown)
    assert not [s for s in mrml.user.shown if s.title == "DICOM loading"]  # no "Could not load"
    (loaded,) = [n for n in nodes if not n.IsA("vtkMRMLScalarVolumeNode")]
    assert loaded.IsA("vtkMRMLSegmentationNode")
    segments = loaded_segments(loaded)
    assert list(segments) == [name for name, _colour, _opacity in SEGMENTS]

    worst_colour = worst_opacity = worst_vertex = 0.0
    for name, colour, opacity in SEGMENTS:
        loaded_colour, loaded_opacity, triangles = segments[name]
        worst_colour = max(worst_colour, float(np.linalg.norm(cielab(loaded_colour) - cielab(colour))))
        worst_opacity = max(worst_opacity, abs(loaded_opacity - opacity))
        assert triangles.shape == stl[name].shape, name
        worst_vertex = max(worst_vertex, float(np.abs(canonical(triangles) - canonical(stl[name])).max()))
    print(f"{layout}: max CIELab difference {worst_colour:.2e}, max opacity difference {worst_opacity:.1e}, "
          f"max vertex difference {worst_vertex:.2e} mm against the STL export")
    assert worst_colour <= CIELAB_UNITS
    assert worst_opacity <= OPACITY
    assert worst_vertex <= VERTEX_MM

    ours = loadables_of(browser, "DICOMEncapsulatedSTLPluginClass")
    preferred = [l for l in ours if l.selected]
    assert len(preferred) == 1 and preferred[0].materialFiles == [mrml.database.fileForInstance(
        str(pydicom.dcmread(mtl_file, stop_before_pixels=True).SOPInstanceUID))]
    assert any(l.confidence < M3D_CONFIDENCE and not l.asSegmentation for l in ours)  # a model per group
    sh = mrml.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.slicer.mrmlScene)
    constants = mrml.slicer.vtkMRMLSubjectHierarchyConstants
    assert sh.GetItemUID(sh.GetItemByDataNode(loaded), constants.GetDICOMUIDName()) == obj_series


def test_the_obj_export_is_one_object_with_a_group_per_segment_and_its_mtl(mrml, phantom_ct, tmp_path):
    from encapsulated_stl.iod.model import read_encapsulated_model
    from encapsulated_stl.obj.model import materials_of, read_material_library

    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    model, library = read_encapsulated_model(obj_file), read_material_library(mtl_file)
    source = pydicom.dcmread(next(phantom_ct.iterdir()), stop_before_pixels=True)
    assert [g.name for g in model.groups] == [name for name, _c, _o in SEGMENTS]
    assert model.dataset.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert model.dataset.StudyInstanceUID == source.StudyInstanceUID == library.dataset.StudyInstanceUID
    assert len(model.source_instance_uids) == 24
    assert [uid for _c, uid, _u in model.referenced_documents] == [library.sop_instance_uid]
    materials = materials_of(model, [library])
    assert not materials.missing
    for group, (name, colour, opacity) in zip(model.groups, SEGMENTS):
        material = materials.materials[group.material]
        assert np.abs(np.subtract(material.diffuse, colour)).max() <= 1e-6 and abs(material.opacity - opacity) <= 1e-6


def test_an_obj_without_references_takes_the_mtl_of_its_study(mrml, phantom_ct, tmp_path):
    """dcm4che's pdf2dcm and Orthanc write no Referenced Instance Sequence: the MTL objects
    of the OBJ's series, else of its study, colour it (here: another series of the study)."""
    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    dataset = pydicom.dcmread(obj_file)
    del dataset.ReferencedInstanceSequence
    dataset.save_as(obj_file)
    move_to_another_series(mtl_file)
    insert(mrml, [obj_file, mtl_file])
    mrml.user.answers = [qt.QMessageBox.No]
    browser = Browser(mrml).select([str(dataset.SeriesInstanceUID)])
    (loaded,) = [n for n in browser.load() if n.IsA("vtkMRMLSegmentationNode")]
    segments = loaded_segments(loaded)
    for name, colour, opacity in SEGMENTS:
        assert np.linalg.norm(cielab(segments[name][0]) - cielab(colour)) <= CIELAB_UNITS
        assert abs(segments[name][1] - opacity) <= OPACITY
    (preferred,) = [l for l in loadables_of(browser, "DICOMEncapsulatedSTLPluginClass") if l.selected]
    assert "of its study were used" in preferred.tooltip and not preferred.warning


def test_an_obj_whose_mtl_is_missing_loads_grey_after_the_user_sees_which(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    mtl_file_name = pydicom.dcmread(obj_file).ReferencedInstanceSequence[0].RelativeURIReferenceWithinEncapsulatedDocument
    (tmp_path / "elsewhere").mkdir()
    Path(mtl_file).rename(tmp_path / "elsewhere" / "materials.dcm")  # neither in the database nor beside the OBJ
    insert(mrml, [obj_file])
    mrml.user.answers = [qt.QMessageBox.No, qt.QMessageBox.Ok]  # not the CT; load anyway
    nodes = Browser(mrml).select([str(pydicom.dcmread(obj_file).SeriesInstanceUID)]).load()
    asked = [s for s in mrml.user.shown if LOAD_ANYWAY in s.text]
    assert len(asked) == 1 and f"material library '{mtl_file_name}'" in asked[0].detailed
    assert "loaded grey" in asked[0].detailed
    (loaded,) = [n for n in nodes if n.IsA("vtkMRMLSegmentationNode")]
    segments = loaded_segments(loaded)
    assert list(segments) == [name for name, _c, _o in SEGMENTS]
    assert all(np.allclose(colour, (0.75, 0.75, 0.75)) for colour, _opacity, _t in segments.values())


def test_an_mtl_series_alone_loads_nothing_quietly_and_slicers_m3d_plugin_is_not_chosen(mrml, phantom_ct, tmp_path):
    """Slicer 5.12's DICOMM3DPlugin offers every Modality M3D file at 0.95 and, on load,
    writes its document to temp.STL for slicer.util.loadModel (DICOMM3DPlugin.py,
    examineFiles and load): an MTL or OBJ read so fails.  Our loadables out-rank it, and an
    MTL series alone loads nothing without any message."""
    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    mtl_series = move_to_another_series(mtl_file)
    insert(mrml, [obj_file, mtl_file])
    shown = len(mrml.user.shown)
    browser = Browser(mrml).select([mtl_series])
    nodes = browser.load()
    assert nodes == [] and mrml.user.shown[shown:] == []
    (ours,) = loadables_of(browser, "DICOMEncapsulatedSTLPluginClass")
    assert ours.selected and ours.confidence > M3D_CONFIDENCE and "materials" in ours.name
    assert mrml.dicom_plugins["DICOMEncapsulatedSTLPlugin"]().load(ours) is True  # no "Could not load"
    if "DICOMM3DPlugin" in mrml.dicom_plugins:
        m3d = loadables_of(browser, "DICOMM3DPluginClass")
        assert [l.files for l in m3d] == [[mrml.database.fileForInstance(
            str(pydicom.dcmread(mtl_file, stop_before_pixels=True).SOPInstanceUID))]]
        assert m3d[0].confidence == M3D_CONFIDENCE and not m3d[0].selected
        obj_series = str(pydicom.dcmread(obj_file, stop_before_pixels=True).SeriesInstanceUID)
        browser = Browser(mrml, advanced=True).select([obj_series]).examine()
        m3d = loadables_of(browser, "DICOMM3DPluginClass")
        assert len(m3d) == 1 and not m3d[0].selected  # it would read the OBJ as an STL


def test_segments_loaded_from_obj_are_exported_as_new_models_not_versions(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    segmentation = three_segments(mrml, volume)
    obj_file, mtl_file = split(export(mrml, segmentation, tmp_path / "obj", "obj"))
    insert(mrml, [obj_file, mtl_file])
    mrml.user.answers = [qt.QMessageBox.No]
    (loaded,) = [n for n in Browser(mrml).select([str(pydicom.dcmread(obj_file).SeriesInstanceUID)]).load()
                 if n.IsA("vtkMRMLSegmentationNode")]
    dialog = open_dialog(mrml, loaded)
    assert dialog.exportables[0].tag("Version") == "new"
    dialog.edit("Version", "edited")
    (tmp_path / "version").mkdir()
    refused = dialog.export(str(tmp_path / "version"))
    assert not refused.ok and "new versions of OBJ models are not written yet" in refused.error
    assert list((tmp_path / "version").iterdir()) == []
    dialog.edit("Version", "new")
    dialog.edit("Segments", "obj")
    again = dialog.export(str(tmp_path / "version"))
    assert again.ok, again.error
    assert len(again.files) == 2


def test_an_unknown_segments_choice_is_a_message(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    dialog = open_dialog(mrml, three_segments(mrml, volume))
    dialog.edit("Segments", "gltf")
    result = dialog.export(str(tmp_path))
    assert not result.ok and "Segments must be separate, merged or obj, not 'gltf'" in result.error
    assert list(tmp_path.iterdir()) == []
