"""DICOMweb transfers with dicomweb-client: STOW-RS, QIDO-RS and WADO-RS (see :mod:`~encapsulated_stl.pacs.transfer`).

Credentials travel only in the ``Authorization`` header, set by a ``requests``
authentication object at send time: they are not in the URL, not in any header
dictionary that dicomweb-client logs, and not in any message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from ..errors import EncapsulatedSTLError, PacsError
from ..files import write_atomically
from ..iod.file_format import write_file_format
from .peers import (
    FAILED,
    NOT_SENT,
    STORED,
    WARNING,
    WRITTEN,
    DicomWebServer,
    FileResult,
    OutgoingFile,
    ResultCallback,
    output_path,
    study_of_series,
)

#: Files per STOW-RS request, and bytes per request (whichever is reached first).
STOW_FILES_PER_REQUEST = 16
STOW_BYTES_PER_REQUEST = 64 * 1024 * 1024

#: Attempts per HTTP request (for 429, 408, 503, 504 and network errors), and the
#: base of the exponential wait between them, in milliseconds (0.5 s, then 1 s).
HTTP_ATTEMPTS = 3
HTTP_RETRY_WAIT_MS = 250

_SERIES_FIELDS = (
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyDescription",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "NumberOfSeriesRelatedInstances",
)


class _BearerToken(requests.auth.AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerToken(<hidden>)"


class _TimedSession(requests.Session):
    """A session whose every request waits at most ``timeout`` seconds for the server.

    dicomweb-client takes a timeout of its own only from 0.61; 0.59 and 0.60
    (bundled with Slicer 5.6 to 5.10) send requests without one, so a server that
    accepts the connection and never answers would hang them for ever.  Every
    request of every version goes through :meth:`request`, where ours replaces
    the one 0.61+ passes (its default, 20 s).
    """

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def client(server: DicomWebServer) -> DICOMwebClient:
    """A dicomweb-client for ``server`` with its credentials and timeout in the session."""
    session = _TimedSession(server.timeout)
    if server.token:
        session.auth = _BearerToken(server.token)
    elif server.user:
        session.auth = requests.auth.HTTPBasicAuth(server.user, server.password or "")
    if server.ca_certificates:
        session.verify = server.ca_certificates
    web = DICOMwebClient(server.url, session=session)
    # dicomweb-client retries failed requests (refused connections too) five times
    # with exponential waits, 30 s in all; a user waiting at a terminal is told sooner.
    web.set_http_retry_params(
        retry=True, max_attempts=HTTP_ATTEMPTS, wait_exponential_multiplier=HTTP_RETRY_WAIT_MS
    )
    return web


def _failure(error: Exception, server: DicomWebServer, what: str) -> str:
    """Words for a failed request; never the credentials or the request headers."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        code = error.response.status_code
        text = f"{server.label} answered {what} with HTTP {code} {error.response.reason or ''}".rstrip()
        if code in (401, 403):
            text += " (check the user and password or the token)"
        elif code == 404:
            text += " (is this the DICOMweb service root URL?)"
        return text
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS with {server.label} failed (check the server certificate or --tls-ca)"
    if isinstance(error, requests.Timeout):
        return f"no answer from {server.label} to {what} within {server.timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect to {server.label} (is the server running, and is this its URL?)"
    return f"{what} to {server.label} failed ({type(error).__name__})"


_NETWORK_ERRORS = (requests.RequestException, ValueError, OSError)


# --------------------------------------------------------------------------- STOW-RS


def _batches(files: Sequence[OutgoingFile]):
    batch: list[OutgoingFile] = []
    size = 0
    for item in files:
        length = item.path.stat().st_size
        if batch and (len(batch) >= STOW_FILES_PER_REQUEST or size + length > STOW_BYTES_PER_REQUEST):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += length
    if batch:
        yield batch


def send(files: Sequence[OutgoingFile], server: DicomWebServer, on_result: ResultCallback | None) -> list[FileResult]:
    """STOW-RS every file, a few per request; each file's result from the response."""
    web = client(server)
    results: list[FileResult] = []

    def report(item: OutgoingFile, status: str, message: str = "") -> None:
        result = FileResult(item.path, status, message, item.sop_instance_uid)
        results.append(result)
        if on_result is not None:
            on_result(result)

    unreachable: str | None = None
    for batch in _batches(files):
        if unreachable is not None:
            for item in batch:
                report(item, NOT_SENT, unreachable)
            continue
        datasets = []
        for item in batch:
            try:
                datasets.append(pydicom.dcmread(item.path))
            except Exception as error:  # damaged after its header was read: whatever pydicom raises
                raise EncapsulatedSTLError(f"cannot read: {error}", item.path) from None
        try:
            response = web.store_instances(datasets)
        except _NETWORK_ERRORS as error:
            message = _failure(error, server, "STOW-RS")
            for item in batch:
                report(item, FAILED, message)
            if isinstance(error, (requests.ConnectionError, requests.Timeout)) or (
                isinstance(error, requests.HTTPError)
                and error.response is not None
                and error.response.status_code in (401, 403, 404)
            ):
                unreachable = f"not sent: an earlier request failed ({message})"
            continue
        _report_stow_response(response, batch, server, report)
    return results


