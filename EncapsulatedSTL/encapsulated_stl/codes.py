"""Coded concepts of Supplement 205 (PS3.16 CIDs 7060, 7061, 7063, 7064).

One place builds every code item; the rest of the package asks for them by the
short keys users type on the command line (``--usage planning``, ``--units mm``).
"""

from __future__ import annotations

from highdicom.sr import CodedConcept

from .errors import EncapsulatedSTLError

#: CID 7060 "Encapsulated Document Source Purposes of Reference".
SOURCE_IMAGE_PURPOSE = CodedConcept("121324", "DCM", "Source image")

#: CID 7061 "Model Document Titles", by source modality.
DOCUMENT_TITLES = {
    "CT": CodedConcept("85040-4", "LN", "CT 3D CAM model"),
    "MR": CodedConcept("85041-2", "LN", "MR 3D CAM model"),
    "US": CodedConcept("129018", "DCM", "US 3D CAM model"),
}
MIXED_MODALITY_TITLE = CodedConcept("129019", "DCM", "Mixed Modality 3D CAM model")

#: CID 7063 "Model Scale Units" (non-extensible), with the size of each unit in mm.
UNIT_MILLIMETRES = {"m": 1000.0, "cm": 10.0, "mm": 1.0, "um": 0.001}

#: CID 7064 "Model Usage", keyed by the command line's words.
MODEL_USAGES = {
    "education": CodedConcept("129012", "DCM", "Educational Intent"),
    "diagnostic": CodedConcept("R-408C3", "SRT", "Diagnostic Intent"),
    "planning": CodedConcept("129013", "DCM", "Planning Intent"),
    "tool": CodedConcept("129014", "DCM", "Tool Fabrication"),
    "prosthetic": CodedConcept("129015", "DCM", "Prosthetic Fabrication"),
    "implant": CodedConcept("129016", "DCM", "Implant Fabrication"),
    "quality-control": CodedConcept("113680", "DCM", "Quality Control Intent"),
    "simulation": CodedConcept("129017", "DCM", "Simulation Intent"),
}

LATERALITIES = ("R", "L", "U", "B")

#: CID 7162 "Algorithm Family": a mesh made elsewhere and wrapped as given, and
#: a surface extracted at intensity thresholds.
ALGORITHM_FAMILY_MANUAL = CodedConcept("123109", "DCM", "Manual Processing")
ALGORITHM_FAMILY_THRESHOLD = CodedConcept("123105", "DCM", "Histogram Analysis")


def units_code(units: str) -> CodedConcept:
    """The UCUM code item for ``units`` (one of m, cm, mm, um)."""
    if units not in UNIT_MILLIMETRES:
        raise EncapsulatedSTLError(
            f"unknown units '{units}'; Supplement 205 allows {', '.join(UNIT_MILLIMETRES)}"
        )
    return CodedConcept(units, "UCUM", units)


def usage_code(usage: str) -> CodedConcept:
    """The CID 7064 code item for a usage key such as ``planning``."""
    try:
        return MODEL_USAGES[usage]
    except KeyError:
        raise EncapsulatedSTLError(
            f"unknown model usage '{usage}'; choose one of {', '.join(MODEL_USAGES)}"
        ) from None


def usage_key(value: str, scheme: str) -> str | None:
    """The usage key of a code value, or None if it is not in CID 7064."""
    for key, code in MODEL_USAGES.items():
        if code.value == value and code.scheme_designator == scheme:
            return key
    return None


def document_title_code(modalities: set[str] | list[str]) -> CodedConcept | None:
    """CID 7061 title for a model made from series of these modalities.

    One modality with its own title (CT, MR, US) gets it; several modalities get
    the mixed-modality title; no source at all gets none.
    """
    kinds = {m for m in modalities if m}
    if not kinds:
        return None
    if len(kinds) == 1:
        return DOCUMENT_TITLES.get(next(iter(kinds)), MIXED_MODALITY_TITLE)
    return MIXED_MODALITY_TITLE
