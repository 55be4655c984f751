"""The Encapsulated Document value of an Encapsulated STL object: kept mapped from its
file, written out as a stream, read back without padding.

Only pydicom and numpy: reading a model (Slicer's DICOM browser, ``info``, ``extract``)
never needs highdicom, which only the writer (:mod:`.sop`) uses.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

#: SOP Class UID of Encapsulated STL Storage.
ENCAPSULATED_STL_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.104.3"
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

    Encapsulated Document Length (0042,0015) is honoured when present.  Without it
    a single trailing pad byte is dropped only where the binary STL size rule
    (84 + 50 n) shows that it is padding.
    """
    value = dataset.EncapsulatedDocument
    document = value.view if isinstance(value, DocumentReader) else memoryview(value)
    length = dataset.get("EncapsulatedDocumentLength")
    if length is not None and 0 < int(length) <= len(document):
        return document[: int(length)]
    if len(document) > 84 and document[-1] == 0:
        count = int(np.frombuffer(document, dtype="<u4", count=1, offset=80)[0])
        if 84 + 50 * count == len(document) - 1:
            return document[:-1]
    return document
