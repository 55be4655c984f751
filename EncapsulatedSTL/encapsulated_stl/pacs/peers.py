"""The PACS peers and what a transfer reports, shared by :mod:`.dimse`, :mod:`.dicomweb`
and :mod:`~encapsulated_stl.pacs.transfer` (which chooses between them).

A peer is a :class:`DicomNode` (``AET@HOST:PORT``) or a :class:`DicomWebServer` (a base URL);
every file's fate is a :class:`FileResult`.  Credentials are kept out of ``repr``, messages
and logs.
"""

from __future__ import annotations

import math
import os
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from ..errors import EncapsulatedSTLError, PacsError
from ..files import check_input
from ..iod.document import (
    ENCAPSULATED_MTL_SOP_CLASS_UID,
    ENCAPSULATED_OBJ_SOP_CLASS_UID,
    ENCAPSULATED_STL_SOP_CLASS_UID,
)
from ..obj.model import material_library_files

#: SOP Class UIDs of the three 3D manufacturing model objects (PS3.4 B.5).
MODEL_SOP_CLASS_UIDS = (
    ENCAPSULATED_STL_SOP_CLASS_UID,
    ENCAPSULATED_OBJ_SOP_CLASS_UID,
    ENCAPSULATED_MTL_SOP_CLASS_UID,
)
MODEL_MODALITY = "M3D"

#: Calling AE title used when none is given.
DEFAULT_CALLING_AE_TITLE = "ENCAPSULATEDSTL"
#: Seconds to wait for a peer to connect or answer.
DEFAULT_TIMEOUT = 30.0
#: Seconds: a day; longer is a typo (and beyond what some socket calls accept).
MAX_TIMEOUT = 86400.0

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: not an object to send
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # default character repertoire, no backslash


# --------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class TlsFiles:
    """Files for DICOM TLS: our certificate and key, and the CA that signed the peer's."""

    certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSL context; raises :class:`EncapsulatedSTLError` naming an unusable file."""
        if (self.certificate is None) != (self.private_key is None):
            raise EncapsulatedSTLError("--tls-cert and --tls-key go together: give both or neither")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_certificates:
            _readable(self.ca_certificates)
            try:
                context.load_verify_locations(cafile=self.ca_certificates)
            except (ssl.SSLError, OSError) as error:
                raise EncapsulatedSTLError(f"not a usable CA certificate file ({_reason(error)})", self.ca_certificates) from None
        if self.certificate:
            _readable(self.certificate)
            _readable(self.private_key)
            try:
                context.load_cert_chain(self.certificate, self.private_key)
            except (ssl.SSLError, OSError) as error:
                raise EncapsulatedSTLError(
                    f"certificate and key {self.private_key} do not load ({_reason(error)})",
                    self.certificate,
                ) from None
        return context


def _readable(path: str) -> None:
    check_input(path)  # a FIFO or device would block the SSL loader


def check_timeout(seconds) -> float:
    """``seconds`` as a usable network timeout; else :class:`EncapsulatedSTLError`."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:
        raise EncapsulatedSTLError(
            f"timeout {seconds} s: give a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
        )
    return value


