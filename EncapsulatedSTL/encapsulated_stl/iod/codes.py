"""Coded concepts of Supplement 205 (PS3.16 CIDs 7060, 7061, 7062, 7063, 7064).

One place builds every code item; the rest of the package asks for them by the
short keys users type on the command line (``--usage planning``, ``--units mm``).
The tables are plain :class:`Code` values, so that reading a model needs no
highdicom; :func:`coded` makes the highdicom ``CodedConcept`` a writer puts in an object.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import EncapsulatedSTLError


class Code(NamedTuple):
    """A code as (Code Value, Coding Scheme Designator, Code Meaning), with the
    attribute names of highdicom's CodedConcept."""

    value: str
    scheme_designator: str
    meaning: str


def coded(code: Code):
    """The highdicom ``CodedConcept`` of ``code`` (a Dataset to put in a sequence)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(*code)


#: CID 7060 "Encapsulated Document Source Purposes of Reference": the images a model
#: was made from, and a DICOM Segmentation (an image IOD) it was meshed from.
SOURCE_IMAGE_PURPOSE = Code("121324", "DCM", "Source image")
#: The purpose of an RT Structure Set a model was meshed from: not an image, and CID
#: 7060 (extensible) has no code for a structure set; DCM's "Source Document" says what
#: it was.
SOURCE_DOCUMENT_PURPOSE = Code("121335", "DCM", "Source Document")

#: CID 7062 "Purpose of Reference to Predecessor 3D Model": why a new version names an
#: earlier model in Predecessor Documents Sequence (0040,A360).
PREDECESSOR_PURPOSES = {
    "edited": Code("129010", "DCM", "Edited Model"),
    "component": Code("129011", "DCM", "Component Model"),
}


def predecessor_purpose(key: str) -> Code:
    """The CID 7062 code for ``edited`` or ``component``; raises otherwise."""
    if key not in PREDECESSOR_PURPOSES:
        raise EncapsulatedSTLError(
            f"unknown purpose '{key}'; a new version is {' or '.join(PREDECESSOR_PURPOSES)} (CID 7062)")
    return PREDECESSOR_PURPOSES[key]


#: CID 7061 "Model Document Titles", by the source images' Modality (0008,0060):
#: LS is Laser Surface Scan; XC (External-camera Photography) and OSS (Optical
#: Surface Scanner) are cameras, whose 3D models are photogrammetric.
DOCUMENT_TITLES = {
    "CT": Code("85040-4", "LN", "CT 3D CAM model"),
    "MR": Code("85041-2", "LN", "MR 3D CAM model"),
    "US": Code("129018", "DCM", "US 3D CAM model"),
    "LS": Code("129021", "DCM", "Laser Scanning 3D CAM model"),
    "XC": Code("129020", "DCM", "Photogrammetric Imaging 3D CAM model"),
    "OSS": Code("129020", "DCM", "Photogrammetric Imaging 3D CAM model"),
}
MIXED_MODALITY_TITLE = Code("129019", "DCM", "Mixed Modality 3D CAM model")

#: CID 7063 "Model Scale Units" (non-extensible), with the size of each unit in mm.
UNIT_MILLIMETRES = {"m": 1000.0, "cm": 10.0, "mm": 1.0, "um": 0.001}

#: CID 7064 "Model Usage", keyed by the command line's words.
MODEL_USAGES = {
    "education": Code("129012", "DCM", "Educational Intent"),
    "diagnostic": Code("261004008", "SCT", "Diagnostic Intent"),
    "planning": Code("129013", "DCM", "Planning Intent"),
    "tool": Code("129014", "DCM", "Tool Fabrication"),
    "prosthetic": Code("129015", "DCM", "Prosthetic Fabrication"),
    "implant": Code("129016", "DCM", "Implant Fabrication"),
    "quality-control": Code("113680", "DCM", "Quality Control Intent"),
    "simulation": Code("129017", "DCM", "Simulation Intent"),
}

#: Codes of CID 7064 that the standard has since replaced, still read: SNOMED's old
#: SRT designator (Supplement 205, 2018) for what is now SCT 261004008.
RETIRED_MODEL_USAGES = {("R-408C3", "SRT"): "diagnostic"}

LATERALITIES = ("R", "L", "U", "B")

#: CID 7162 "Algorithm Family": a mesh made elsewhere and wrapped as given, and
#: a surface extracted at intensity thresholds.
ALGORITHM_FAMILY_MANUAL = Code("123109", "DCM", "Manual Processing")
ALGORITHM_FAMILY_THRESHOLD = Code("123105", "DCM", "Histogram Analysis")


def units_key(units: str) -> str:
    """``units`` if it is one of CID 7063's (m, cm, mm, um); raises otherwise."""
    if units not in UNIT_MILLIMETRES:
        raise EncapsulatedSTLError(
            f"unknown units '{units}'; Supplement 205 allows {', '.join(UNIT_MILLIMETRES)}"
        )
    return units


def units_code(units: str):
    """The UCUM code item for ``units`` (one of m, cm, mm, um)."""
    return coded(Code(units_key(units), "UCUM", units))


def usage_code(usage: str):
    """The CID 7064 code item for a usage key such as ``planning``."""
    try:
        return coded(MODEL_USAGES[usage])
    except KeyError:
        raise EncapsulatedSTLError(
            f"unknown model usage '{usage}'; choose one of {', '.join(MODEL_USAGES)}"
        ) from None


def usage_key(value: str, scheme: str) -> str | None:
    """The usage key of a code value, or None if it is not in CID 7064."""
    for key, code in MODEL_USAGES.items():
        if code.value == value and code.scheme_designator == scheme:
            return key
    return RETIRED_MODEL_USAGES.get((value, scheme))


def document_title_code(modalities: set[str] | list[str]):
    """CID 7061 title for a model made from series of these modalities.

    One modality with its own title (CT, MR, US, LS, XC, OSS) gets it; several
    modalities get the mixed-modality title; one modality the context group has no
    title for (PT, NM...), or no source at all, gets none: the title is then said in
    words (:func:`document_title_text`).
    """
    kinds = {m for m in modalities if m}
    if len(kinds) > 1:
        return coded(MIXED_MODALITY_TITLE)
    code = DOCUMENT_TITLES.get(next(iter(kinds))) if kinds else None
    return coded(code) if code is not None else None


def document_title_text(modalities: set[str] | list[str]) -> str:
    """Document Title in words for a model whose sources have no CID 7061 title."""
    kinds = sorted(m for m in modalities if m)
    return f"{kinds[0]} 3D CAM model" if len(kinds) == 1 else "3D CAM model"
