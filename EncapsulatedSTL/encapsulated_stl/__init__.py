"""DICOM Encapsulated STL (Supplement 205) without Slicer.

Wrap binary STL models as Encapsulated STL objects linked to their source series,
read them back from any producer, and build exact patient-space meshes from CT.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: F401
    EncapsulatedSTLError,
    NotEncapsulatedSTLError,
    OutputError,
    PacsError,
    SeriesError,
    StlFormatError,
)
