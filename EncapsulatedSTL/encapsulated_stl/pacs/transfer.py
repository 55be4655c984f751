"""Send, find and fetch 3D models on a PACS, over DIMSE or DICOMweb.

One interface for both protocols, used by the command line and by Slicer:

- a peer is a :class:`.peers.DicomNode` (``AET@HOST:PORT`` for C-STORE / C-FIND / C-GET)
  or a :class:`.peers.DicomWebServer` (a base URL for STOW-RS / QIDO-RS / WADO-RS);
- :func:`send_files` sends files and directories and reports every file;
- :func:`find_model_series` lists 3D model series (Modality M3D) and what they hold;
- :func:`fetch_series` retrieves one series into a directory, with the Encapsulated MTL
  objects its Encapsulated OBJ objects reference, wherever they are in the study;
- :func:`successors_on` finds the later versions of a model among its study's models.

Every file's fate is a :class:`.peers.FileResult`, so a caller can show one line per file
and a summary, and tell stored from failed.  A peer that cannot be reached or that
refuses raises :class:`PacsError` naming the peer.  Credentials are kept out of
``repr``, messages and logs: a peer is always shown by its AE title and address or
by its URL without user information.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import PacsError
from ..files import check_output_directory
from ..iod.versions import Successor, successors_in
from .peers import (
    ENCAPSULATED_OBJ_SOP_CLASS_UID,
    FAILED,
    FORMAT_OF_SOP_CLASS,
    MODEL_MODALITY,
    WRITTEN,
    DicomNode,
    DicomWebServer,
    DocumentReference,
    FileResult,
    ModelSeries,
    OutgoingFile,
    ResultCallback,
    TransferReport,
    collect_files,
    document_references,
    libraries_beside,
    model_series_from_dataset,
)


def _protocol(peer: DicomNode | DicomWebServer):
    """The module that speaks to ``peer``: :mod:`.dimse` or :mod:`.dicomweb`."""
    if isinstance(peer, DicomNode):
        from . import dimse

        return dimse
    if isinstance(peer, DicomWebServer):
        from . import dicomweb

        return dicomweb
    raise TypeError("peer must be a DicomNode or a DicomWebServer")


def send_files(
    paths: Sequence[str | os.PathLike],
    peer: DicomNode | DicomWebServer,
    on_result: ResultCallback | None = None,
) -> TransferReport:
    """Send DICOM files and directories to a PACS and report every file.

    Over DIMSE, all files go over one association (C-STORE) that proposes the
    Encapsulated STL, OBJ and MTL SOP classes and every SOP class among the files,
    so a source series and its models travel together.  Over DICOMweb, files go
    in STOW-RS requests of a few files each.

    An Encapsulated OBJ object goes with its materials: the Encapsulated MTL objects
    it references that lie beside it (where ``wrap`` writes them) are sent too, when
    not among the files given.  One it references that is neither sent nor already
    on the peer is named in :attr:`TransferReport.warnings`: the model would be
    fetched without its colours.

    ``on_result`` is called with each file's :class:`FileResult` as soon as it is
    known (for progress display).  A file that fails does not stop the others;
    once the peer is gone, the remaining files are reported ``not sent``.
    Local files are only read.

    Raises
    ------
    EncapsulatedSTLError
        A path does not exist or a named file is not DICOM (before any transfer).
    """
    files, skipped = collect_files(paths)
    files += libraries_beside(files)
    protocol = _protocol(peer)
    results = protocol.send(files, peer, on_result)
    report = TransferReport(peer.label, results, skipped)
    report.warnings += _materials_left_behind(protocol, peer, files, results)
    return report


def _materials_left_behind(protocol, peer, files: Sequence[OutgoingFile], results: Sequence[FileResult]) -> list[str]:
    """A warning for each MTL object a stored OBJ references that was not sent and that
    the peer does not hold (one instance query for all of them)."""
    sent = {result.sop_instance_uid for result in results if result.ok}
    stored_objs = [item for item, result in zip(files, results)
                   if result.ok and item.sop_class_uid == ENCAPSULATED_OBJ_SOP_CLASS_UID]
    absent = [(item, reference) for item in stored_objs for reference in document_references(item.path)
              if reference.sop_instance_uid not in sent]
    if not absent:
        return []
    try:
        answers = protocol.search_instances(peer, [_instance_filters(reference) for _item, reference in absent])
        unchecked = ""
    except PacsError as error:
        answers = [[] for _ in absent]
        unchecked = f"; whether {peer.label} holds it could not be checked ({error})"
    return [
        f"{item.path}: references {reference.label}, which was not among the files sent"
        + (unchecked or f" and is not on {peer.label}: the model will be fetched without its materials")
        for (item, reference), found in zip(absent, answers) if not found
    ]


def _instance_filters(reference: DocumentReference) -> dict[str, str]:
    return {"StudyInstanceUID": reference.study_instance_uid, "SOPInstanceUID": reference.sop_instance_uid}


def find_model_series(
    peer: DicomNode | DicomWebServer,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
) -> list[ModelSeries]:
    """3D model series (Modality M3D) on the peer, optionally of one patient or study.

    Each series' :attr:`ModelSeries.formats` counts its instances by SOP Class (STL,
    OBJ, MTL), from one instance-level query per series: a series that holds only
    Encapsulated MTL objects holds the materials of an OBJ model elsewhere in its
    study, not a model (``formats`` is then ``{"MTL": n}`` and ``models`` 0).

    Raises
    ------
    PacsError
        The peer cannot be reached, refuses, or the query fails.
    """
    protocol = _protocol(peer)
    filters = {"Modality": MODEL_MODALITY}
    if patient_id:
        filters["PatientID"] = patient_id
    if study_instance_uid:
        filters["StudyInstanceUID"] = study_instance_uid
    series = [model_series_from_dataset(ds) for ds in protocol.search_series(peer, filters)]
    series = [s for s in series if s.modality == MODEL_MODALITY]
    if series:
        answers = protocol.search_instances(peer, [
            {"StudyInstanceUID": s.study_instance_uid, "SeriesInstanceUID": s.series_instance_uid} for s in series])
        for found, instances in zip(series, answers):
            for instance in instances:
                kind = FORMAT_OF_SOP_CLASS.get(str(instance.get("SOPClassUID", "") or ""), "other")
                found.formats[kind] = found.formats.get(kind, 0) + 1
    return series


def fetch_series(
    peer: DicomNode | DicomWebServer,
    series_instance_uid: str,
    output_directory: str | os.PathLike,
    study_instance_uid: str | None = None,
    force: bool = False,
    on_result: ResultCallback | None = None,
    with_materials: bool = True,
) -> TransferReport:
    """Retrieve every instance of a series into ``output_directory``, with the
    Encapsulated MTL objects its Encapsulated OBJ objects reference.

    Over DICOMweb by WADO-RS, over DIMSE by C-GET (no C-MOVE destination needed).
    Files are named ``<SOP Instance UID>.dcm`` and written atomically; an existing
    file is kept (reported failed) unless ``force``.  The study is looked up when
    not given.

    With ``with_materials``, each MTL object a fetched OBJ references (Referenced
    Instance Sequence, by SOP Instance UID) and the series did not bring is looked
    for in the OBJ's study (an instance-level query) and retrieved into the same
    folder, so the folder holds the model with its colours.  One the peer does not
    hold is named in :attr:`TransferReport.warnings` and
    :attr:`TransferReport.missing`, and the report is not ``ok``.

    Raises
    ------
    PacsError
        The peer cannot be reached or refuses, or it has no such series.
    OutputError
        ``output_directory`` cannot be created.
    """
    directory = check_output_directory(output_directory)
    protocol = _protocol(peer)
    results = protocol.fetch_series(peer, series_instance_uid, directory, study_instance_uid, force, on_result)
    report = TransferReport(peer.label, results)
    if with_materials:
        _fetch_materials(protocol, peer, report, directory, force, on_result)
    return report


def _fetch_materials(protocol, peer, report: TransferReport, directory: Path, force: bool,
                     on_result: ResultCallback | None) -> None:
    """Retrieve the MTL objects the OBJ objects in ``report`` reference and it lacks."""
    have = {result.sop_instance_uid for result in report.results}
    wanted: dict[str, tuple[Path, DocumentReference]] = {}
    for result in list(report.results):
        if result.status == WRITTEN:
            for reference in document_references(result.path):
                if reference.sop_instance_uid not in have:
                    wanted.setdefault(reference.sop_instance_uid, (result.path, reference))
    if not wanted:
        return
    try:
        answers = protocol.search_instances(peer, [_instance_filters(ref) for _path, ref in wanted.values()])
        unsearched = ""
    except PacsError as error:  # what the series brought is kept, and the references named
        answers = [[] for _ in wanted]
        unsearched = str(error)
    for (path, reference), found in zip(wanted.values(), answers):
        series = sorted({str(ds.get("SeriesInstanceUID", "") or "") for ds in found} - {""})
        if not series:
            report.missing.append(reference.sop_instance_uid)
            why = (f"which could not be looked for ({unsearched})" if unsearched else
                   f"which {peer.label} does not hold in study {reference.study_instance_uid}")
            report.warnings.append(f"{path}: references {reference.label}, {why}: "
                                   "the model was fetched without those materials")
            continue
        try:
            report.results += protocol.fetch_instance(peer, reference.study_instance_uid, series[0],
                                                      reference.sop_instance_uid, directory, force, on_result)
        except PacsError as error:
            result = FileResult(directory, FAILED, f"{reference.label}, referenced by {path}: {error}",
                                reference.sop_instance_uid)
            report.results.append(result)
            if on_result is not None:
                on_result(result)


def successors_on(peer: DicomNode | DicomWebServer, study_instance_uid: str, sop_instance_uid: str) -> list[Successor]:
    """The later versions of a model that the peer holds in its study, nearest first.

    No query key matches Predecessor Documents Sequence, so every model series of the
    study is retrieved (into a temporary folder, removed afterwards) and read up to it.

    Raises
    ------
    PacsError
        The peer cannot be reached, refuses, or does not give every instance.
    """
    series = find_model_series(peer, study_instance_uid=study_instance_uid)
    with tempfile.TemporaryDirectory(prefix="encapsulated-stl-versions-") as folder:
        for found in series:
            report = fetch_series(peer, found.series_instance_uid, Path(folder) / found.series_instance_uid,
                                  study_instance_uid=study_instance_uid, with_materials=False)
            if not report.ok:
                raise PacsError(f"{peer.label}: {report.summary('retrieved')} of series "
                                f"{found.series_instance_uid}; the later versions cannot all be seen")
        return successors_in(folder, sop_instance_uid,
                             where=lambda path: f"{peer.label}, series {path.parent.name}")
