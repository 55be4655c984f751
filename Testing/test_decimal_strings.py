"""Numbers of DS and IS attributes (ContourData, ImagePositionPatient...): the segmentation
readers parse an undecoded value's text in one go, and must give exactly what pydicom's
value-by-value decoding gives, and the same refusal for every text that is no number."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.dataelem import RawDataElement
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from encapsulated_stl.inputs.segment import SegmentationError, quiet_reading
from encapsulated_stl.inputs.segment import dicom_numbers as checked_numbers


def dicom_numbers(*args, **options):
    """As the readers call it: under quiet_reading, pydicom's own warnings silenced."""
    with quiet_reading():
        return checked_numbers(*args, **options)


def undecoded(text: str, keyword: str = "ContourData", implicit: bool = False) -> Dataset:
    """A dataset read back from bytes, its ``keyword`` holding ``text`` still undecoded."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag)
    raw = text.encode("ascii")
    buffer = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) < 3:  # pydicom 3 writes by the Transfer Syntax UID
        dataset.is_little_endian, dataset.is_implicit_VR = True, implicit
    with warnings.catch_warnings():  # pydicom warns of the invalid texts written on purpose
        warnings.simplefilter("ignore")
        try:
            dataset[tag] = pydicom.DataElement(tag, vr, raw)  # bytes: written as given
            pydicom.dcmwrite(buffer, dataset)
            written = buffer.getvalue()
        except ValueError:  # a text pydicom will not even hold: a number of its length, replaced
            assert len(raw) <= 16
            dataset[tag] = pydicom.DataElement(tag, vr, b"1" * len(raw))
            pydicom.dcmwrite(buffer, dataset)
            written = buffer.getvalue().replace(b"1" * len(raw), raw)
    read = pydicom.dcmread(io.BytesIO(written), force=True)
    assert isinstance(read.get_item(keyword), RawDataElement)
    return read


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("text", ["1.5\\-2\\3e2", " 11.3622\\ -9.0051 \\32.2665 ", ".5\\+7.\\-1E-3 ", "0",
                                  "9.916\x1c\\2"])  # white space numpy refuses (test_fuzz_segmentations found it)
def test_valid_numbers_are_what_pydicom_decodes(text, implicit):
    fast = dicom_numbers(undecoded(text, implicit=implicit), "ContourData", None)
    decoded = undecoded(text, implicit=implicit).ContourData  # pydicom's own decoding, value by value
    decoded = [float(str(v).strip()) for v in (decoded if isinstance(decoded, pydicom.multival.MultiValue)
                                               else [decoded])]
    assert fast.dtype == np.float64 and fast.tolist() == decoded == [float(v.strip()) for v in text.split("\\")]


@pytest.mark.parametrize("text, problem", [
    ("1\\nan\\3", "is not a number"),
    ("1\\inf", "is not a number"),
    ("1_000", "is not a number"),
    ("1\\\\3", "is not a number"),
    ("1e999\\2", "is not finite"),
    ("1\\2", "has 2 values, not 3"),
])
def test_texts_that_are_no_numbers_are_refused_as_before(text, problem):
    with pytest.raises(SegmentationError, match=problem):
        dicom_numbers(undecoded(text), "ContourData", "rt.dcm", count=3 if problem.startswith("has") else None)


def test_integer_strings_must_be_whole():
    assert dicom_numbers(undecoded("3 ", "NumberOfFrames"), "NumberOfFrames", None, integer=True) == [3]
    with pytest.raises(SegmentationError, match="must be a whole number"):
        dicom_numbers(undecoded("2.5", "ContourData"), "ContourData", None, integer=True)
