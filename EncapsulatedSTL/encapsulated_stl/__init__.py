"""DICOM Encapsulated STL (Supplement 205) without Slicer.

Wrap STL models as Encapsulated STL objects linked to their source series, read them
back from any producer, and build exact patient-space meshes from CT and segmentations::

    import encapsulated_stl as estl

    model = estl.read("any_producer.dcm")          # model.triangles_mm(): (n, 3, 3) LPS mm
    ds = estl.wrap("guide.stl", reference="CT/", usage="planning")
    estl.save(ds, "guide.dcm")

Coordinates are millimetres in DICOM's patient system (LPS) unless an object says other
units.  The functions are imported on first use, so reading needs neither highdicom nor
VTK (Slicer's DICOM browser reads with what Slicer bundles).
"""

from .errors import (  # noqa: F401
    EncapsulatedSTLError,
    NotEncapsulatedSTLError,
    ObjFormatError,
    OutputError,
    PacsError,
    SeriesError,
    StlFormatError,
)
from .version import __version__  # noqa: F401

__all__ = [
    "read", "wrap", "wrap_obj", "revise", "from_ct", "from_segmentation", "save", "preview", "compare",
    "SurfaceComparison",
    "EncapsulatedSTL", "EncapsulatedOBJ", "EncapsulatedMTL", "EncapsulatedModel", "ModelMetadata", "NewStudy",
    "EncapsulatedSTLError", "NotEncapsulatedSTLError", "StlFormatError", "ObjFormatError", "SeriesError", "OutputError",
    "PacsError", "SegmentationError",
]

#: Where each public name lives, imported when first asked for (PEP 562).
_LAZY = {
    "read": "api", "wrap": "api", "wrap_obj": "api", "revise": "api", "from_ct": "api", "from_segmentation": "api",
    "save": "api", "preview": "api", "compare": "api", "SurfaceComparison": "mesh.compare",
    "EncapsulatedSTL": "iod.sop", "EncapsulatedOBJ": "obj.sop", "EncapsulatedMTL": "obj.sop",
    "EncapsulatedModel": "iod.model",
    "ModelMetadata": "iod.encapsulate", "NewStudy": "iod.encapsulate", "SegmentationError": "inputs.segment",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