@dataclass(frozen=True)
class DicomNode:
    """A DIMSE peer: called AE title, host and port, and how we call it.

    Build one from ``AET@HOST:PORT`` with :meth:`parse`.
    """

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE
    tls: TlsFiles | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self):
        for title, what in ((self.ae_title, "called"), (self.calling_ae_title, "calling")):
            if not _AE_TITLE.match(title) or not title.strip():
                raise EncapsulatedSTLError(
                    f"invalid {what} AE title '{title}': 1 to 16 characters, no backslash"
                )
        if not 0 < int(self.port) < 65536:
            raise EncapsulatedSTLError(f"invalid port {self.port} for {self.ae_title}@{self.host}")
        check_timeout(self.timeout)

    @classmethod
    def parse(cls, text: str, **options) -> DicomNode:
        """``AET@HOST:PORT`` (``AET@[::1]:104`` for IPv6) as a node."""
        match = re.match(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d+)$", text.strip())
        if not match:
            raise EncapsulatedSTLError(f"'{text}' is not AET@HOST:PORT (for example ORTHANC@127.0.0.1:4242)")
        host = match["host"].strip("[]")
        return cls(match["aet"], host, int(match["port"]), **options)

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class DicomWebServer:
    """A DICOMweb service root URL and its credentials (a bearer token or user and password).

    Credentials given inside the URL (``https://user:pw@host/...``) are moved out
    of it.  ``repr`` and ``str`` never show them.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    ca_certificates: str | None = None

    def __post_init__(self):
        try:
            parts = urllib.parse.urlsplit(str(self.url).strip())
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # raises for a port that is not a number or out of range
        except ValueError:
            usable = False
        if not usable:
            raise EncapsulatedSTLError(
                f"'{_without_user_info(self.url)}' is not a DICOMweb URL: give "
                "http(s)://HOST[:PORT]/PATH, e.g. http://127.0.0.1:8042/dicom-web"
            )
        check_timeout(self.timeout)
        user, password = self.user, self.password
        if parts.username is not None:
            user = user or urllib.parse.unquote(parts.username)
            password = password or urllib.parse.unquote(parts.password or "")
        if self.token and (user or password):
            raise EncapsulatedSTLError("give either a token or a user and password, not both")
        if password and not user:
            raise EncapsulatedSTLError("a password needs a user (--user)")
        object.__setattr__(self, "url", _without_user_info(self.url.strip()).rstrip("/"))
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "password", password)

    @property
    def label(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url


def is_dicomweb_url(destination: str | None) -> bool:
    """True for a DICOMweb URL (``http://`` or ``https://``), False for ``AET@HOST:PORT``."""
    return re.match(r"^\s*https?://", destination or "", re.IGNORECASE) is not None


def peer_for_destination(
    destination: str,
    calling_ae_title: str | None = None,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    tls_certificate: str | None = None,
    tls_key: str | None = None,
    tls_ca_certificates: str | None = None,
    timeout: float | None = None,
) -> DicomNode | DicomWebServer:
    """The peer one destination text names, with the options that fit it.

    ``AET@HOST:PORT`` is a :class:`DicomNode` (``calling_ae_title``, DICOM TLS files);
    a URL is a :class:`DicomWebServer` (a bearer ``token``, or ``user`` and
    ``password``; ``tls_ca_certificates`` to trust an https server).  Empty values
    count as not given.

    Raises
    ------
    EncapsulatedSTLError
        No destination, an unusable one, or options that belong to the other kind.
    """
    text = (destination or "").strip()
    if not text:
        raise EncapsulatedSTLError(
            "give a destination: AET@HOST:PORT (a DICOM node, for example ORTHANC@127.0.0.1:4242) "
            "or a DICOMweb URL (for example http://127.0.0.1:8042/dicom-web)")
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    if is_dicomweb_url(text) or "://" in text:  # DicomWebServer refuses other schemes
        if tls_certificate or tls_key:
            raise EncapsulatedSTLError(
                "a client certificate and key are for DICOM TLS (AET@HOST:PORT); "
                "a DICOMweb server takes a token or a user and password")
        return DicomWebServer(text, token=token or None, user=user or None, password=password or None,
                              timeout=timeout, ca_certificates=tls_ca_certificates or None)
    if token or user or password:
        raise EncapsulatedSTLError(
            "a token, user or password is for a DICOMweb server (http:// or https://); "
            "a DICOM node (AET@HOST:PORT) is identified by AE titles only")
    tls = None
    if tls_certificate or tls_key or tls_ca_certificates:
        tls = TlsFiles(tls_certificate or None, tls_key or None, tls_ca_certificates or None)
    return DicomNode.parse(text, calling_ae_title=(calling_ae_title or "").strip() or DEFAULT_CALLING_AE_TITLE,
                           tls=tls, timeout=timeout)


def _without_user_info(url: str) -> str:
    """The URL with any ``user:password@`` removed (for messages and storage)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port
    except ValueError:
        return "<a URL that cannot be parsed>"
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- results


STORED = "stored"
WRITTEN = "written"
WARNING = "stored with warning"
FAILED = "failed"
NOT_SENT = "not sent"


@dataclass
class OutgoingFile:
    """A DICOM file to send, with the header facts the protocols need."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


@dataclass
class FileResult:
    """What happened to one file.

    Attributes
    ----------
    path:
        The local file (sent) or the written file (fetched).
    status:
        ``stored``, ``stored with warning``, ``failed`` or ``not sent`` for a file
        sent; ``written`` or ``failed`` for a file fetched.
    message:
        Why, in words; empty when stored without remark.
    sop_instance_uid:
        The instance, when known.
    """

    path: Path
    status: str
    message: str = ""
    sop_instance_uid: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (STORED, WRITTEN, WARNING)

    def line(self) -> str:
        """One line for a terminal: ``stored  path`` or ``failed  path: why``."""
        text = f"{self.status:<8} {self.path}"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class TransferReport:
    """Every file's result, in order, and the peer they went to or came from.

    Attributes
    ----------
    warnings:
        One line each about the files together rather than one file: an Encapsulated
        OBJ object whose Encapsulated MTL objects were neither sent with it nor found
        on the peer, or could not be retrieved with it.
    missing:
        SOP Instance UIDs of objects that fetched ones reference and the peer does not
        hold (an OBJ's MTL objects): the output folder does not hold the whole model,
        so the report is not :attr:`ok`.
    """

    peer: str
    results: list[FileResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> list[FileResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failed and not self.missing

    def summary(self, verb: str = "stored") -> str:
        text = f"{len(self.succeeded)} of {len(self.results)} file(s) {verb} ({self.peer})"
        if self.failed:
            text += f"; {len(self.failed)} not {verb}"
        if self.missing:
            text += f"; {len(self.missing)} referenced object(s) not on the peer"
        if self.skipped:
            text += f"; {len(self.skipped)} non-DICOM file(s) skipped"
        return text


ResultCallback = Callable[[FileResult], None]


@dataclass
class ModelSeries:
    """One 3D model series on a PACS, as a query describes it."""

    series_instance_uid: str
    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = MODEL_MODALITY
    instance_count: int | None = None
    formats: dict[str, int] = field(default_factory=dict)
    """Instances by what they encapsulate (``STL``, ``OBJ``, ``MTL``, ``other``), from an
    instance-level query; empty when the peer did not answer one."""

    @property
    def models(self) -> int:
        """How many of its instances are models (Encapsulated STL or OBJ), not materials."""
        return self.formats.get("STL", 0) + self.formats.get("OBJ", 0)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


#: What each model SOP class encapsulates, as :attr:`ModelSeries.formats` counts it.
FORMAT_OF_SOP_CLASS = {
    ENCAPSULATED_STL_SOP_CLASS_UID: "STL",
    ENCAPSULATED_OBJ_SOP_CLASS_UID: "OBJ",
    ENCAPSULATED_MTL_SOP_CLASS_UID: "MTL",
}


def model_series_from_dataset(ds) -> ModelSeries:
    """A :class:`ModelSeries` from a C-FIND or QIDO-RS series-level answer."""
    count = ds.get("NumberOfSeriesRelatedInstances")
    return ModelSeries(
        series_instance_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_name=str(ds.get("PatientName", "") or ""),
        study_date=str(ds.get("StudyDate", "") or ""),
        study_description=str(ds.get("StudyDescription", "") or ""),
        series_number=str(ds.get("SeriesNumber", "") or ""),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        modality=str(ds.get("Modality", "") or MODEL_MODALITY),
        instance_count=int(count) if count not in (None, "") else None,
    )


# --------------------------------------------------------------------------- files


def collect_files(paths: Iterable[str | os.PathLike]) -> tuple[list[OutgoingFile], list[Path]]:
    """The DICOM files named or found (recursively) under ``paths``.

    Returns the files to send, in order and without duplicates, and the files found
    in directories that are not DICOM (skipped).  A file named explicitly must be a
    DICOM file.

    Raises
    ------
    EncapsulatedSTLError
        A path does not exist, a named file is not DICOM, or nothing was found.
    """
    found: list[OutgoingFile] = []
    skipped: list[Path] = []
    seen: set[Path] = set()
    given = list(paths)
    for entry in given:
        path = Path(entry)
        if path.is_dir():
            # is_file() is false for FIFOs, sockets and devices: never opened
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
            explicit = False
        elif not path.exists():
            raise EncapsulatedSTLError("no such file or directory", path)
        else:
            check_input(path)  # a FIFO or a device: refused, never read
            candidates = [path]
            explicit = True
        for candidate in candidates:
            key = candidate.resolve()
            if key in seen:
                continue
            seen.add(key)
            outgoing = _outgoing(candidate)
            if outgoing is None:
                if explicit:
                    raise EncapsulatedSTLError(
                        "not a DICOM file with a file meta header, SOP Class and SOP Instance UID",
                        candidate,
                    )
                skipped.append(candidate)
            else:
                found.append(outgoing)
    if not found:
        raise EncapsulatedSTLError(
            "no DICOM files found", ", ".join(str(p) for p in given) or "(no paths given)"
        )
    return found, skipped


@dataclass(frozen=True)
class DocumentReference:
    """An object an Encapsulated OBJ object names in Referenced Instance Sequence (0008,114A)
    (PS3.3 C.24.2): one of its Encapsulated MTL objects, by SOP Instance UID."""

    sop_class_uid: str
    sop_instance_uid: str
    relative_uri: str
    study_instance_uid: str
    """The referencing object's study, where the referenced one is looked for on a peer."""

    @property
    def label(self) -> str:
        """``Encapsulated MTL object <UID> (<relative URI>)``, for messages."""
        kind = "Encapsulated MTL" if self.sop_class_uid == ENCAPSULATED_MTL_SOP_CLASS_UID else "object"
        return f"{kind} {self.sop_instance_uid}" + (f" ({self.relative_uri})" if self.relative_uri else "")


def document_references(path: str | os.PathLike) -> list[DocumentReference]:
    """The objects an Encapsulated OBJ file names (its MTL objects); none for other files.

    Only the header is read (the document is skipped), and a file that cannot be read
    names nothing: the transfer reports such files on their own.
    """
    try:
        dataset = pydicom.dcmread(
            path, stop_before_pixels=True, defer_size=1024,
            specific_tags=["SOPClassUID", "StudyInstanceUID", "ReferencedInstanceSequence"],
        )
        if str(dataset.get("SOPClassUID", "")) != ENCAPSULATED_OBJ_SOP_CLASS_UID:
            return []
        study = str(dataset.get("StudyInstanceUID", "") or "")
        found = []
        for item in dataset.get("ReferencedInstanceSequence", None) or []:
            uid = str(item.get("ReferencedSOPInstanceUID", "") or "")
            if uid:
                found.append(DocumentReference(
                    str(item.get("ReferencedSOPClassUID", "") or ""), uid,
                    str(item.get("RelativeURIReferenceWithinEncapsulatedDocument", "") or ""), study))
        return found
    except Exception:  # whatever a damaged header makes pydicom raise: it names nothing usable
        return []


def libraries_beside(files: Sequence[OutgoingFile], limit: int = 10000) -> list[OutgoingFile]:
    """Encapsulated MTL files beside the Encapsulated OBJ ones among ``files`` that those
    reference by SOP Instance UID and that are not among ``files`` already.

    This is where ``wrap`` writes them (``model-mtl.dcm`` beside ``model.dcm``) and where
    ``info`` finds them.  At most ``limit`` files per folder are looked at, and only those
    whose first kilobyte names the MTL SOP Class are read further.
    """
    listed = {item.sop_instance_uid for item in files}
    wanted = {
        reference.sop_instance_uid
        for item in files if item.sop_class_uid == ENCAPSULATED_OBJ_SOP_CLASS_UID
        for reference in document_references(item.path)
    } - listed
    found: list[OutgoingFile] = []
    folders = dict.fromkeys(item.path.parent for item in files if item.sop_class_uid == ENCAPSULATED_OBJ_SOP_CLASS_UID)
    for folder in folders if wanted else ():
        for candidate in material_library_files(folder, limit):
            outgoing = _outgoing(candidate)
            if outgoing is not None and outgoing.sop_instance_uid in wanted:
                wanted.discard(outgoing.sop_instance_uid)
                found.append(outgoing)
    return found


def _outgoing(path: Path) -> OutgoingFile | None:
    try:
        dataset = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
            defer_size=1024,
        )
    except Exception:  # whatever a damaged file makes pydicom raise, it is not one to send
        return None
    meta = getattr(dataset, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    sop_class = str(dataset.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    sop_instance = str(dataset.get("SOPInstanceUID", "") or "")
    if not syntax or not sop_class or not sop_instance or sop_class == _MEDIA_STORAGE_DIRECTORY:
        return None
    return OutgoingFile(path, sop_class, sop_instance, syntax)


# --------------------------------------------------------------------------- operations


def study_of_series(search_series, peer_label: str, series_uid: str) -> str:
    """The Study Instance UID of a series, found with ``search_series(filters)``.

    Raises
    ------
    PacsError
        The peer has no such series, or lists it in several studies.
    """
    found = search_series({"SeriesInstanceUID": series_uid})
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in found} - {""}
    if not studies:
        raise PacsError(f"{peer_label} has no series {series_uid}")
    if len(studies) > 1:
        raise PacsError(f"{peer_label} lists series {series_uid} in several studies; give --study-uid")
    return studies.pop()


def output_path(directory: Path, sop_instance_uid: str) -> Path:
    """Where a fetched instance is written: ``<directory>/<SOP Instance UID>.dcm``."""
    if not re.fullmatch(r"[0-9.]{1,64}", sop_instance_uid or ""):
        raise PacsError(f"the peer sent an instance with an invalid SOP Instance UID {sop_instance_uid!r}")
    return directory / f"{sop_instance_uid}.dcm"


def _reason(error: BaseException) -> str:
    """A short reason for an OS, SSL or network error, without the call's arguments."""
    text = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
    return str(text) or type(error).__name__
