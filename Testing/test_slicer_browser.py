"""Loading Encapsulated STL from Slicer's DICOM browser, release by release (issue 11, point 4).

Every case runs Slicer's own browser code (DICOMBrowser.py: series selection, Examine,
the loadable table, the references dialog, "Load anyway?", loading) and
DICOMUtils (getLoadablesFromFileLists, selectHighestConfidenceLoadables, loadLoadables,
loadSeriesByUID) of the release under test, with Slicer's DICOMScalarVolumePlugin and,
on 5.12 and later, its DICOMM3DPlugin registered beside ours.
"""

from __future__ import annotations

import logging

import numpy as np
from pydicom.uid import generate_uid

import slicer_scenes
from slicer_harness import qt
from slicer_harness.browser import Browser
from stl_samples import cube_triangles

LOAD_ANYWAY = "Load anyway?"
REFERENCES = "Referenced datasets found"
M3D_CONFIDENCE = 0.95


def write_models(folder, source_dir, parts, *, units="mm", group=True, series_description="Skull parts"):
    """Objects of one series made by this project from ``parts`` [(name, triangles LPS mm, rgb)]."""
    from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl, save_dataset
    from encapsulated_stl.series.source_series import find_source_series
    from encapsulated_stl.stl.format import binary_stl_bytes

    from encapsulated_stl.iod import codes
    source = find_source_series(source_dir) if source_dir else None
    series, group_uid = generate_uid(), (generate_uid() if group and len(parts) > 1 else None)
    paths = []
    for number, (name, triangles, rgb) in enumerate(parts, start=1):
        metadata = ModelMetadata(units=units, content_description=name, series_instance_uid=series,
                                 series_description=series_description, instance_number=number,
                                 model_group_uid=group_uid, color=rgb, opacity=0.8)
        stl = binary_stl_bytes(np.asarray(triangles, dtype=np.float64) / codes.UNIT_MILLIMETRES[units])
        path = folder / f"{name}.dcm"
        save_dataset(encapsulate_stl(stl, source, metadata, NewStudy(patient_id="SKULL-1")), path)
        paths.append(path)
    return series, paths


def insert(harness, *folders):
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            harness.database.insert(str(path))


def loadables_of(browser, plugin_name):
    return [l for p, ls in browser.loadables.items() if type(p).__name__ == plugin_name for l in ls]


def points_ras(node):
    from vtk.util.numpy_support import vtk_to_numpy

    return vtk_to_numpy(node.GetPolyData().GetPoints().GetData()).astype(np.float64)


def triangles_ras(node):
    from vtk.util.numpy_support import vtk_to_numpy

    poly = node.GetPolyData()
    faces = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return points_ras(node)[faces]


SKULL = cube_triangles(20.0, origin=(-10.0, -10.0, -10.0)).astype(np.float64)
PLATE = cube_triangles(8.0, origin=(30.0, 5.0, -4.0)).astype(np.float64)


def test_a_lone_object_loads_once_as_a_model_where_the_object_says(mrml, phantom_ct, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    series, (path,) = write_models(folder, phantom_ct, [("Skull", SKULL, (0.9, 0.2, 0.1))], units="cm")
    insert(mrml, phantom_ct, folder)
    mrml.user.answers = [qt.QMessageBox.No]  # load the model only, not its CT
    browser = Browser(mrml).select([str(series)])
    nodes = browser.load()

    assert [n.GetClassName() for n in nodes] == ["vtkMRMLModelNode"]
    model = nodes[0]
    assert model.GetName() == "Skull"
    expected_ras = SKULL * np.array([-1.0, -1.0, 1.0])
    assert np.abs(triangles_ras(model) - expected_ras).max() < 1e-4  # cm stored, mm loaded, LPS -> RAS
    assert len(points_ras(model)) == 8  # shared points: a cube has 8 corners
    assert np.allclose(model.GetDisplayNode().GetColor(), (0.9, 0.2, 0.1), atol=0.01)

    titles = [s.title for s in mrml.user.shown]
    assert LOAD_ANYWAY not in " ".join(s.text for s in mrml.user.shown)
    references = [s for s in mrml.user.shown if s.title == REFERENCES]
    assert len(references) == 1 and len(references[0].choices) == 1, titles  # the CT, offered once
    sh = mrml.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.slicer.mrmlScene)
    item = sh.GetItemByDataNode(model)
    constants = mrml.slicer.vtkMRMLSubjectHierarchyConstants
    assert sh.GetItemUID(item, constants.GetDICOMUIDName()) == str(series)
    ct_uids = set(mrml.database.instancesForSeries(mrml.database.fileValue(
        str(next(phantom_ct.iterdir())), "0020,000E")))
    assert set(sh.GetItemAttribute(item, constants.GetDICOMReferencedInstanceUIDsAttributeName()).split()) == ct_uids
    if "DICOMM3DPlugin" in mrml.dicom_plugins:
        m3d = loadables_of(browser, "DICOMM3DPluginClass")
        assert m3d and not any(l.selected for l in m3d)
    ours = loadables_of(browser, "DICOMEncapsulatedSTLPluginClass")
    assert max(l.confidence for l in ours) > M3D_CONFIDENCE


