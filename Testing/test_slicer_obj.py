"""Encapsulated OBJ + MTL (Supplement 208) in Slicer, release by release: a segmentation
exported as one OBJ with a group per segment and its colours in an MTL, through Slicer's
"Export to DICOM" steps (Segments: obj), as test_slicer_export_dialog.py exports STL.
"""

from __future__ import annotations

import numpy as np
import pydicom
import vtk

import slicer_scenes as scenes
from test_slicer_export_dialog import load_ct, open_dialog

OBJ_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"
MTL_CLASS = "1.2.840.10008.5.1.4.1.1.104.5"
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


def split(files):
    """(OBJ file, MTL file) of an export."""
    classes = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID): path for path in files}
    assert sorted(classes) == [OBJ_CLASS, MTL_CLASS] and len(files) == 2
    return classes[OBJ_CLASS], classes[MTL_CLASS]


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


def test_an_unknown_segments_choice_is_a_message(mrml, phantom_ct, tmp_path):
    volume = load_ct(mrml, phantom_ct)
    dialog = open_dialog(mrml, three_segments(mrml, volume))
    dialog.edit("Segments", "gltf")
    result = dialog.export(str(tmp_path))
    assert not result.ok and "Segments must be separate, merged or obj, not 'gltf'" in result.error
    assert list(tmp_path.iterdir()) == []
