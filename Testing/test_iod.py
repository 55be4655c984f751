"""The Encapsulated STL IOD built from real CT series: content and dciodvfy compliance."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_checks import dciodvfy
from encapsulated_stl import __version__
from encapsulated_stl.iod import codes
from encapsulated_stl.iod.color import rgb_from_dicom_lab
from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, encapsulate_stl, save_dataset
from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.iod.sop import ENCAPSULATED_STL_SOP_CLASS_UID, EncapsulatedSTL, encapsulated_stl_bytes
from encapsulated_stl.series.source_series import find_source_series
from encapsulated_stl.stl.format import binary_stl_bytes
from stl_samples import binary_stl_by_hand, cube_triangles

#: dciodvfy warnings allowed on our objects because they are about values copied
#: unchanged from the (anonymised) source images.  Each is checked to be raised on
#: the source image too, so the list cannot hide a warning of our own making.
SOURCE_COPIED_WARNINGS = {
    # The anonymised sources have empty Study Date, Study Time and Study ID (Type 2,
    # so empty is valid); dciodvfy only notes that a DICOMDIR would want them.
    "Missing attribute or value that would be needed to build DICOMDIR - Study Date",
    "Missing attribute or value that would be needed to build DICOMDIR - Study Time",
    "Missing attribute or value that would be needed to build DICOMDIR - Study ID",
    # Patient's Name is 'REMOVED' (GE) or 'HEAD' (Philips): a name without '^'
    # components, which dciodvfy calls the retired form.  It is the patient's
    # identity as the archive knows it and must be copied, not rewritten.
    "Value dubious for this VR - (0x0010,0x0010) PN Patient's Name",
}

REAL_SERIES = [
    "GE_tilt18_uneven",
    "Philips_phantom_two_tilts/tilt_minus18.5",
    "Philips_phantom_two_tilts/tilt_plus16.5",
]


def _allowed(warning: str) -> bool:
    return any(known in warning for known in SOURCE_COPIED_WARNINGS)


@pytest.fixture(scope="module")
def ge_source(request):
    from conftest import real_series

    return find_source_series(real_series("GE_tilt18_uneven"))


def _cube_stl(size=20.0, origin=(-10.0, 0.0, -60.0)) -> bytes:
    return binary_stl_by_hand(cube_triangles(size, origin), header=b"from a CAD tool")


def test_object_joins_the_source_study_and_frame_and_references_every_instance(ge_source):
    stl = _cube_stl()
    ds = encapsulate_stl(stl, ge_source, ModelMetadata(content_description="Skull"))
    first = ge_source.first
    assert ds.SOPClassUID == ENCAPSULATED_STL_SOP_CLASS_UID
    assert ds.Modality == "M3D"
    assert ds.StudyInstanceUID == first.StudyInstanceUID
    assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert ds.PatientID == first.PatientID and ds.PatientName == first.PatientName
    assert ds.StudyDescription == first.StudyDescription
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID
    assert ds.SOPInstanceUID not in {d.SOPInstanceUID for d in ge_source.datasets}
    referenced = [item.ReferencedSOPInstanceUID for item in ds.SourceInstanceSequence]
    assert sorted(referenced) == sorted(d.SOPInstanceUID for d in ge_source.datasets)
    assert len(referenced) == 28
    for item in ds.SourceInstanceSequence:
        code = item.PurposeOfReferenceCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
            "121324", "DCM", "Source image")
        assert item.ReferencedSOPClassUID == first.SOPClassUID
    (series_item,) = ds.ReferencedSeriesSequence
    assert series_item.SeriesInstanceUID == ge_source.series_instance_uid
    assert len(series_item.ReferencedInstanceSequence) == 28


def test_equipment_describes_this_software_not_the_scanner(ge_source):
    ds = encapsulate_stl(_cube_stl(), ge_source)
    assert ge_source.first.Manufacturer.startswith("GE")
    assert ds.Manufacturer == "encapsulated-stl project"
    assert ds.ManufacturerModelName == "encapsulated-stl"
    assert ds.SoftwareVersions == __version__
    assert ds.DeviceSerialNumber
    # a mesh made elsewhere and wrapped: this software did not derive it, and does not say so
    assert "DerivationAlgorithmSequence" not in ds
    made = encapsulate_stl(_cube_stl(), ge_source, algorithm_family=codes.ALGORITHM_FAMILY_THRESHOLD)
    algorithm = made.DerivationAlgorithmSequence[0]
    assert algorithm.AlgorithmName == "encapsulated-stl" and algorithm.AlgorithmVersion == __version__
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == codes.ALGORITHM_FAMILY_THRESHOLD.value


def test_document_carries_the_stl_unchanged_with_its_true_length(ge_source):
    stl = _cube_stl()
    ds = encapsulate_stl(stl, ge_source)
    assert ds.MIMETypeOfEncapsulatedDocument == "model/stl"
    assert ds.EncapsulatedDocumentLength == len(stl)
    assert bytes(ds.EncapsulatedDocument) == stl
    assert ds.DocumentTitle == "CT 3D CAM model"
    code = ds.ConceptNameCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("85040-4", "LN")
    units = ds.MeasurementUnitsCodeSequence[0]
    assert (units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning) == ("mm", "UCUM", "mm")
    assert ds.BurnedInAnnotation == "NO"


def test_odd_length_documents_are_padded_and_read_back_by_declared_length():
    # Other producers may store odd-length data; the reader honours (0042,0015).
    ds = Dataset()
    ds.EncapsulatedDocument = b"x" * 101 + b"\0"
    ds.EncapsulatedDocumentLength = 101
    assert len(encapsulated_stl_bytes(ds)) == 101
    # Without the length, one trailing pad byte is dropped only where the STL
    # size rule says it is padding.
    stl = binary_stl_by_hand(cube_triangles())
    ds = Dataset()
    ds.EncapsulatedDocument = stl + b"\0"
    assert bytes(encapsulated_stl_bytes(ds)) == stl
    ds.EncapsulatedDocument = stl  # even and exact: nothing is dropped
    assert bytes(encapsulated_stl_bytes(ds)) == stl


def _header(modality: str, frame: str, study: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
                      "PT": "1.2.840.10008.5.1.4.1.1.128", "US": "1.2.840.10008.5.1.4.1.1.6.2",
                      # surface scans and photographs: Surface Scan Mesh, VL Photographic Image
                      "LS": "1.2.840.10008.5.1.4.1.1.68.1", "OSS": "1.2.840.10008.5.1.4.1.1.68.1",
                      "XC": "1.2.840.10008.5.1.4.1.1.77.1.4"}[modality]
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.FrameOfReferenceUID = frame
    ds.Modality = modality
    ds.PatientName = "Test^Patient"
    ds.PatientID = "P1"
    return ds


@pytest.mark.parametrize(
    "modalities, code",
    [
        (["CT"], ("85040-4", "LN", "CT 3D CAM model")),
        (["MR"], ("85041-2", "LN", "MR 3D CAM model")),
        (["US"], ("129018", "DCM", "US 3D CAM model")),
        (["LS"], ("129021", "DCM", "Laser Scanning 3D CAM model")),
        (["XC"], ("129020", "DCM", "Photogrammetric Imaging 3D CAM model")),
        (["OSS"], ("129020", "DCM", "Photogrammetric Imaging 3D CAM model")),
        (["CT", "MR"], ("129019", "DCM", "Mixed Modality 3D CAM model")),
        (["CT", "LS"], ("129019", "DCM", "Mixed Modality 3D CAM model")),
        (["PT"], None),  # CID 7061 has no PET title: said in words, never a wrong code
    ],
)
def test_document_title_follows_the_source_modality(modalities, code):
    frame, study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    sources = [_header(m, frame, study) for m in modalities]
    ds = encapsulate_stl(_cube_stl(), sources)
    if code is None:
        assert list(ds.ConceptNameCodeSequence) == []
        assert ds.DocumentTitle == f"{modalities[0]} 3D CAM model"
        return
    (item,) = ds.ConceptNameCodeSequence
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == code
    assert ds.DocumentTitle == code[2]


def test_every_cid_7061_title_has_a_source_modality():
    titles = {(c.value, c.scheme_designator) for c in [*codes.DOCUMENT_TITLES.values(), codes.MIXED_MODALITY_TITLE]}
    # CID 7061 (Supplement 205): CT, MR, US, mixed, photogrammetric, laser scanning
    assert titles == {("85040-4", "LN"), ("85041-2", "LN"), ("129018", "DCM"), ("129019", "DCM"),
                      ("129020", "DCM"), ("129021", "DCM")}


def test_sources_from_another_study_go_to_the_other_studies_sequence():
    frame = pydicom.uid.generate_uid()
    own, other = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    sources = [_header("CT", frame, own), _header("MR", frame, other)]
    ds = encapsulate_stl(_cube_stl(), sources)
    assert ds.StudyInstanceUID == own
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    (study_item,) = ds.StudiesContainingOtherReferencedInstancesSequence
    assert study_item.StudyInstanceUID == other


def test_all_model_metadata_lands_in_its_attribute(ge_source):
    group = pydicom.uid.generate_uid()
    metadata = ModelMetadata(
        units="um", content_description="Left orbital floor implant", usage="implant",
        laterality="L", series_description="Implants", series_number=42,
        burned_in_annotation=True, recognizable_visual_features=False,
        model_modification=True, model_mirroring=True, color=(0.9, 0.2, 0.1),
        opacity=0.6, model_group_uid=group,
    )
    ds = encapsulate_stl(_cube_stl(), ge_source, metadata)
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "um"
    assert ds.ContentDescription == "Left orbital floor implant"
    usage = ds.ModelUsageCodeSequence[0]
    assert (usage.CodeValue, usage.CodingSchemeDesignator, usage.CodeMeaning) == (
        "129016", "DCM", "Implant Fabrication")
    assert ds.ImageLaterality == "L"
    assert ds.SeriesDescription == "Implants" and ds.SeriesNumber == 42
    assert ds.BurnedInAnnotation == "YES" and ds.RecognizableVisualFeatures == "NO"
    assert ds.ModelModification == "YES" and ds.ModelMirroring == "YES"
    assert ds.ModelGroupUID == group
    np.testing.assert_allclose(rgb_from_dicom_lab(ds.RecommendedDisplayCIELabValue),
                               (0.9, 0.2, 0.1), atol=0.005)
    assert float(ds.RecommendedPresentationOpacity) == pytest.approx(0.6)
    assert ds.ContentDate and ds.ContentTime and ds.AcquisitionDateTime


@pytest.mark.parametrize(
    "change, message",
    [
        ({"units": "inch"}, "unknown units 'inch'"),
        ({"usage": "decoration"}, "unknown model usage"),
        ({"laterality": "X"}, "image_laterality"),
        ({"opacity": 1.5}, "opacity"),
    ],
)
def test_bad_metadata_is_refused_with_the_attribute_named(ge_source, change, message):
    with pytest.raises(EncapsulatedSTLError, match=message):
        encapsulate_stl(_cube_stl(), ge_source, ModelMetadata(**change), path="model.stl")


def test_non_ascii_names_get_utf8_character_set(tmp_path):
    ds = encapsulate_stl(
        _cube_stl(), None, ModelMetadata(content_description="Schädel"),
        NewStudy(patient_name="Müller^Jürgen", patient_id="Ω-1"),
    )
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    path = save_dataset(ds, tmp_path / "utf8.dcm")
    back = pydicom.dcmread(path)
    assert str(back.PatientName) == "Müller^Jürgen"
    assert back.ContentDescription == "Schädel"
    plain = encapsulate_stl(_cube_stl(), None, new_study=NewStudy(patient_name="Doe^Jane", patient_id="P1"))
    assert "SpecificCharacterSet" not in plain


def test_without_a_source_a_new_study_and_frame_are_made():
    a = encapsulate_stl(_cube_stl(), None, new_study=NewStudy(patient_id="X"))
    b = encapsulate_stl(_cube_stl(), None, new_study=NewStudy(patient_id="X"))
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.FrameOfReferenceUID != b.FrameOfReferenceUID
    assert "SourceInstanceSequence" not in a and "ReferencedSeriesSequence" not in a
    assert a.PatientID == "X"


def test_from_dataset_round_trip(tmp_path, ge_source):
    stl = _cube_stl()
    path = save_dataset(encapsulate_stl(stl, ge_source), tmp_path / "m.dcm")
    model = EncapsulatedSTL.from_dataset(pydicom.dcmread(path))
    assert isinstance(model, EncapsulatedSTL)
    assert bytes(model.stl) == stl
    with pytest.raises(ValueError, match="not an Encapsulated STL"):
        EncapsulatedSTL.from_dataset(ge_source.first)


def test_invalid_stl_bytes_are_refused():
    with pytest.raises(EncapsulatedSTLError, match="truncated"):
        encapsulate_stl(_cube_stl()[:-10], None, new_study=NewStudy(patient_id="P1"), path="broken.stl")


@pytest.mark.parametrize("series", REAL_SERIES)
def test_dciodvfy_reports_no_errors_and_no_warnings_of_our_own(tmp_path, series):
    from conftest import real_series

    source = find_source_series(real_series(series))
    ds = encapsulate_stl(
        binary_stl_bytes(cube_triangles(30.0, origin=(-15.0, -15.0, 700.0))),
        source,
        ModelMetadata(content_description="Skull model", usage="planning", laterality="U",
                      color=(0.95, 0.9, 0.8), opacity=1.0, model_group_uid=pydicom.uid.generate_uid(),
                      model_modification=False, model_mirroring=False,
                      recognizable_visual_features=True, series_description="3D models"),
        algorithm_parameters={"threshold": "300"},
    )
    path = save_dataset(ds, tmp_path / "model.dcm")
    errors, warnings = dciodvfy(path)
    assert errors == []
    own = [w for w in warnings if not _allowed(w)]
    assert own == []
    # Every tolerated warning is one dciodvfy also raises on the source image.
    _, source_warnings = dciodvfy(source.files[0])
    for warning in warnings:
        assert any(warning.split(" - ", 1)[1] in s for s in source_warnings), warning


def test_dciodvfy_clean_without_a_source(tmp_path):
    ds = encapsulate_stl(
        _cube_stl(), None, ModelMetadata(content_description="Guide", usage="tool"),
        NewStudy(patient_name="Doe^Jane", patient_id="12345", patient_sex="F",
                 patient_birth_date="19800101", study_description="Planning"),
    )
    errors, warnings = dciodvfy(save_dataset(ds, tmp_path / "new.dcm"))
    assert errors == [] and warnings == []


def test_copied_identity_removed_claim_is_never_completed_with_invented_text(ge_source):
    # The GE source says Patient Identity Removed YES with an empty method (a Type 1C
    # error in the source itself).  Without a stated method the model does not repeat
    # the claim (Type 3) and says why; with one, it keeps the claim with that method.
    assert ge_source.first.PatientIdentityRemoved == "YES"
    assert not ge_source.first.DeidentificationMethod
    told = []
    ds = encapsulate_stl(_cube_stl(), ge_source, notice=told.append)
    assert "PatientIdentityRemoved" not in ds and "DeidentificationMethod" not in ds
    assert len(told) == 1 and "--deidentification-method" in told[0]
    stated = encapsulate_stl(_cube_stl(), ge_source, ModelMetadata(deidentification_method="DICOM PS3.15 E.1"))
    assert stated.PatientIdentityRemoved == "YES" and stated.DeidentificationMethod == "DICOM PS3.15 E.1"
    # ... without touching the caller's source headers.
    assert not ge_source.first.DeidentificationMethod


@pytest.mark.parametrize("buffer", [bytes, memoryview], ids=["bytes", "streamed"])
def test_spliced_writing_gives_the_bytes_pydicom_writes(ge_source, buffer):
    # save_dataset writes the elements around the document with pydicom and the
    # document itself in one piece; the file must be exactly pydicom's.
    import io

    from encapsulated_stl.iod.encapsulate import write_dataset_spliced
    from encapsulated_stl.iod.file_format import write_file_format

    stl = binary_stl_by_hand(cube_triangles(20.0), header=b"CAD")
    ds = encapsulate_stl(
        buffer(stl), ge_source, ModelMetadata(content_description="Schädelmodell, Unterkiefer")
    )
    assert ds.SpecificCharacterSet == "ISO_IR 192" and "SourceInstanceSequence" in ds
    if not hasattr(ds[0x00420011], "is_buffered"):
        pytest.skip("pydicom 2 has no streamed values: save_dataset writes the whole dataset")
    spliced, whole = io.BytesIO(), io.BytesIO()
    assert write_dataset_spliced(ds, spliced)
    write_file_format(ds, whole)
    assert spliced.getvalue() == whole.getvalue()
    back = pydicom.dcmread(io.BytesIO(spliced.getvalue()))
    assert bytes(encapsulated_stl_bytes(back)) == stl
    assert back.ContentDescription == "Schädelmodell, Unterkiefer"
