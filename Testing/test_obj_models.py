"""Encapsulated OBJ and MTL (Supplement 208): models in colour and assemblies of parts.

``wrap`` stores an OBJ and the MTL its ``mtllib`` names unchanged, as two objects of one
series, the OBJ referencing the MTL; ``from-seg --format obj`` writes every segment as a
named group with its colour; ``info``, ``extract`` and ``preview`` read pairs from any
producer, dcm4che's, Orthanc's and DCMTK's layouts included (rebuilt from their sources
in :mod:`peer_objects`), and a glTF stored under the OBJ class is refused, never parsed.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from dicom_checks import own_findings
from encapsulated_stl.cli import main
from encapsulated_stl.iod.color import dicom_lab_from_rgb
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.obj.format import read_mtl, read_obj
from encapsulated_stl.stl.format import parse_binary_stl
from from_seg_data import sorted_datasets, sphere_mask, tilted_ct, write_seg
from peer_objects import (
    dcm4che_one_run,
    dcmtk_mtl,
    dcmtk_obj,
    ohif_glb_as_obj,
    orthanc_mtl,
    orthanc_obj,
    tiny_glb,
    write_dcm4che_layout,
    write_file,
    write_sonador_layout,
)
from png_files import png_pixels

OBJ_CLASS, MTL_CLASS = "1.2.840.10008.5.1.4.1.1.104.4", "1.2.840.10008.5.1.4.1.1.104.5"

#: A 10 mm cube in two parts: the floor and roof as "Bone", the four walls as "Skin".
CUBE_OBJ = b"""# two-part cube
mtllib colours.mtl
v 0 0 0
v 10 0 0
v 10 10 0
v 0 10 0
v 0 0 10
v 10 0 10
v 10 10 10
v 0 10 10
g Bone
usemtl bone
f 1 3 2
f 1 4 3
f 5 6 7
f 5 7 8
g Skin
usemtl skin
f 1 2 6 5
f 2 3 7 6
f 3 4 8 7
f 4 1 5 8
"""
CUBE_MTL = b"newmtl bone\nKd 0.9 0.85 0.7\nd 1\nnewmtl skin\nKd 0.8 0.5 0.4\nd 0.5\n"


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cube(tmp_path):
    folder = tmp_path / "cube"
    folder.mkdir()
    (folder / "cube.obj").write_bytes(CUBE_OBJ)
    (folder / "colours.mtl").write_bytes(CUBE_MTL)
    return folder / "cube.obj"


@pytest.fixture
def wrapped(cube, capsys):
    code, out, err = _run(capsys, "wrap", cube, "-o", cube.parent / "cube.dcm", "--patient-id", "P1")
    assert code == 0, err
    return cube.parent / "cube.dcm", cube.parent / "cube-mtl.dcm"


def test_wrap_stores_the_obj_and_its_mtl_unchanged_and_the_obj_references_the_mtl(cube, wrapped):
    obj_path, mtl_path = wrapped
    obj, mtl = pydicom.dcmread(obj_path), pydicom.dcmread(mtl_path)
    assert (obj.SOPClassUID, obj.MIMETypeOfEncapsulatedDocument, obj.Modality) == (OBJ_CLASS, "model/obj", "M3D")
    assert (mtl.SOPClassUID, mtl.MIMETypeOfEncapsulatedDocument, mtl.Modality) == (MTL_CLASS, "model/mtl", "M3D")
    assert obj.EncapsulatedDocument[:obj.EncapsulatedDocumentLength] == CUBE_OBJ
    assert mtl.EncapsulatedDocument[:mtl.EncapsulatedDocumentLength] == CUBE_MTL
    (item,) = obj.ReferencedInstanceSequence
    assert (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) == (MTL_CLASS, mtl.SOPInstanceUID)
    assert item.RelativeURIReferenceWithinEncapsulatedDocument == "colours.mtl"
    # the referenced MTL is also listed in Common Instance Reference, as other instances must be
    (series,) = obj.ReferencedSeriesSequence
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence] == [mtl.SOPInstanceUID]
    # one series and study; the MTL has no Frame of Reference (A.85.3), the OBJ has one
    assert (mtl.StudyInstanceUID, mtl.SeriesInstanceUID, mtl.SeriesNumber) == (
        obj.StudyInstanceUID, obj.SeriesInstanceUID, obj.SeriesNumber)
    assert (obj.InstanceNumber, mtl.InstanceNumber) == (1, 2)
    assert "FrameOfReferenceUID" in obj and "FrameOfReferenceUID" not in mtl
    # the colours are sRGB, said by the ICC Profile Module; only the OBJ draws an icon
    assert obj.ColorSpace == mtl.ColorSpace == "SRGB" and len(obj.ICCProfile) > 1000
    assert obj.IconImageSequence[0].Rows == 64 and "IconImageSequence" not in mtl
    assert obj.MeasurementUnitsCodeSequence[0].CodeValue == "mm"


def test_the_pair_passes_dciodvfy_without_a_source(wrapped):
    for path in wrapped:
        assert own_findings(path) == []


def test_the_pair_passes_dciodvfy_with_a_real_tilted_source(cube, ge_tilted_series, capsys):
    code, out, err = _run(capsys, "wrap", cube, "-o", cube.parent / "ct.dcm", "--reference", ge_tilted_series)
    assert code == 0, err
    # the source's identity-removed claim without a method is told once, not once per object
    assert err.count("notice: the source images say Patient Identity Removed YES") == 1, err
    obj = pydicom.dcmread(cube.parent / "ct.dcm")
    assert len(obj.SourceInstanceSequence) == 28
    source = sorted(ge_tilted_series.iterdir())[0]
    for path in (cube.parent / "ct.dcm", cube.parent / "ct-mtl.dcm"):
        assert own_findings(path, source) == []


def test_info_lists_the_groups_with_their_materials_colours(wrapped, capsys):
    code, out, err = _run(capsys, "info", wrapped[0], "--json")
    assert code == 0 and err == ""
    facts = json.loads(out)
    assert facts["format"] == "OBJ" and facts["triangles"] == 12
    bone, skin = facts["groups"]
    assert (bone["name"], bone["material"], bone["triangles"]) == ("Bone", "bone", 4)
    assert (skin["name"], skin["material"], skin["triangles"]) == ("Skin", "skin", 8)
    assert np.allclose(bone["color_rgb"], [0.9, 0.85, 0.7], atol=1e-6) and bone["opacity"] == 1.0
    assert np.allclose(skin["color_rgb"], [0.8, 0.5, 0.4], atol=1e-6) and skin["opacity"] == 0.5
    (library,) = facts["material_libraries"]
    assert library["uri"] == "colours.mtl" and library["file"] == str(wrapped[1])
    assert facts["source_series"] == [] and facts["bounds_mm_lps"] == {"min": [0, 0, 0], "max": [10, 10, 10]}
    code, out, err = _run(capsys, "info", wrapped[0])
    assert "Skin (8 triangles, material skin, colour #cc8066, opacity 0.5)" in out


def test_extract_gives_the_obj_the_mtl_one_stl_or_one_stl_per_group(wrapped, tmp_path, capsys):
    obj_path, mtl_path = wrapped
    assert _run(capsys, "extract", obj_path, "-o", tmp_path / "back.obj")[0] == 0
    assert (tmp_path / "back.obj").read_bytes() == CUBE_OBJ
    assert _run(capsys, "extract", mtl_path, "-o", tmp_path / "back.mtl")[0] == 0
    assert (tmp_path / "back.mtl").read_bytes() == CUBE_MTL
    groups = read_obj(CUBE_OBJ).groups
    assert _run(capsys, "extract", obj_path, "-o", tmp_path / "all.stl", "--units", "cm")[0] == 0
    every = parse_binary_stl((tmp_path / "all.stl").read_bytes()).triangles
    assert np.array_equal(every, np.concatenate([g.triangles for g in groups]) / np.float32(10))
    code, out, err = _run(capsys, "extract", obj_path, "--groups", "-o", tmp_path / "parts")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["1_Bone.stl", "2_Skin.stl"]
    for name, group in zip(["1_Bone.stl", "2_Skin.stl"], groups):
        assert np.array_equal(parse_binary_stl((tmp_path / "parts" / name).read_bytes()).triangles, group.triangles)


def test_preview_draws_an_obj_object_as_its_triangles(wrapped, tmp_path, capsys):
    assert _run(capsys, "extract", wrapped[0], "-o", tmp_path / "all.stl")[0] == 0
    for source, picture in ((wrapped[0], "obj.png"), (tmp_path / "all.stl", "stl.png")):
        code, _out, err = _run(capsys, "preview", source, "-o", tmp_path / picture, "--size", "64")
        assert code == 0, err
    assert np.array_equal(png_pixels((tmp_path / "obj.png").read_bytes()), png_pixels((tmp_path / "stl.png").read_bytes()))


@pytest.mark.parametrize("case, problem", [
    ("missing", "mtllib names 'colours.mtl', but"),
    ("outside", "mtllib names '../colours.mtl', outside the OBJ's folder"),
    ("texture", "name texture maps (skin.png)"),
    ("glb", "a NUL byte"),
])
def test_wrap_refuses_what_it_cannot_store_whole_and_writes_nothing(cube, capsys, case, problem):
    if case == "missing":
        (cube.parent / "colours.mtl").unlink()
    elif case == "outside":
        cube.write_bytes(CUBE_OBJ.replace(b"mtllib colours.mtl", b"mtllib ../colours.mtl"))
    elif case == "texture":
        (cube.parent / "colours.mtl").write_bytes(CUBE_MTL + b"map_Kd -s 1 1 1 skin.png\n")
    else:
        cube.write_bytes(tiny_glb())
    before = sorted(p.name for p in cube.parent.iterdir())
    code, out, err = _run(capsys, "wrap", cube, "-o", cube.parent / "out.dcm", "--patient-id", "P1")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and problem in err and err.count("\n") == 1
    assert sorted(p.name for p in cube.parent.iterdir()) == before


def test_an_mtl_output_that_names_an_input_is_refused(cube, capsys):
    code, out, err = _run(capsys, "wrap", cube, "-o", cube.parent / "colours.dcm", "--patient-id", "P1")
    assert code == 0, err  # colours-mtl.dcm: no clash
    (cube.parent / "x-mtl.dcm").symlink_to(cube.parent / "colours.mtl")
    code, out, err = _run(capsys, "wrap", cube, "-o", cube.parent / "x.dcm", "--patient-id", "P1", "--force")
    assert code == 2 and "x-mtl.dcm" in err and (cube.parent / "colours.mtl").read_bytes() == CUBE_MTL
    assert not (cube.parent / "x.dcm").exists()


# -- from-seg --format obj ---------------------------------------------------------------


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory):
    root = tmp_path_factory.mktemp("obj_seg")
    phantom = tilted_ct(root / "ct", tilt=-22.0, rotation=30.0)
    source = sorted_datasets(phantom)
    shape = (len(source), 64, 64)
    big = sphere_mask(phantom.geometry, shape)
    small = sphere_mask(phantom.geometry, shape, np.array([-8.0, 6.0, 38.0]), 5.0)
    colors = [(1.0, 0.5, 0.0), (0.2, 0.4, 1.0)]
    seg = write_seg(root / "seg.dcm", source, np.stack([big & ~small, small]), ["Ball", "Small ball"],
                    colors=colors)
    return root, seg, colors


def test_from_seg_writes_every_segment_as_a_named_coloured_group_of_one_obj(segmentation, tmp_path, capsys):
    root, seg, colors = segmentation
    code, out, err = _run(capsys, "from-seg", seg, "--reference", root / "ct", "-o", tmp_path / "stl")
    assert code == 0, err
    code, out, err = _run(capsys, "from-seg", seg, "--reference", root / "ct", "-o", tmp_path / "obj",
                          "--format", "obj")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "obj").iterdir()) == ["seg.dcm_mtl.dcm", "seg.dcm_obj.dcm"]
    model = read_encapsulated_model(tmp_path / "obj" / "seg.dcm_obj.dcm")
    library = pydicom.dcmread(tmp_path / "obj" / "seg.dcm_mtl.dcm")
    materials = read_mtl(library.EncapsulatedDocument[:library.EncapsulatedDocumentLength])
    assert [g.name for g in model.groups] == ["Ball", "Small ball"]
    assert [g.material for g in model.groups] == ["Ball", "Small ball"]
    stl_models = [read_encapsulated_model(p) for p in sorted((tmp_path / "stl").iterdir())]
    for group, stl_model, rgb in zip(model.groups, stl_models, colors):
        # the same surface as the STL of that segment, bit for bit (float32 text written exactly)
        assert np.array_equal(group.triangles, stl_model.mesh.triangles)
        # its colour, in DICOM CIELab, within one unit of the segment's and of the STL object's
        lab = np.array(dicom_lab_from_rgb(materials[group.material].diffuse), float)
        assert np.abs(lab - np.array(dicom_lab_from_rgb(rgb), float)).max() <= 1
        assert np.abs(lab - np.array(stl_model.dataset.RecommendedDisplayCIELabValue, float)).max() <= 1
    obj = model.dataset
    assert obj.SourceInstanceSequence[-1].ReferencedSOPInstanceUID == pydicom.dcmread(seg).SOPInstanceUID
    assert obj.FrameOfReferenceUID == stl_models[0].frame_of_reference_uid
    assert own_findings(tmp_path / "obj" / "seg.dcm_obj.dcm", sorted((root / "ct").iterdir())[0]) == []
    assert own_findings(tmp_path / "obj" / "seg.dcm_mtl.dcm", sorted((root / "ct").iterdir())[0]) == []


# -- other producers ---------------------------------------------------------------------


@pytest.mark.parametrize("producer", ["dcm4che", "orthanc", "dcmtk"])
def test_pairs_laid_out_as_other_producers_write_them_are_read_with_their_colours(tmp_path, capsys, producer):
    uids = dict(study_instance_uid=pydicom.uid.generate_uid(), series_instance_uid=pydicom.uid.generate_uid())
    if producer == "dcm4che":  # one run: both files share every UID, the SOP Instance UID too
        obj, mtl = dcm4che_one_run(CUBE_OBJ, CUBE_MTL, patient_id="P1")
        write_dcm4che_layout(obj, tmp_path / "obj.dcm")
        write_dcm4che_layout(mtl, tmp_path / "mtl.dcm")
    else:
        make_obj, make_mtl = (orthanc_obj, orthanc_mtl) if producer == "orthanc" else (dcmtk_obj, dcmtk_mtl)
        write_file(make_obj(CUBE_OBJ, patient_id="P1", **uids), tmp_path / "obj.dcm")
        write_file(make_mtl(CUBE_MTL, patient_id="P1", **uids), tmp_path / "mtl.dcm")
    code, out, err = _run(capsys, "info", tmp_path / "obj.dcm", "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert [(g["name"], g["triangles"]) for g in facts["groups"]] == [("Bone", 4), ("Skin", 8)]
    assert np.allclose(facts["groups"][1]["color_rgb"], [0.8, 0.5, 0.4], atol=1e-6)
    # they name no material library: the MTL of the same series stands in, and info says so
    assert "the 1 Encapsulated MTL object(s) of its series were used" in err
    scale = {"dcm4che": 1.0, "orthanc": None, "dcmtk": 1e-3}[producer]  # Orthanc declares no units
    assert facts["units"] == {"dcm4che": "mm", "orthanc": None, "dcmtk": "um"}[producer]
    if scale is not None:
        assert facts["bounds_mm_lps"]["max"] == pytest.approx([10 * scale] * 3)
    assert _run(capsys, "extract", tmp_path / "obj.dcm", "-o", tmp_path / "back.obj")[0] == 0
    assert (tmp_path / "back.obj").read_bytes() == CUBE_OBJ


def test_gltf_stored_under_the_obj_class_is_refused_never_parsed(tmp_path, capsys):
    write_sonador_layout(ohif_glb_as_obj(tiny_glb(), patient_id="P1"), tmp_path / "glb.dcm")
    for command in (["info"], ["extract", "-o", tmp_path / "x.obj"], ["preview", "-o", tmp_path / "x.png"]):
        code, out, err = _run(capsys, command[0], tmp_path / "glb.dcm", *command[1:])
        assert code == 2 and out == ""
        assert err == (f"error: {tmp_path / 'glb.dcm'}: an Encapsulated OBJ object, but its MIME Type of "
                       "Encapsulated Document (0042,0012) is 'model/gltf-binary' and it holds glTF binary "
                       "(GLB), not OBJ: it is not read as OBJ\n")
    assert not (tmp_path / "x.obj").exists() and not (tmp_path / "x.png").exists()


def test_an_mtl_object_alone_is_named_for_what_it_is(wrapped, capsys):
    code, out, err = _run(capsys, "info", wrapped[1])
    assert code == 2
    assert "an Encapsulated MTL object: the material library of an OBJ model" in err


def test_from_ct_writes_the_iso_surface_as_one_obj_group_identical_to_its_stl(segmentation, tmp_path, capsys):
    root = segmentation[0]
    for file_format in ("stl", "obj"):
        code, out, err = _run(capsys, "from-ct", root / "ct", "--threshold", "300", "-o", tmp_path / f"{file_format}.dcm",
                              "--format", file_format)
        assert code == 0, err
    model, stl = read_encapsulated_model(tmp_path / "obj.dcm"), read_encapsulated_model(tmp_path / "stl.dcm")
    (group,) = model.groups
    assert group.name == "Iso-surface 300 HU" and len(group.triangles) > 1000
    assert np.array_equal(group.triangles, stl.mesh.triangles)
    assert model.dataset.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == pydicom.dcmread(
        tmp_path / "obj-mtl.dcm").SOPInstanceUID
    assert len(model.source_instance_uids) == len(stl.source_instance_uids) > 20


def test_the_python_api_writes_and_reads_the_pair(cube, segmentation, tmp_path):
    import encapsulated_stl as estl

    obj, mtl = estl.wrap_obj(cube, patient_id="P1", units="cm")
    assert isinstance(obj, estl.EncapsulatedOBJ) and isinstance(mtl, estl.EncapsulatedMTL)
    estl.save(obj, tmp_path / "o.dcm")
    estl.save(mtl, tmp_path / "m.dcm")
    model = estl.read(tmp_path / "o.dcm")
    assert [g.name for g in model.groups] == ["Bone", "Skin"] and model.units == "cm"
    assert model.triangles_mm().max() == pytest.approx(100.0)
    root, seg, _colors = segmentation
    pair = estl.from_segmentation(seg, root / "ct", file_format="obj")
    assert [ds.SOPClassUID for ds in pair] == [OBJ_CLASS, MTL_CLASS]
    with pytest.raises(estl.ObjFormatError, match="no such file"):
        estl.wrap_obj(tmp_path / "absent.obj", patient_id="P1")


@pytest.mark.parametrize("document, problem", [
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "line 4"),
    (b"v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "line 1"),
    (b"# nothing\n", "no faces"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n" * 2 + b"cstype bspline\n", "freeform"),
], ids=["index out of range", "NaN", "no faces", "freeform surface"])
def test_a_damaged_obj_inside_an_object_is_refused_in_one_line(wrapped, tmp_path, capsys, document, problem):
    dataset = pydicom.dcmread(wrapped[0])
    dataset.EncapsulatedDocument = document + b"\0" * (len(document) % 2)
    dataset.EncapsulatedDocumentLength = len(document)
    dataset.save_as(tmp_path / "bad.dcm")
    for command in (["info"], ["extract", "-o", tmp_path / "x.obj"], ["preview", "-o", tmp_path / "x.png"]):
        code, out, err = _run(capsys, command[0], tmp_path / "bad.dcm", *command[1:])
        assert code == 2 and out == ""
        assert err.startswith(f"error: {tmp_path / 'bad.dcm'}: encapsulated OBJ is invalid: ") and problem in err
        assert err.count("\n") == 1
    assert not (tmp_path / "x.obj").exists() and not (tmp_path / "x.png").exists()


def test_a_cut_obj_object_is_refused(wrapped, tmp_path, capsys):
    data = wrapped[0].read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    code, out, err = _run(capsys, "info", tmp_path / "cut.dcm")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'cut.dcm'}: ") and err.count("\n") == 1


def test_the_iod_classes_refuse_a_file_their_references_do_not_cover():
    from encapsulated_stl.errors import EncapsulatedSTLError
    from encapsulated_stl.iod.encapsulate import NewStudy, encapsulate_stl
    from encapsulated_stl.obj.sop import EncapsulatedMTL, EncapsulatedOBJ

    study = NewStudy(patient_id="P1")
    with pytest.raises(EncapsulatedSTLError, match=r"names 'colours.mtl' \(mtllib\) but no object is given for it"):
        encapsulate_stl(CUBE_OBJ, None, None, study, iod=EncapsulatedOBJ)
    textured = CUBE_MTL + b"map_Kd skin.png\n"
    with pytest.raises(EncapsulatedSTLError, match=r"names 'skin.png' \(texture map\)"):
        encapsulate_stl(textured, None, None, study, iod=EncapsulatedMTL)
    mtl = encapsulate_stl(CUBE_MTL, None, None, study, iod=EncapsulatedMTL)
    obj = encapsulate_stl(CUBE_OBJ, None, None, study, iod=EncapsulatedOBJ, referenced_documents=[(mtl, "colours.mtl")])
    assert EncapsulatedOBJ.from_dataset(obj).ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == mtl.SOPInstanceUID
    with pytest.raises(ValueError, match="not an Encapsulated OBJ instance"):
        EncapsulatedOBJ.from_dataset(mtl)


def test_another_producers_texture_maps_are_named_and_the_plain_colours_used(tmp_path, capsys):
    uids = dict(study_instance_uid=pydicom.uid.generate_uid(), series_instance_uid=pydicom.uid.generate_uid())
    write_file(dcmtk_obj(CUBE_OBJ, patient_id="P1", **uids), tmp_path / "obj.dcm")
    write_file(dcmtk_mtl(CUBE_MTL + b"map_Kd -s 1 1 1 skin.png\n", patient_id="P1", **uids), tmp_path / "mtl.dcm")
    code, out, err = _run(capsys, "info", tmp_path / "obj.dcm", "--json")
    assert code == 0
    assert "the texture maps the materials name (skin.png) are not read" in err and err.count("\n") == 1
    assert np.allclose(json.loads(out)["groups"][1]["color_rgb"], [0.8, 0.5, 0.4], atol=1e-6)


def test_revise_refuses_an_obj_model_rather_than_an_stl_version_without_its_groups(wrapped, tmp_path, capsys):
    assert _run(capsys, "extract", wrapped[0], "-o", tmp_path / "edited.stl")[0] == 0
    code, out, err = _run(capsys, "revise", wrapped[0], tmp_path / "edited.stl", "-o", tmp_path / "v2.dcm")
    assert code == 2 and out == "" and not (tmp_path / "v2.dcm").exists()
    assert err == (f"error: {wrapped[0]}: is an Encapsulated OBJ model: new versions of OBJ models are not written "
                   "yet (an STL version would lose its groups and materials); wrap the new model as a new OBJ or "
                   "STL instead\n")