def test_a_model_group_loads_once_as_one_segmentation_and_offers_its_ct_once(mrml, phantom_ct, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    series, _ = write_models(folder, phantom_ct, [("Skull", SKULL, (0.9, 0.2, 0.1)), ("Plate", PLATE, (0.2, 0.4, 0.9))])
    insert(mrml, phantom_ct, folder)
    mrml.user.answers = [qt.QMessageBox.Yes]  # load the CT as well
    nodes = Browser(mrml).select([str(series)]).load()

    kinds = sorted(n.GetClassName() for n in nodes)
    assert kinds == ["vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"]
    segmentation = next(n for n in nodes if n.IsA("vtkMRMLSegmentationNode"))
    assert segmentation.GetName() == "Skull parts"
    segments = segmentation.GetSegmentation()
    names = {segments.GetNthSegment(i).GetName(): segments.GetNthSegment(i).GetColor()
             for i in range(segments.GetNumberOfSegments())}
    assert set(names) == {"Skull", "Plate"}
    assert np.allclose(names["Plate"], (0.2, 0.4, 0.9), atol=0.01)
    references = [s for s in mrml.user.shown if s.title == REFERENCES]
    assert len(references) == 1 and len(references[0].choices) == 1  # not once per object
    assert LOAD_ANYWAY not in " ".join(s.text for s in mrml.user.shown)


def test_loadSeriesByUID_loads_a_group_as_one_segmentation(mrml, phantom_ct, tmp_path):
    from DICOMLib import DICOMUtils

    folder = tmp_path / "models"
    folder.mkdir()
    series, _ = write_models(folder, None, [("Skull", SKULL, None), ("Plate", PLATE, None), ("Pin", PLATE + 20, None)])
    insert(mrml, folder)
    node_ids = DICOMUtils.loadSeriesByUID([str(series)])
    nodes = [mrml.slicer.mrmlScene.GetNodeByID(i) for i in node_ids]
    data = [n for n in nodes if n.IsA("vtkMRMLModelNode") or n.IsA("vtkMRMLSegmentationNode")]
    assert [n.GetClassName() for n in data] == ["vtkMRMLSegmentationNode"]
    assert data[0].GetSegmentation().GetNumberOfSegments() == 3


def test_a_name_edited_in_the_loadable_table_is_used(mrml, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    series, _ = write_models(folder, None, [("Skull", SKULL, None)])
    insert(mrml, folder)
    browser = Browser(mrml, advanced=True).select([str(series)]).examine()
    rows = browser.rows()
    checked = [i for i, row in enumerate(rows) if row[2]]
    assert [rows[i][0] for i in checked] == ["Skull"]
    browser.edit_name(checked[0], "Skull for the guide")
    nodes = browser.load()
    assert [n.GetName() for n in nodes] == ["Skull for the guide"]


def truncated_copy(path, target):
    data = path.read_bytes()
    target.write_bytes(data[: len(data) - 100])
    return target


def test_a_damaged_object_is_never_offered_and_the_log_says_why(mrml, tmp_path, caplog):
    folder = tmp_path / "models"
    folder.mkdir()
    series, (good, bad) = write_models(folder, None, [("Skull", SKULL, None), ("Plate", PLATE, None)], group=False)
    truncated_copy(bad, bad)
    insert(mrml, folder)
    with caplog.at_level(logging.ERROR):
        browser = Browser(mrml, advanced=True).select([str(series)]).examine()
    ours = loadables_of(browser, "DICOMEncapsulatedSTLPluginClass")
    assert ours and all(str(bad) not in l.files for l in ours)
    assert any(str(bad) in r.getMessage() and "cannot be loaded" in r.getMessage() for r in caplog.records)
    selected = [l for p, ls in browser.loadables.items() for l in ls if l.selected]
    assert all(str(bad) not in l.files for l in selected if type(l).__module__ != "DICOMM3DPlugin")
    nodes = browser.load()
    assert "Skull" in [n.GetName() for n in nodes]
    assert LOAD_ANYWAY not in " ".join(s.text for s in mrml.user.shown)


def test_a_damaged_object_alone_is_not_offered_by_us(harness, tmp_path, caplog):
    """Without MRML too (examination needs only the database): the browser has nothing of
    ours to pre-select, so nothing asks "Load anyway?"; on 5.12+ Slicer's M3D plugin is the
    one offering it."""
    from DICOMLib import DICOMUtils

    folder = tmp_path / "models"
    folder.mkdir()
    series, (path,) = write_models(folder, None, [("Skull", SKULL, None)])
    truncated_copy(path, path)
    insert(harness, folder)
    with caplog.at_level(logging.ERROR):
        loadables, _ = DICOMUtils.getLoadablesFromFileLists([list(harness.database.filesForSeries(str(series)))])
    DICOMUtils.selectHighestConfidenceLoadables(loadables)
    ours = [l for p, ls in loadables.items() if p.__class__.__name__ == "DICOMEncapsulatedSTLPluginClass" for l in ls]
    assert ours == []
    assert any("cannot be loaded" in r.getMessage() for r in caplog.records)


def test_undeclared_units_are_a_warning_the_user_confirms(mrml, tmp_path):
    import pydicom

    folder = tmp_path / "models"
    folder.mkdir()
    series, (path,) = write_models(folder, None, [("Skull", SKULL, None)])
    ds = pydicom.dcmread(path)
    del ds.MeasurementUnitsCodeSequence  # as PixelMed writes without its metadata file
    ds.save_as(path)
    insert(mrml, folder)
    nodes = Browser(mrml).select([str(series)]).load()
    asked = [s for s in mrml.user.shown if LOAD_ANYWAY in s.text]
    assert len(asked) == 1 and "declares no units" in asked[0].detailed
    assert np.abs(triangles_ras(nodes[0]) - SKULL * np.array([-1.0, -1.0, 1.0])).max() < 1e-4


def test_examine_lists_the_series_without_loading_a_file_from_another_plugin(harness, tmp_path):
    """The DICOM browser's Examine on a CT and a model series (works without MRML): the
    model is ours, preferred; the CT is not."""
    from DICOMLib import DICOMUtils

    ct = tmp_path / "ct"
    ct.mkdir()
    slicer_scenes.write_tilted_phantom(ct)
    folder = tmp_path / "models"
    folder.mkdir()
    series, _ = write_models(folder, ct, [("Skull", SKULL, None)])
    insert(harness, ct, folder)
    file_lists = [list(harness.database.filesForSeries(s)) for s in (str(series),)]
    loadables, enabled = DICOMUtils.getLoadablesFromFileLists(file_lists)
    DICOMUtils.selectHighestConfidenceLoadables(loadables)
    ours = [l for p, ls in loadables.items() if p.__class__.__name__ == "DICOMEncapsulatedSTLPluginClass" for l in ls]
    preferred = [l for l in ours if l.selected]
    assert enabled and len(preferred) == 1 and preferred[0].name == "Skull"
    assert len(preferred[0].referencedInstanceUIDs) == 24
    assert all(not l.referencedInstanceUIDs for l in ours if l is not preferred[0])


def test_every_producers_good_object_outranks_slicers_m3d_plugin(harness, tmp_path):
    """Objects from DCMTK's stl2dcm (run for real), and as the Orthanc STL plugin and dcm4che
    write them (rebuilt in test_read_producers.py), are ours to load, each once."""
    import subprocess

    from DICOMLib import DICOMUtils

    from conftest import require_tool
    from stl_samples import binary_stl_by_hand
    from test_read_producers import _written_by_others

    stl = binary_stl_by_hand(cube_triangles(25.0))
    (tmp_path / "cube.stl").write_bytes(stl)
    paths = [_written_by_others(tmp_path / "orthanc.dcm", stl, ("mm", "UCUM", "STL model"), title="STL model",
                                manufacturer="Orthanc STL plugin"),
             _written_by_others(tmp_path / "dcm4che.dcm", stl, ("m", "UCUM", "m"), manufacturer="UNKNOWN")]
    dcmtk = tmp_path / "dcmtk.dcm"
    subprocess.run([require_tool("stl2dcm", "apt-get install dcmtk"), "-q", "+t", "Skull",
                    str(tmp_path / "cube.stl"), str(dcmtk)], check=True, timeout=60)
    paths.append(dcmtk)
    for path in paths:
        harness.database.insert(str(path))
    for path in paths:
        series = harness.database.fileValue(str(path), "0020,000E")
        loadables, _ = DICOMUtils.getLoadablesFromFileLists([list(harness.database.filesForSeries(series))])
        DICOMUtils.selectHighestConfidenceLoadables(loadables)
        selected = [(type(p).__name__, l) for p, ls in loadables.items() for l in ls if l.selected]
        assert [name for name, _ in selected] == ["DICOMEncapsulatedSTLPluginClass"], path.name
        assert not selected[0][1].warning, (path.name, selected[0][1].warning)


def test_other_producers_odd_objects_load_after_the_user_sees_why(mrml, tmp_path, caplog):
    """An ASCII STL payload, a stray byte after the triangles (as Orthanc and dcm4che pad an
    odd file), a text/plain MIME type: each loads where its bytes are unambiguous, once the
    browser's "Load anyway?" has shown what was odd; glTF under the STL class is never
    offered by us (the log says why)."""
    import pydicom

    from test_read_producers import CUBE, ODD_STL, _written_by_others, ascii_stl

    folder = tmp_path / "others"
    folder.mkdir()
    cube = cube_triangles(25.0).astype(np.float64)
    binary = _written_by_others(folder / "odd.dcm", ODD_STL, ("mm", "UCUM", "mm"))
    cases = {
        "odd": (binary, "2 bytes after the binary STL's 12 triangles were ignored"),
        "ascii": (_written_by_others(folder / "ascii.dcm", ascii_stl(cube) + b" ", ("mm", "UCUM", "mm")),
                  "the document is an ASCII STL"),
        "plain": (_written_by_others(folder / "plain.dcm", ODD_STL[:-1], ("mm", "UCUM", "mm"), mime="text/plain"),
                  "is 'text/plain', not model/stl"),
    }
    glb = _written_by_others(folder / "glb.dcm", b"glTF" + bytes(20), ("mm", "UCUM", "mm"), mime="model/gltf-binary")
    insert(mrml, folder)
    for name, (path, note) in cases.items():
        series = str(pydicom.dcmread(path).SeriesInstanceUID)
        before = len(mrml.user.shown)
        nodes = Browser(mrml).select([series]).load()
        asked = [s for s in mrml.user.shown[before:] if LOAD_ANYWAY in s.text]
        assert len(asked) == 1 and note in asked[0].detailed, (name, [s.detailed for s in asked])
        (node,) = nodes
        want = cube if name == "ascii" else CUBE  # ODD_STL holds CUBE's triangles
        assert np.abs(triangles_ras(node) - want * np.array([-1.0, -1.0, 1.0])).max() < 1e-4, name
    with caplog.at_level(logging.ERROR):
        browser = Browser(mrml, advanced=True).select([str(pydicom.dcmread(glb).SeriesInstanceUID)]).examine()
    assert loadables_of(browser, "DICOMEncapsulatedSTLPluginClass") == []
    assert any(str(glb) in r.getMessage() and "another format" in r.getMessage() for r in caplog.records)
