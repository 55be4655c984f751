"""Versions of a model: a new version names the earlier ones in Predecessor Documents
Sequence (0040,A360), and later versions are found by looking at other objects.

:func:`new_version` makes one (the pipeline behind ``revise`` and :func:`encapsulated_stl.revise`):
what it keeps from the earlier model, and a warning when the new mesh lies far from it.
An object names its predecessors itself (:attr:`~.model.EncapsulatedModel.predecessors`);
:func:`successors_in` reads the headers of the models in a folder, up to Predecessor
Documents Sequence and never the document after it, and follows the chain forward.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.filereader import read_partial

from ..errors import EncapsulatedSTLError
from ..stl.format import parse_binary_stl
from . import codes
from .document import ENCAPSULATED_STL_SOP_CLASS_UID
from .encapsulate import ModelMetadata, NewStudy, revise_stl
from .model import EncapsulatedModel, predecessor_references
from .sop import EncapsulatedSTL

#: Regular files read at most when looking for successors in a folder tree.
MAX_FILES_SCANNED = 20000
_PREDECESSOR_DOCUMENTS = 0x0040A360


#: What a new version takes from the model it revises unless told otherwise: how it is
#: measured and used always; what it shows only when it is an edit of that model.
REVISION_KEEPS = ("units", "usage", "document_title")
REVISION_KEEPS_WHEN_EDITED = ("laterality", "content_description", "series_description", "color", "opacity")


def revision_metadata(earlier, purpose: str) -> dict:
    """The :class:`ModelMetadata` fields a new version takes from ``earlier`` (an
    :class:`~.model.EncapsulatedModel`), for fields the user leaves unset."""
    keep = REVISION_KEEPS + (REVISION_KEEPS_WHEN_EDITED if purpose == "edited" else ())
    found = {
        "units": earlier.units,
        "usage": earlier.usage if earlier.usage in codes.MODEL_USAGES else None,
        "laterality": earlier.laterality if earlier.laterality in codes.LATERALITIES else None,
        "document_title": None,  # the earlier title and its code are copied whole (see the IOD class)
        "content_description": earlier.description,
        "series_description": earlier.series_description,
        "color": earlier.color,
        "opacity": earlier.opacity,
    }
    return {name: found[name] for name in keep if found[name] is not None}


def new_version(
    stl: bytes,
    earlier: Sequence[EncapsulatedModel],
    purpose: str = "edited",
    metadata: ModelMetadata | None = None,
    patient_id: str | None = None,
    *,
    path=None,
    used_series_numbers: Iterable[int] = (),
    notice: Callable[[str], None] | None = None,
) -> EncapsulatedSTL:
    """A new version of earlier models (see :func:`~.encapsulate.revise_stl`).

    Fields of ``metadata`` left ``None`` (``units`` included) take the first earlier
    model's values (:func:`revision_metadata`); units neither given nor declared are
    millimetres, and ``notice`` says so.  ``notice`` is also told when the new mesh
    lies apart from an earlier model (:func:`apart_from`).
    """
    made_as_obj = [model for model in earlier if model.groups]
    if made_as_obj:  # an STL naming it would drop its groups and materials
        raise EncapsulatedSTLError(
            "is an Encapsulated OBJ model: new versions of OBJ models are not written yet (an STL version "
            "would lose its groups and materials); wrap the new model as a new OBJ or STL instead",
            made_as_obj[0].path)
    given = metadata or ModelMetadata(units=None)
    carried = revision_metadata(earlier[0], purpose)
    metadata = given.replace(**{name: value for name, value in carried.items() if getattr(given, name) is None})
    say = notice or (lambda message: None)
    if metadata.units is None:
        metadata = metadata.replace(units="mm")
        say(f"{earlier[0].path or 'the earlier model'} declares no units; the new version's are taken as mm "
            "(give the units)")
    dataset = revise_stl(stl, [model.dataset for model in earlier], purpose, metadata,
                         NewStudy(patient_id=patient_id), path=path, used_series_numbers=used_series_numbers,
                         notice=notice)
    for line in apart_from(earlier, stl, metadata.units):
        say(line)
    return dataset


def apart_from(earlier: Sequence[EncapsulatedModel], stl, units: str) -> list[str]:
    """A line for each earlier model whose bounds the new mesh does not come near (10 mm,
    or a tenth of the earlier model's size): a model from a CAD program may not be in the
    patient's coordinates at all."""
    low, high = (corner * codes.UNIT_MILLIMETRES[units] for corner in parse_binary_stl(stl, check_values=False).bounds())
    lines = []
    for model in earlier:
        if model.millimetres_per_unit is None:
            continue
        other_low, other_high = model.bounds_mm()
        margin = max(10.0, 0.1 * float(np.max(other_high - other_low)))
        if (low > other_high + margin).any() or (high < other_low - margin).any():
            lines.append(f"the new model lies more than {margin:.0f} mm from the bounds of "
                         f"{model.path or 'the earlier model'}: is it in the same patient coordinates?")
    return lines


@dataclass
class Successor:
    """A later version found: where (its file, or its series on a PACS), its instance,
    and of which instance it is a version, why."""

    location: str
    sop_instance_uid: str
    predecessor_uid: str
    purpose: str | None


def _predecessors_of(path: str) -> tuple[str, list[tuple[str, str | None]]] | None:
    """(SOP Instance UID, [(predecessor UID, purpose)]) of a model file, or None."""
    try:
        with open(path, "rb") as stream, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = read_partial(stream, stop_when=lambda tag, vr, length: tag > _PREDECESSOR_DOCUMENTS,
                                   defer_size=4096)  # a large value before it is never loaded
            if str(dataset.get("SOPClassUID", "")) != ENCAPSULATED_STL_SOP_CLASS_UID:
                return None
            named = [(p.sop_instance_uid, p.purpose) for p in predecessor_references(dataset)]
            return str(dataset.get("SOPInstanceUID", "")).strip(), named
    except Exception:  # not DICOM, damaged, unreadable, a special file: it names nothing
        return None


def successors_in(directory: str | os.PathLike, sop_instance_uid: str, where=None) -> list[Successor]:
    """Every model under ``directory`` that is a later version of ``sop_instance_uid``,
    directly or through other versions, nearest first.

    Only regular files are read (at most :data:`MAX_FILES_SCANNED`), each up to
    Predecessor Documents Sequence; files that are not Encapsulated STL are passed over.
    ``where(path)`` names a file's location (default: its path).
    """
    where = where or str
    named_by: dict[str, list[Successor]] = {}
    scanned = 0
    for folder, _dirs, files in os.walk(directory):
        for name in sorted(files):
            path = os.path.join(folder, name)
            if scanned >= MAX_FILES_SCANNED or not os.path.isfile(path) or os.path.islink(path):
                continue
            scanned += 1
            found = _predecessors_of(path)
            if found is None:
                continue
            uid, predecessors = found
            for predecessor, purpose in predecessors:
                named_by.setdefault(predecessor, []).append(Successor(where(Path(path)), uid, predecessor, purpose))
    chain, seen, frontier = [], {sop_instance_uid}, [sop_instance_uid]
    while frontier:  # breadth first: direct successors, then theirs
        following = []
        for uid in frontier:
            for successor in named_by.get(uid, []):
                if successor.sop_instance_uid not in seen:
                    seen.add(successor.sop_instance_uid)
                    chain.append(successor)
                    following.append(successor.sop_instance_uid)
        frontier = following
    return chain
