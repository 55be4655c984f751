"""Send, find and fetch 3D models on a PACS, over DIMSE or DICOMweb.

One interface for both protocols, used by the command line and by Slicer:

- a peer is a :class:`.peers.DicomNode` (``AET@HOST:PORT`` for C-STORE / C-FIND / C-GET)
  or a :class:`.peers.DicomWebServer` (a base URL for STOW-RS / QIDO-RS / WADO-RS);
- :func:`send_files` sends files and directories and reports every file;
- :func:`find_model_series` lists 3D model series (Modality M3D);
- :func:`fetch_series` retrieves one series into a directory;
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
    MODEL_MODALITY,
    DicomNode,
    DicomWebServer,
    ModelSeries,
    ResultCallback,
    TransferReport,
    collect_files,
    model_series_from_dataset,
)


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
    if isinstance(peer, DicomNode):
        from . import dimse

        results = dimse.send(files, peer, on_result)
    elif isinstance(peer, DicomWebServer):
        from . import dicomweb

        results = dicomweb.send(files, peer, on_result)
    else:
        raise TypeError("peer must be a DicomNode or a DicomWebServer")
    return TransferReport(peer.label, results, skipped)


def find_model_series(
    peer: DicomNode | DicomWebServer,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
) -> list[ModelSeries]:
    """3D model series (Modality M3D) on the peer, optionally of one patient or study.

    Raises
    ------
    PacsError
        The peer cannot be reached, refuses, or the query fails.
    """
    if isinstance(peer, DicomNode):
        from .dimse import search_series
    elif isinstance(peer, DicomWebServer):
        from .dicomweb import search_series
    else:
        raise TypeError("peer must be a DicomNode or a DicomWebServer")
    filters = {"Modality": MODEL_MODALITY}
    if patient_id:
        filters["PatientID"] = patient_id
    if study_instance_uid:
        filters["StudyInstanceUID"] = study_instance_uid
    series = [model_series_from_dataset(ds) for ds in search_series(peer, filters)]
    return [s for s in series if s.modality == MODEL_MODALITY]


def fetch_series(
    peer: DicomNode | DicomWebServer,
    series_instance_uid: str,
    output_directory: str | os.PathLike,
    study_instance_uid: str | None = None,
    force: bool = False,
    on_result: ResultCallback | None = None,
) -> TransferReport:
    """Retrieve every instance of a series into ``output_directory``.

    Over DICOMweb by WADO-RS, over DIMSE by C-GET (no C-MOVE destination needed).
    Files are named ``<SOP Instance UID>.dcm`` and written atomically; an existing
    file is kept (reported failed) unless ``force``.  The study is looked up when
    not given.

    Raises
    ------
    PacsError
        The peer cannot be reached or refuses, or it has no such series.
    OutputError
        ``output_directory`` cannot be created.
    """
    directory = check_output_directory(output_directory)
    if isinstance(peer, DicomNode):
        from . import dimse

        results = dimse.fetch_series(peer, series_instance_uid, directory, study_instance_uid, force, on_result)
    elif isinstance(peer, DicomWebServer):
        from . import dicomweb

        results = dicomweb.fetch_series(peer, series_instance_uid, directory, study_instance_uid, force, on_result)
    else:
        raise TypeError("peer must be a DicomNode or a DicomWebServer")
    return TransferReport(peer.label, results)


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
                                  study_instance_uid=study_instance_uid)
            if not report.ok:
                raise PacsError(f"{peer.label}: {report.summary('retrieved')} of series "
                                f"{found.series_instance_uid}; the later versions cannot all be seen")
        return successors_in(folder, sop_instance_uid,
                             where=lambda path: f"{peer.label}, series {path.parent.name}")
