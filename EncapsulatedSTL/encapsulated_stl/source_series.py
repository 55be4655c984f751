"""Find the DICOM series a model was made from.

A source is given as a directory (searched recursively) or as files.  Headers are
read without pixel data, grouped by Series Instance UID, and one series is chosen:
the only one there is, or the one named by its UID.  When a directory holds several
series and none is named, the error lists them so the user can pick.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .errors import SeriesError

#: SOP classes that cannot be the image source of a model (other models, documents,
#: presentation states...) are kept out of source series.
_NON_IMAGE_MODALITIES = {"M3D", "DOC", "KO", "PR", "SR", "REG", "PLAN"}


@dataclass
class SourceSeries:
    """The headers of one DICOM series (pixel data not loaded).

    Attributes
    ----------
    series_instance_uid:
        Series Instance UID shared by every file.
    files:
        Paths of the instances, in the order they were found.
    datasets:
        Their headers, same order as ``files``.  Values over 4 kB (Pixel Data)
        are not read: pydicom reads them from the file if they are asked for,
        and :mod:`.volume` reads native pixel data straight from where the header
        says it starts.
    """

    series_instance_uid: str
    files: list[Path] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)

    @property
    def first(self) -> Dataset:
        return self.datasets[0]

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "")

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "") or "")

    @property
    def study_instance_uid(self) -> str:
        return str(self.first.StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str | None:
        value = self.first.get("FrameOfReferenceUID")
        return str(value) if value else None

    def __len__(self) -> int:
        return len(self.datasets)

    def summary(self) -> str:
        """The series in a few words, as listed in 'several series' errors."""
        return (
            f"{self.series_instance_uid} ({self.modality or '?'}, "
            f"'{self.description}', {len(self)} instance(s))"
        )


def _candidate_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise SeriesError("no such file or directory", path)
    return found


#: Values larger than this (bytes) are left in the file when headers are scanned.
HEADER_DEFER_SIZE = 4096


def _read_header(path: Path) -> Dataset | None:
    try:
        # Deferring large values parses faster than stop_before_pixels (no callback
        # per element) and remembers where the pixel data starts.
        return pydicom.dcmread(path, defer_size=HEADER_DEFER_SIZE)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return None


def scan_series(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[SourceSeries]:
    """Group every readable DICOM file under ``paths`` by Series Instance UID.

    Files that are not DICOM, or have no Series Instance UID, are skipped.  Series
    are returned in the order their first file was found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    groups: dict[str, SourceSeries] = {}
    for path in _candidate_files(paths):
        dataset = _read_header(path)
        if dataset is None or "SeriesInstanceUID" not in dataset:
            continue
        uid = str(dataset.SeriesInstanceUID)
        series = groups.setdefault(uid, SourceSeries(uid))
        series.files.append(path)
        series.datasets.append(dataset)
    return list(groups.values())


def choose_series(
    everything: Sequence[SourceSeries],
    series_uid: str | None,
    label,
    usable: Callable[[SourceSeries], bool] | None = None,
    kind: str = "DICOM image series",
) -> SourceSeries:
    """The series named by ``series_uid``, else the only ``usable`` one.

    Raises
    ------
    SeriesError
        The named UID is not there, nothing usable is there, or several usable
        series are and none was named (the message lists them, one line).
    """
    if series_uid is not None:
        for series in everything:
            if series.series_instance_uid == series_uid:
                return series
        listing = "; ".join(s.summary() for s in everything) or "none"
        raise SeriesError(f"no series with UID {series_uid}; series found: {listing}", label)
    usable = usable or (lambda series: series.modality not in _NON_IMAGE_MODALITIES)
    candidates = [s for s in everything if usable(s)]
    if not candidates:
        raise SeriesError(f"no {kind} found", label)
    if len(candidates) > 1:
        listing = "; ".join(s.summary() for s in candidates)
        raise SeriesError(
            f"{len(candidates)} series found; choose one with --series-uid: {listing}", label
        )
    return candidates[0]


def find_source_series(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    series_uid: str | None = None,
) -> SourceSeries:
    """The one image series under ``paths`` (or the one with ``series_uid``).

    Raises
    ------
    SeriesError
        No DICOM images were found, the named UID is not there, or several image
        series are there and none was named (the message lists them).
    """
    label = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
    return choose_series(scan_series(paths), series_uid, label)
