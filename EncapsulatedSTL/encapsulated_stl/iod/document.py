"""The Encapsulated Document value of an Encapsulated STL object: kept mapped from its
file, written out as a stream, read back without padding.

Only pydicom and numpy: reading a model (Slicer's DICOM browser, ``info``, ``extract``)
never needs highdicom, which only the writer (:mod:`.sop`) uses.
"""

from __future__ import annotations

import io
import math
import numbers
import re
import warnings

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..stl.format import looks_like_ascii_stl

#: SOP Class UID of Encapsulated STL Storage.
ENCAPSULATED_STL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.3"
#: SOP Class UIDs of Encapsulated OBJ and Encapsulated MTL Storage (Supplement 208).
ENCAPSULATED_OBJ_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.4"
ENCAPSULATED_MTL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.5"
OBJ_MIME_TYPE = "model/obj"
MTL_MIME_TYPE = "model/mtl"
ENCAPSULATED_DOCUMENT_TAG = 0x00420011

#: pydicom 3 writes element values given as streams in chunks; pydicom 2 (bundled
#: with Slicer before 5.12) needs bytes.
_STREAMED_VALUES = hasattr(DataElement, "is_buffered")


class DocumentReader(io.BufferedIOBase):
    """A read-only stream over a buffer (bytes, mmap), handing out zero-copy slices.

    Used as the value of Encapsulated Document so that a large model, mapped from
    its file, goes to the output file without ever being copied into memory.
    """

    def __init__(self, buffer):
        super().__init__()
        self.view = memoryview(buffer).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self.view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> memoryview:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self._position + size)
        chunk = self.view[self._position:end]
        self._position = max(self._position, end)
        return chunk

    def readinto(self, target) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


def set_streamed_document(dataset: Dataset, buffer) -> None:
    """Make ``buffer`` (mmap, memoryview...) the Encapsulated Document, uncopied.

    Without ``validation_mode=IGNORE`` pydicom reads a stream value whole to
    validate it, a transient copy of the entire model; the bytes here are a binary
    STL that was validated already.
    """
    from pydicom import config

    dataset[ENCAPSULATED_DOCUMENT_TAG] = DataElement(
        ENCAPSULATED_DOCUMENT_TAG, "OB", DocumentReader(buffer), validation_mode=config.IGNORE
    )


def encapsulated_stl_bytes(dataset: Dataset) -> memoryview:
    """The STL bytes of an Encapsulated STL dataset, without padding, zero-copy.

    See :func:`stl_in_document`, whose rules decide; a problem with Encapsulated
    Document Length (0042,0015) is left to the reader to report.
    """
    return stl_in_document(dataset)[0]


def document_view(dataset: Dataset) -> memoryview:
    """Encapsulated Document (0042,0011) as a zero-copy byte view."""
    value = dataset.EncapsulatedDocument
    return value.view if isinstance(value, DocumentReader) else memoryview(value).cast("B")


def stl_in_document(dataset: Dataset) -> tuple[memoryview, str | None]:
    """(STL bytes, problem with how they are stored, or None), zero-copy.

    A binary STL states its own size: 84 + 50 bytes per triangle of the count in
    its header (always even, so a valid one is never padded).  When the document
    is that size, or that size and one zero pad byte, the STL is those bytes, and an
    Encapsulated Document Length (0042,0015) that says otherwise, or is not one
    whole number (text, NaN, several values), is reported and ignored: the STL
    is whole either way.  Otherwise a usable length ends the STL (a producer
    may store bytes after it).  A binary STL followed by fewer bytes than one
    triangle (an STL file of odd length, wrapped and padded by Orthanc or
    dcm4che) is its triangles, with the extra bytes reported; a triangle's worth
    or more is left to the STL parser to refuse, as is anything else.
    """
    document = document_view(dataset)
    declared, problem = declared_document_length(dataset)
    size = len(document)
    usable = declared if declared is not None and declared <= size else None
    if usable is None and declared is not None:
        problem = (
            f"Encapsulated Document Length (0042,0015) says {declared} bytes but the "
            f"document has only {size}; the length was ignored"
        )
    if size >= 84:
        count = int(np.frombuffer(document, dtype="<u4", count=1, offset=80)[0])
        own = 84 + 50 * count
        if own == size or (own == size - 1 and document[-1] == 0):
            if declared is not None and declared != own:
                problem = (
                    f"Encapsulated Document Length (0042,0015) says {declared} bytes but the document "
                    f"holds a binary STL of {own} bytes; the length was ignored"
                )
            return document[:own], problem
        stored = size if usable is None else usable
        # text never holds a NUL; a binary header padded with zeros, or its count, does
        text = looks_like_ascii_stl(document[:stored]) and b"\0" not in bytes(document[:84])
        if count and own < stored < own + 50 and not text:
            extra = stored - own
            return document[:own], (
                f"{extra} byte{'s' if extra > 1 else ''} after the binary STL's {count} triangles "
                f"{'were' if extra > 1 else 'was'} ignored (an STL file of odd length, padded when "
                "it was wrapped)"
            )
    return (document if usable is None else document[:usable]), problem


def text_in_document(dataset: Dataset) -> tuple[memoryview, str | None]:
    """(a text document's bytes, problem with how they are stored, or None), zero-copy:
    the document up to a usable Encapsulated Document Length, else all of it but the
    NUL a producer padded it to even length with."""
    document = document_view(dataset)
    declared, problem = declared_document_length(dataset)
    if declared is not None and declared > len(document):
        declared, problem = None, (f"Encapsulated Document Length (0042,0015) says {declared} bytes but the "
                                   f"document has only {len(document)}; the length was ignored")
    if declared is None:  # text holds no NUL: one at the end is the padding to even length
        return (document[:-1] if len(document) % 2 == 0 and document[-1:] == b"\0" else document), problem
    return document[:declared], problem


def declared_document_length(dataset: Dataset) -> tuple[int | None, str | None]:
    """(Encapsulated Document Length or None, problem or None).

    A length that is not one whole number of bytes (text, NaN, negative, several
    values: a damaged or misencoded element) is ``None`` with the problem said.
    """
    name = "Encapsulated Document Length (0042,0015)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's, about the value found wanting below
            value = dataset.get("EncapsulatedDocumentLength")
    except Exception as error:  # pydicom's conversion of a misencoded value: any type
        return None, f"{name} cannot be read ({type(error).__name__}); it was ignored"
    if value is None or value == "" or (isinstance(value, (list, tuple, MultiValue)) and not value):
        return None, None
    if isinstance(value, (list, tuple, MultiValue)):
        return None, f"{name} has {len(value)} values, not one; it was ignored"
    number = whole_number(value)
    if number is None:
        return None, f"{name} is {shown(value)}, not a length in bytes; it was ignored"
    return number, None


def whole_number(value) -> int | None:
    """``value`` as a non-negative int if it is one (int, integral finite float, digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value) if value >= 0 else None
    if isinstance(value, numbers.Real):
        number = float(value)
        return int(number) if math.isfinite(number) and number.is_integer() and number >= 0 else None
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,20}\s*", value):
        return int(value)
    return None


def shown(value, limit: int = 40) -> str:
    """A value for a one-line message: quoted, escaped, shortened."""
    text = repr(value if isinstance(value, (str, bytes)) else str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
