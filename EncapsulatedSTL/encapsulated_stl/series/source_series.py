"""Find the DICOM series a model was made from.

A source is given as a directory (searched recursively) or as files.  Headers are
read without pixel data, grouped by Series Instance UID, and one series is chosen:
the only one there is, or the one named by its UID.  When a directory holds several
series and none is named, the error lists them so the user can pick.

Nothing is dropped without a word.  Files that are not DICOM (no ``DICM`` marker:
README.txt, thumbnails) are skipped, and so is a DICOMDIR; special files (FIFOs,
devices, sockets) in a directory are never opened, and one named as an input is
refused.  A DICOM file that cannot be used - cut short, damaged, or missing a UID
a model must reference (SOP Class, SOP Instance, Study and Series Instance UID) -
makes its series unusable: using it raises :class:`SeriesError` naming the first
such file and how many there are, since a model made without them would have a
hole and incomplete references.  A damaged file whose series cannot be told (cut
before its Series Instance UID) is refused by :func:`scan_series` itself, as is a
file named ``*.dcm`` that is not DICOM at all.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.datadict
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from ..errors import SeriesError
from ..files import check_input
from .slice_geometry import header_values

#: SOP classes that cannot be the image source of a model (other models, documents,
#: presentation states...) are kept out of source series.
#: Modalities of series that are no source images: documents, models, segmentations and
#: the RT objects drawn on images.
_NON_IMAGE_MODALITIES = {"M3D", "DOC", "KO", "PR", "SR", "REG", "PLAN", "SEG", "RTSTRUCT", "RTPLAN",
                         "RTDOSE", "RTRECORD"}

#: DICOM files that belong to no series (Media Storage Directory: DICOMDIR; Hanging
#: Protocol; Color Palette), skipped like files that are not DICOM.
_NO_SERIES_SOP_CLASSES = {"1.2.840.10008.1.3.10", "1.2.840.10008.5.1.4.38.1", "1.2.840.10008.5.1.4.39.1"}
#: Names that promise DICOM: such a file that is not DICOM is a damaged instance.
_DICOM_SUFFIXES = {".dcm", ".dicom"}
#: The UIDs a model references for each source instance, with their tags.
_REQUIRED_UIDS = (
    ("SOPClassUID", "(0008,0016)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
)
_UID = re.compile(r"[0-9.]{1,64}")
_UNDEFINED_LENGTH = 0xFFFFFFFF
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text) -> str:
    """``text`` with control characters (newlines...) shown as ``?``, for a one-line message."""
    return _CONTROL.sub("?", str(text))


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
    unreadable:
        ``(file, reason)`` for files of this series that cannot be used (cut
        short, damaged, a UID missing).  :meth:`check_usable` refuses a series
        that has any.
    study_series_numbers:
        Series Numbers of the other series of its study found beside it (set
        when it is chosen from a scan), which a new series should not reuse.
    """

    series_instance_uid: str
    files: list[Path] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    study_series_numbers: set[int] = field(default_factory=set)

    @property
    def first(self) -> Dataset:
        if not self.datasets:
            self.check_usable()
            raise SeriesError(f"series {one_line(self.series_instance_uid)} has no instances")
        return self.datasets[0]

    def _text(self, keyword: str) -> str:
        if not self.datasets:
            return ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return one_line(self.datasets[0].get(keyword, "") or "")
            except Exception:  # a value pydicom cannot convert says nothing
                return ""

    @property
    def modality(self) -> str:
        return self._text("Modality")

    @property
    def description(self) -> str:
        return self._text("SeriesDescription")

    @property
    def study_instance_uid(self) -> str:
        return str(self.first.StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str | None:
        return self._text("FrameOfReferenceUID") or None

    def __len__(self) -> int:
        return len(self.datasets)

    def summary(self) -> str:
        """The series in a few words, as listed in 'several series' errors."""
        damaged = f", {len(self.unreadable)} unusable" if self.unreadable else ""
        return (
            f"{one_line(self.series_instance_uid)} ({self.modality or '?'}, "
            f"'{self.description}', {len(self)} instance(s){damaged})"
        )

    def check_usable(self, problems: Sequence[tuple[Path, str]] | None = None) -> None:
        """Refuse the series if any of its files cannot be used.

        ``problems`` are ``(file, reason)`` found by a closer look (the volume
        reader's header checks); by default :attr:`unreadable`.

        Raises
        ------
        SeriesError
            Naming the first such file, its problem and how many files have one.
        """
        problems = self.unreadable if problems is None else problems
        if problems:
            path, reason = problems[0]
            bad = {p for p, _reason in problems}
            total = len(bad | set(self.files))
            raise SeriesError(
                f"{reason} ({len(bad)} of {total} files of series "
                f"{one_line(self.series_instance_uid)} cannot be used, and a model made "
                "from the series would miss them; repair or remove them)",
                path,
            )


def _candidate_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            # is_file() is false for FIFOs, sockets and devices: never opened
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.exists() or path.is_symlink():
            check_input(path, SeriesError)  # refuses FIFOs and devices at once
            found.append(path)
        else:
            raise SeriesError("no such file or directory", path)
    return found


#: Values larger than this (bytes) are left in the file when headers are scanned.
HEADER_DEFER_SIZE = 4096


def _element_name(element) -> str:
    tag = int(element.tag)
    name = pydicom.datadict.keyword_for_tag(tag) or "an element"
    return f"{name} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _cut_short(dataset: Dataset, size: int) -> str | None:
    """Why ``dataset`` was cut short, if it was: pydicom reads a truncated file
    without complaint, leaving its last value short, or beyond the end of the
    file when left there (deferred), or missing altogether."""
    meta = getattr(dataset, "file_meta", None)
    deflated = meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
    # elements are read in file order and reading stops at the end of the file:
    # only the last one can be cut
    last = next(reversed(dataset._dict.values()), None)
    length = getattr(last, "length", None)
    tell = getattr(last, "value_tell", None)
    if length is not None and tell is not None and length != _UNDEFINED_LENGTH:
        value = last.value
        present = (size - tell if not deflated else length) if value is None else len(value)
        if isinstance(value, (bytes, type(None))) and present < length:
            return f"the file ends inside {_element_name(last)}: {max(0, present)} of {length} bytes present"
    if ("Rows" in dataset or "Columns" in dataset) and not any(
        keyword in dataset for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    ):
        return "no Pixel Data (7FE0,0010): the file is cut short or is not a whole image"
    return None


def _uid(dataset: Dataset, keyword: str) -> str | None:
    """A UID attribute's value (checked by the caller), ``None`` when absent or empty."""
    values = header_values(dataset, keyword)
    if values is None:
        return None
    return str(values[0]) if len(values) == 1 else str([str(value) for value in values])


def _read_header(path: Path) -> tuple[Dataset | None, str | None]:
    """``(header, None)``, ``(None, None)`` for a file that is not DICOM, or
    ``(header or None, why it cannot be used)``."""
    try:
        size = check_input(path, SeriesError)
    except SeriesError as error:
        return None, error.reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Deferring large values parses faster than stop_before_pixels (no
            # callback per element) and remembers where the pixel data starts.
            dataset = pydicom.dcmread(str(path), defer_size=HEADER_DEFER_SIZE)
    except InvalidDicomError:
        if path.suffix.lower() in _DICOM_SUFFIXES:
            return None, "named as DICOM but is not (no 'DICM' marker at byte 128)"
        return None, None
    except Exception as error:  # pydicom raises many types for damaged files
        return None, f"cannot be read as DICOM ({type(error).__name__}: {one_line(error)[:200]})"
    if "SeriesInstanceUID" not in dataset:
        meta = getattr(dataset, "file_meta", None)
        sop_class = _uid(dataset, "SOPClassUID") or (_uid(meta, "MediaStorageSOPClassUID") if meta else None)
        if sop_class in _NO_SERIES_SOP_CLASSES:
            return None, None  # a DICOMDIR: no series, nothing lost
    problem = _cut_short(dataset, size)
    meta = getattr(dataset, "file_meta", None)
    syntax = _uid(meta, "TransferSyntaxUID") if meta is not None else None
    if problem is None and syntax is not None and not _UID.fullmatch(syntax):
        problem = f"TransferSyntaxUID (0002,0010) is not a UID: {one_line(syntax)[:80]!r}"
    if problem is None:
        for keyword, tag in _REQUIRED_UIDS:
            uid = _uid(dataset, keyword)
            if uid is None:
                problem = f"no {keyword} {tag}"
            elif not _UID.fullmatch(uid):
                problem = f"{keyword} {tag} is not a UID: {one_line(uid)[:80]!r}"
            if problem:
                break
    return dataset, problem


def scan_series(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[SourceSeries]:
    """Group every DICOM file under ``paths`` by Series Instance UID.

    Files that are not DICOM, a DICOMDIR and special files inside directories are
    skipped.  Series are returned in the order their first file was found; files
    of a series that cannot be used are listed in its ``unreadable``.

    Raises
    ------
    SeriesError
        A path does not exist or names a special file (FIFO, device); or a DICOM
        file cannot be used and its series cannot be told (cut short before its
        Series Instance UID, named ``*.dcm`` but not DICOM): the message names
        the first and counts them.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    groups: dict[str, SourceSeries] = {}
    orphans: list[tuple[Path, str]] = []
    dicom_files = 0
    for path in _candidate_files(paths):
        with warnings.catch_warnings():
            # pydicom warns of what it finds odd; what matters is checked and said
            warnings.simplefilter("ignore")
            dataset, problem = _read_header(path)
        if dataset is None and problem is None:
            continue
        dicom_files += 1
        uid = _uid(dataset, "SeriesInstanceUID") if dataset is not None else None
        if uid is None:
            orphans.append((path, problem or "no SeriesInstanceUID (0020,000E)"))
            continue
        series = groups.setdefault(uid, SourceSeries(uid))
        if problem:
            series.unreadable.append((path, problem))
        else:
            series.files.append(path)
            series.datasets.append(dataset)
    if orphans:
        path, reason = orphans[0]
        raise SeriesError(
            f"{reason} ({len(orphans)} of {dicom_files} DICOM files here cannot be read far "
            "enough to tell their series, which may then be incomplete; repair or remove them)",
            path,
        )
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
        The named UID is not there, nothing usable is there, several usable
        series are and none was named (the message lists them, one line), or
        the chosen series has files that cannot be used
        (:meth:`SourceSeries.check_usable`).
    """
    if series_uid is not None:
        for series in everything:
            if series.series_instance_uid == series_uid:
                series.check_usable()
                return with_study_series_numbers(series, everything)
        listing = "; ".join(s.summary() for s in everything) or "none"
        raise SeriesError(f"no series with UID {one_line(series_uid)}; series found: {listing}", label)
    usable = usable or (lambda series: series.modality not in _NON_IMAGE_MODALITIES)
    candidates = [s for s in everything if usable(s)]
    if not candidates:
        raise SeriesError(f"no {kind} found", label)
    if len(candidates) > 1:
        listing = "; ".join(s.summary() for s in candidates)
        raise SeriesError(
            f"{len(candidates)} series found; choose one with --series-uid: {listing}", label
        )
    candidates[0].check_usable()
    return with_study_series_numbers(candidates[0], everything)


def series_numbers(datasets: Iterable[Dataset]) -> set[int]:
    """The Series Numbers (0020,0011) these headers hold; unusable values are none."""
    found = set()
    for dataset in datasets:
        try:
            value = dataset.get("SeriesNumber")
            if value not in (None, "") and float(value).is_integer():
                found.add(int(value))
        except Exception:  # a damaged value (pydicom raises any type) numbers nothing
            continue
    return found


#: At most this many files are looked at beside an output for the study's Series Numbers.
MAX_FILES_BESIDE = 2000


def series_numbers_beside(output: str | os.PathLike, study_uid: str | None) -> set[int]:
    """Series Numbers of the study's DICOM files in ``output``'s folder (or in ``output``,
    a folder): earlier models written there, not scanned further or deeper than
    :data:`MAX_FILES_BESIDE` regular files.  Unreadable files are passed over."""
    folder = Path(output)
    folder = folder if folder.is_dir() else folder.parent
    found: list[Dataset] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)[:MAX_FILES_BESIDE]
    except OSError:
        return set()
    for entry in entries:
        try:
            if not entry.is_file() or entry.stat().st_size < 132:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dataset = pydicom.dcmread(entry.path, stop_before_pixels=True,
                                          specific_tags=["StudyInstanceUID", "SeriesNumber"])
        except Exception:  # not DICOM, damaged, unreadable: it numbers nothing
            continue
        if study_uid is not None and str(dataset.get("StudyInstanceUID", "")) == study_uid:
            found.append(dataset)
    return series_numbers(found)


def with_study_series_numbers(chosen: SourceSeries, everything: Iterable[SourceSeries]) -> SourceSeries:
    """``chosen``, its :attr:`~SourceSeries.study_series_numbers` set from the series
    of its study among ``everything``."""
    study = chosen._text("StudyInstanceUID")
    chosen.study_series_numbers = series_numbers(
        series.datasets[0] for series in everything
        if series.datasets and series._text("StudyInstanceUID") == study)
    return chosen


def find_source_series(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    series_uid: str | None = None,
) -> SourceSeries:
    """The one image series under ``paths`` (or the one with ``series_uid``).

    Raises
    ------
    SeriesError
        No DICOM images were found, the named UID is not there, several image
        series are there and none was named (the message lists them), or files
        of the series cannot be used (see :func:`scan_series`).
    """
    label = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
    return choose_series(scan_series(paths), series_uid, label)


def reference_series(
    reference: str | os.PathLike,
    series_uid: str | None = None,
    preferred_uids: Sequence[str] = (),
) -> SourceSeries:
    """The source image series named on the command line (``--reference``).

    Parameters
    ----------
    reference:
        A directory (searched recursively) or one DICOM file standing for its whole
        series: the other instances of that series beside it are found too, so the
        model references every source instance.
    series_uid:
        The series to take, when given.
    preferred_uids:
        Series a segmentation itself references; the first one found is taken when
        ``series_uid`` is not given.  Segmentation objects, models and documents in
        the same folder are never taken as the source.

    Raises
    ------
    SeriesError
        No image series, the named one missing, several and none chosen, or files
        of the chosen series that cannot be used (see :func:`choose_series`).
    """
    path = Path(reference)
    if path.is_dir():
        everything = scan_series([path])
    elif not path.exists():
        raise SeriesError("no such file or directory", path)
    else:
        check_input(path, SeriesError)  # a FIFO or a device: refused, never read
        found = scan_series([path])
        if not found:
            raise SeriesError("not a DICOM file with a Series Instance UID", path)
        series_uid = series_uid or found[0].series_instance_uid
        everything = scan_series([path.parent])
    if series_uid is None:
        for uid in preferred_uids:
            if any(s.series_instance_uid == uid and s.modality not in _NON_IMAGE_MODALITIES for s in everything):
                series_uid = uid
                break
    return choose_series(everything, series_uid, path)