def _report_stow_response(response: Dataset, batch, server: DicomWebServer, report) -> None:
    stored = {}
    for item in response.get("ReferencedSOPSequence", []) or []:
        warning = item.get("WarningReason")
        stored[str(item.get("ReferencedSOPInstanceUID", ""))] = (
            f"warning 0x{int(warning):04X}" if warning is not None else ""
        )
    failed = {
        str(item.get("ReferencedSOPInstanceUID", "")): item.get("FailureReason")
        for item in response.get("FailedSOPSequence", []) or []
    }
    for item in batch:
        uid = item.sop_instance_uid
        if uid in failed:
            reason = failed[uid]
            code = f"failure reason 0x{int(reason):04X}" if reason is not None else "no reason given"
            report(item, FAILED, f"{server.label} refused it ({code})")
        elif uid in stored:
            report(item, WARNING if stored[uid] else STORED, stored[uid])
        else:
            report(item, FAILED, f"{server.label} did not mention this instance in its STOW-RS answer")


# --------------------------------------------------------------------------- QIDO-RS


def search_series(server: DicomWebServer, filters: dict[str, str]) -> list[Dataset]:
    web = client(server)
    try:
        found = web.search_for_series(
            search_filters=filters, fields=list(_SERIES_FIELDS), get_remaining=True
        )
    except _NETWORK_ERRORS as error:
        raise PacsError(_failure(error, server, "QIDO-RS")) from None
    return [Dataset.from_json(item) for item in found]


def search_instances(server: DicomWebServer, queries: Sequence[dict[str, str]]) -> list[list[Dataset]]:
    """Instance-level QIDO-RS, one answer list per query (as :func:`.dimse.search_instances`).

    Each query gives some of Study, Series and SOP Instance UID; the answers have
    those and the SOP Class UID.
    """
    web = client(server)
    answers = []
    for filters in queries:
        filters = {key: value for key, value in filters.items() if value}
        study = filters.pop("StudyInstanceUID", None)
        series = filters.pop("SeriesInstanceUID", None)
        try:
            found = web.search_for_instances(
                study_instance_uid=study, series_instance_uid=series, search_filters=filters,
                fields=["SOPClassUID"], get_remaining=True,
            )
        except _NETWORK_ERRORS as error:
            raise PacsError(_failure(error, server, "QIDO-RS")) from None
        answers.append([Dataset.from_json(item) for item in found])
    return answers


def fetch_instance(
    server: DicomWebServer,
    study_uid: str,
    series_uid: str,
    sop_instance_uid: str,
    directory: Path,
    force: bool,
    on_result: ResultCallback | None,
) -> list[FileResult]:
    """WADO-RS one instance into ``directory``."""
    web = client(server)
    try:
        dataset = web.retrieve_instance(study_uid, series_uid, sop_instance_uid)
    except _NETWORK_ERRORS as error:
        if isinstance(error, requests.HTTPError) and error.response is not None and error.response.status_code == 404:
            raise PacsError(f"{server.label} has no instance {sop_instance_uid} in study {study_uid}") from None
        raise PacsError(_failure(error, server, "WADO-RS")) from None
    result = _write(dataset, directory, force)
    if on_result is not None:
        on_result(result)
    return [result]


def _write(dataset: Dataset, directory: Path, force: bool) -> FileResult:
    uid = str(dataset.SOPInstanceUID)
    try:
        path = output_path(directory, uid)
        write_atomically(path, lambda stream: write_file_format(dataset, stream), force)
        return FileResult(path, WRITTEN, "", uid)
    except EncapsulatedSTLError as error:
        return FileResult(Path(error.path or directory), FAILED, error.reason, uid)


def fetch_series(
    server: DicomWebServer,
    series_uid: str,
    directory: Path,
    study_uid: str | None,
    force: bool,
    on_result: ResultCallback | None,
) -> list[FileResult]:
    study_uid = study_uid or study_of_series(lambda filters: search_series(server, filters), server.label, series_uid)
    web = client(server)
    results: list[FileResult] = []
    try:
        instances = web.iter_series(study_uid, series_uid)
        for dataset in instances:
            result = _write(dataset, directory, force)
            results.append(result)
            if on_result is not None:
                on_result(result)
    except _NETWORK_ERRORS as error:
        if isinstance(error, requests.HTTPError) and error.response is not None and error.response.status_code == 404 and not results:
            raise PacsError(f"{server.label} has no series {series_uid} in study {study_uid}") from None
        raise PacsError(_failure(error, server, "WADO-RS") + f" after {len(results)} file(s)") from None
    if not results:
        raise PacsError(f"{server.label} has no instances in series {series_uid}")
    return results
