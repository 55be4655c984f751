"""The project's exception types.

Every error caused by bad input, a bad file or an unusable output location is an
:class:`EncapsulatedSTLError`.  Its message names the file and the problem, so the
command line can print it as one line and Slicer can show it in a dialog.
"""

from __future__ import annotations

import os


class EncapsulatedSTLError(Exception):
    """Base class of every error this package raises for bad input or output.

    Parameters
    ----------
    message:
        What is wrong and, where it helps, what to do about it.
    path:
        The file or directory the problem is about, if any.  It is put in
        front of the message.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class StlFormatError(EncapsulatedSTLError):
    """The STL bytes are not a valid STL file (truncated, malformed, NaN...)."""


class ObjFormatError(EncapsulatedSTLError):
    """The OBJ or MTL bytes are not a valid Wavefront file."""


class NotEncapsulatedSTLError(EncapsulatedSTLError):
    """A DICOM file that is not an Encapsulated STL object, or not DICOM at all."""


class SeriesError(EncapsulatedSTLError):
    """A source image series is missing, ambiguous or unusable."""


class OutputError(EncapsulatedSTLError):
    """The output cannot be written (exists, directory missing, not writable)."""


class PacsError(EncapsulatedSTLError):
    """A network peer (DIMSE or DICOMweb) refused or failed an operation."""
