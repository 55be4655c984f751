"""DIMSE transfers with pynetdicom: C-STORE, C-FIND and C-GET (see :mod:`~encapsulated_stl.pacs.transfer`).

Presentation contexts are proposed explicitly for the Encapsulated STL, OBJ and
MTL SOP classes and for every SOP class among the files sent, with the files' own
transfer syntaxes.  Default context lists, such as pynetdicom's 120 storage
contexts or DCMTK 3.6.7 ``storescu``'s, do not include Encapsulated STL.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, StoragePresentationContexts, build_context, build_role, evt
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, P_DATA_TF
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from ..errors import EncapsulatedSTLError, PacsError
from ..files import write_atomically
from .peers import (
    FAILED,
    MODEL_SOP_CLASS_UIDS,
    NOT_SENT,
    STORED,
    WARNING,
    WRITTEN,
    DicomNode,
    FileResult,
    OutgoingFile,
    ResultCallback,
    _reason,
    output_path,
    study_of_series,
)

MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1..255
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_OTHER_NATIVE = (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)

# PS3.8 Table 9-21: A-ASSOCIATE-RJ source and reason.
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
_REGISTER_HINT = "register it there, with this host's address, or use --calling-aet"
_REJECT_HINTS = {
    (1, 3): "the PACS does not know the calling AE title '{calling}'; " + _REGISTER_HINT,
    (1, 7): "the PACS is not called '{called}'; check the AE title before the @",
}
# PS3.8 Table 9-26: A-ABORT reasons when the source is the peer's DICOM UL service provider.
_ABORT_REASONS = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}
#: What each request is called in messages.
_REQUESTS = {
    "C-STORE": "storage request (C-STORE)",
    "C-FIND": "query (C-FIND)",
    "C-GET": "retrieval request (C-GET)",
}

# PS3.4 Annex B.2.3 and PS3.7 C: C-STORE statuses worth naming.
_STORE_STATUSES = {
    0x0111: "duplicate SOP instance",
    0x0117: "invalid SOP instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0x0210: "duplicate invocation",
    0x0211: "unrecognized operation",
    0x0212: "mistyped argument",
    0xB000: "coercion of data elements",
    0xB006: "elements discarded",
    0xB007: "data set does not match SOP class",
}


# --------------------------------------------------------------------------- C-STORE


def _syntax_name(uid: str) -> str:
    return UID(uid).name or uid


def plan_contexts(files: Sequence[OutgoingFile]) -> list[tuple[list, list[OutgoingFile]]]:
    """Presentation contexts and the files that use them, one entry per association.

    Each SOP class gets a context offering Explicit and Implicit VR Little Endian
    (and any other native syntax among its files), plus one context per compressed
    syntax among its files, so a compressed file is sent as it is.  The three model
    SOP classes are always proposed.  More than 128 contexts are split over several
    associations, a SOP class never spanning two.
    """
    syntaxes: dict[str, list[str]] = {uid: [] for uid in MODEL_SOP_CLASS_UIDS}
    for item in files:
        found = syntaxes.setdefault(item.sop_class_uid, [])
        if item.transfer_syntax_uid not in found:
            found.append(item.transfer_syntax_uid)
    groups: list[tuple[list, list[str]]] = [([], [])]
    for sop_class, used in syntaxes.items():
        native = list(_UNCOMPRESSED) + [s for s in used if s in _OTHER_NATIVE]
        contexts = [build_context(sop_class, native)]
        contexts += [build_context(sop_class, [s]) for s in used if s not in native]
        if len(groups[-1][0]) + len(contexts) > MAX_CONTEXTS:
            groups.append(([], []))
        groups[-1][0].extend(contexts)
        groups[-1][1].append(sop_class)
    return [
        (contexts, [f for f in files if f.sop_class_uid in classes])
        for contexts, classes in groups
        if any(f.sop_class_uid in classes for f in files)
    ]


def _application_entity(node: DicomNode) -> AE:
    ae = AE(ae_title=node.calling_ae_title)
    ae.acse_timeout = node.timeout
    ae.dimse_timeout = node.timeout
    ae.network_timeout = node.timeout
    ae.connection_timeout = node.timeout
    return ae


class _PeerWatch:
    """What went over an association, seen through pynetdicom's PDU events.

    When a request gets no status, pynetdicom does not say why: the peer aborted
    (Orthanc does so for a request from a calling AE title it does not allow, having
    accepted the association), the connection closed, or nothing came within the
    DIMSE timeout and pynetdicom aborted.  ``Association.is_aborted`` is true in the
    last case too, and not always set yet when the empty status arrives; the PDU
    events are (they fire in the thread that reads the socket, before the request
    returns).  The same goes for a rejection: when the peer closes the connection
    right after its A-ASSOCIATE-RJ (Orthanc does), pynetdicom 2.0 to 3.0 now and then
    reports an abort instead (its requestor checks the connection after the reply
    came), but the PDU was received all the same.
    """

    def __init__(self) -> None:
        self.rejection: tuple[int, int, int] | None = None  # A-ASSOCIATE-RJ: result, source, reason
        self.answered = False  # the peer sent any P-DATA (a response, a sub-operation)
        self.peer_abort: tuple[int, int] | None = None  # its A-ABORT: source, reason
        self.we_aborted = False  # pynetdicom gave up waiting and sent an A-ABORT

    def handlers(self) -> list:
        return [(evt.EVT_PDU_RECV, self._received), (evt.EVT_PDU_SENT, self._sent)]

    def _received(self, event) -> None:
        if isinstance(event.pdu, P_DATA_TF):
            self.answered = True
        elif isinstance(event.pdu, A_ABORT_RQ):
            self.peer_abort = (int(event.pdu.source or 0), int(event.pdu.reason_diagnostic or 0))
        elif isinstance(event.pdu, A_ASSOCIATE_RJ):
            pdu = event.pdu
            self.rejection = (int(pdu.result or 0), int(pdu.source or 0), int(pdu.reason_diagnostic or 0))

    def _sent(self, event) -> None:
        if isinstance(event.pdu, A_ABORT_RQ):
            self.we_aborted = True

    @property
    def refused(self) -> bool:
        """The peer's DICOM application aborted before answering anything."""
        return self.peer_abort is not None and self.peer_abort[0] != 2 and not self.answered


def _associate(ae: AE, node: DicomNode, contexts=None, ext_neg=None, evt_handlers=()):
    """An established association and its :class:`_PeerWatch`, or :class:`PacsError` saying why not."""
    tls_args = None
    if node.tls is not None:
        tls_args = (node.tls.ssl_context(), node.host)
    watch = _PeerWatch()
    assoc = ae.associate(
        node.host,
        node.port,
        contexts=contexts,
        ae_title=node.ae_title,
        ext_neg=ext_neg,
        tls_args=tls_args,
        evt_handlers=list(evt_handlers) + watch.handlers(),
    )
    if assoc.is_established:
        return assoc, watch
    raise PacsError(_association_failure(assoc, watch, node))


def _no_status(watch: _PeerWatch, node: DicomNode, service: str) -> str:
    """Why a request (``service``: C-STORE, C-FIND, C-GET) got no status, in one line.

    The one description of an association that ended under a request: refused
    (aborted before any answer), aborted or closed by the peer, or timed out.
    """
    request = _REQUESTS.get(service, f"{service} request")
    if watch.refused:
        return (
            f"{node.label} refused the {request}: it aborted the association without answering "
            f"(the PACS may not know or allow the calling AE title '{node.calling_ae_title}'; "
            f"{_REGISTER_HINT})"
        )
    if watch.peer_abort is not None:
        source, reason = watch.peer_abort
        why = f": {_ABORT_REASONS.get(reason, f'reason {reason}')}" if source == 2 else ""
        return f"the association with {node.label} ended: the PACS aborted it during the {request}{why}"
    if watch.we_aborted:
        return f"no answer from {node.label} to the {request} within {node.timeout:g} s"
    return f"the association with {node.label} ended: the PACS closed the connection during the {request}"


def _require_context(assoc, node: DicomNode, sop_class) -> None:
    if not any(c.abstract_syntax == sop_class for c in assoc.accepted_contexts):
        raise PacsError(f"{node.label} does not accept {sop_class.name} ({sop_class})")


def _association_failure(assoc, watch: _PeerWatch, node: DicomNode) -> str:
    rejection = watch.rejection
    if rejection is None and assoc.is_rejected and assoc.acceptor.primitive is not None:
        primitive = assoc.acceptor.primitive
        rejection = (int(primitive.result), int(primitive.result_source), int(primitive.diagnostic))
    if rejection is not None:
        result, source, diagnostic = rejection
        key = (source, diagnostic)
        permanence = "permanently" if result == 1 else "for now"
        reason = _REJECT_REASONS.get(key, f"source {source}, reason {diagnostic}")
        text = f"{node.label} rejected the association {permanence}: {reason}"
        hint = _REJECT_HINTS.get(key)
        if hint:
            text += " (" + hint.format(calling=node.calling_ae_title, called=node.ae_title) + ")"
        return text
    primitive = assoc.acceptor.primitive
    if primitive is not None and getattr(primitive, "result", None) == 0 and not assoc.accepted_contexts:
        classes = list(dict.fromkeys(_syntax_name(str(c.abstract_syntax)) for c in assoc.requestor.requested_contexts))
        offered = ", ".join(classes[:3]) + (f" and {len(classes) - 3} more" if len(classes) > 3 else "")
        return f"{node.label} accepted the association but none of its presentation contexts ({offered})"
    # Not rejected: either the connection failed or the peer dropped it.
    try:
        with socket.create_connection((node.host, node.port), timeout=min(node.timeout, 5.0)):
            pass
    except OSError as error:
        return f"cannot connect to {node.label}: {_reason(error)} (is the PACS running, and is this its DICOM port?)"
    if node.tls is not None:
        return (
            f"{node.label} accepted the connection but the TLS handshake or association "
            "failed (check the certificates, and that the port speaks DICOM TLS)"
        )
    return (
        f"{node.label} accepted the connection but no association was made "
        "(the peer aborted or did not answer; does this port speak DICOM, or need TLS?)"
    )


def send(files: Sequence[OutgoingFile], node: DicomNode, on_result: ResultCallback | None) -> list[FileResult]:
    """C-STORE every file; one association per group of at most 128 contexts."""
    results: dict[int, FileResult] = {}

    def report(item: OutgoingFile, status: str, message: str = "") -> None:
        result = FileResult(item.path, status, message, item.sop_instance_uid)
        results[id(item)] = result
        if on_result is not None:
            on_result(result)

    for contexts, batch in plan_contexts(files):
        ae = _application_entity(node)
        try:
            assoc, watch = _associate(ae, node, contexts=contexts)
        except PacsError as error:
            for item in batch:
                report(item, NOT_SENT, str(error))
            continue
        try:
            _store_batch(assoc, watch, node, batch, report)
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()
    return [results[id(item)] for item in files]


def _store_batch(assoc, watch: _PeerWatch, node: DicomNode, batch: Sequence[OutgoingFile], report) -> None:
    accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
    lost: str | None = None
    ended = False  # a request got no status: the association is over, whatever pynetdicom says yet
    for number, item in enumerate(batch, 1):
        if lost is None and watch.refused:
            lost = _no_status(watch, node, "C-STORE")  # the next files would be refused alike
        elif lost is None and (ended or not assoc.is_established):
            lost = (
                f"the association with {node.label} ended after {number - 1} of {len(batch)} "
                "file(s): the PACS stopped or dropped the connection; run the same command "
                "again to send the rest (files already stored are harmlessly resent)"
            )
        if lost is not None:
            report(item, NOT_SENT, lost)
            continue
        sop_class = item.sop_class_uid
        if not any(a == sop_class for a, _ in accepted):
            report(
                item, FAILED,
                f"{node.label} does not accept SOP class {_syntax_name(sop_class)} ({sop_class})",
            )
            continue
        convertible = item.transfer_syntax_uid in _UNCOMPRESSED and any(
            a == sop_class and t in _UNCOMPRESSED for a, t in accepted
        )
        if (sop_class, item.transfer_syntax_uid) not in accepted and not convertible:
            offered = ", ".join(_syntax_name(t) for a, t in sorted(accepted) if a == sop_class)
            report(
                item, FAILED,
                f"{node.label} does not accept {_syntax_name(sop_class)} in "
                f"{_syntax_name(item.transfer_syntax_uid)} (it accepted: {offered}); "
                "decompress the file first",
            )
            continue
        try:
            status = assoc.send_c_store(item.path)
        except EncapsulatedSTLError:
            raise
        except Exception as error:  # the network, or a file damaged past its header: pynetdicom raises either
            if not assoc.is_established:
                report(item, FAILED, f"the association with {node.label} ended while sending: {_reason(error)}")
            else:
                report(item, FAILED, f"cannot send: {_reason(error)}")
            continue
        if "Status" not in status:
            ended = True
            message = _no_status(watch, node, "C-STORE")
            if not watch.refused:
                message += "; it may or may not be stored, and sending it again is harmless"
            report(item, FAILED, message)
            continue
        code = int(status.Status)
        comment = str(status.get("ErrorComment", "") or "")
        if code == 0x0000:
            report(item, STORED)
        elif code in (0xB000, 0xB006, 0xB007):
            report(item, WARNING, _status_text(code, comment))
        else:
            report(item, FAILED, f"{node.label} refused it: {_status_text(code, comment)}")


def _status_text(code: int, comment: str = "") -> str:
    name = _STORE_STATUSES.get(code)
    if name is None:
        high = code >> 8
        name = {0xA7: "out of resources", 0xA9: "data set does not match SOP class", 0xC0: "cannot understand"}.get(
            high, "failure"
        )
    text = f"status 0x{code:04X} ({name})"
    return f"{text}: {comment}" if comment else text


# --------------------------------------------------------------------------- C-FIND


_SERIES_KEYS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "NumberOfSeriesRelatedInstances",
)


_INSTANCE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def search_series(node: DicomNode, filters: dict[str, str]) -> list[Dataset]:
    """Series-level C-FIND: an answer per series matching ``filters`` (keywords to values)."""
    return _find(node, [_query("SERIES", _SERIES_KEYS, filters)])[0]


def search_instances(node: DicomNode, queries: Sequence[dict[str, str]]) -> list[list[Dataset]]:
    """Instance-level C-FINDs over one association, one answer list per query.

    Each query gives some of Study, Series and SOP Instance UID and SOP Class UID; the
    answers have all four.  A study with no series UID is a relational query, which
    Orthanc and most archives answer.
    """
    return _find(node, [_query("IMAGE", _INSTANCE_KEYS, filters) for filters in queries])


def _query(level: str, keys: Sequence[str], filters: dict[str, str]) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(query, keyword, filters.get(keyword, ""))
    return query


def _find(node: DicomNode, queries: Sequence[Dataset]) -> list[list[Dataset]]:
    ae = _application_entity(node)
    try:
        assoc, watch = _associate(ae, node, contexts=[build_context(StudyRootQueryRetrieveInformationModelFind)])
    except PacsError:
        ae.shutdown()
        raise
    answers: list[list[Dataset]] = []
    try:
        _require_context(assoc, node, StudyRootQueryRetrieveInformationModelFind)
        for query in queries:
            found: list[Dataset] = []
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if "Status" not in status:
                    raise PacsError(_no_status(watch, node, "C-FIND"))
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    if identifier is not None:
                        found.append(identifier)
                elif code != 0x0000:
                    raise PacsError(
                        f"{node.label} failed the query: {_status_text(code, str(status.get('ErrorComment', '') or ''))}"
                    )
            answers.append(found)
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()
    return answers


def _get_contexts() -> list[str]:
    """SOP classes we accept as C-GET sub-operations: the models first, then common storage."""
    classes = list(MODEL_SOP_CLASS_UIDS)
    for context in StoragePresentationContexts:
        if context.abstract_syntax not in classes:
            classes.append(str(context.abstract_syntax))
    return classes[: MAX_CONTEXTS - 1]


def _write_as_received(event, stream) -> None:
    """A C-STORE sub-operation's data set as a DICOM file, never decoded and re-encoded.

    The data set's bytes exactly as the peer sent them, behind the preamble and the
    File Meta Information of the presentation context they came in.  This is what
    pynetdicom 2.1+ calls ``Event.encoded_dataset()``; pynetdicom 2.0 (the last for
    Python 3.9, Slicer 5.6 and 5.8's) has the same pieces but not that method.
    """
    stream.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(stream, event.file_meta)
    stream.write(event.request.DataSet.getvalue())


def fetch_series(
    node: DicomNode,
    series_uid: str,
    directory: Path,
    study_uid: str | None,
    force: bool,
    on_result: ResultCallback | None,
) -> list[FileResult]:
    """C-GET every instance of a series into ``directory``."""
    study_uid = study_uid or study_of_series(lambda filters: search_series(node, filters), node.label, series_uid)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    return _get(node, query, f"series {series_uid}", directory, force, on_result)


def fetch_instance(
    node: DicomNode,
    study_uid: str,
    series_uid: str,
    sop_instance_uid: str,
    directory: Path,
    force: bool,
    on_result: ResultCallback | None,
) -> list[FileResult]:
    """C-GET one instance (at IMAGE level, by its three UIDs) into ``directory``."""
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    query.SOPInstanceUID = sop_instance_uid
    return _get(node, query, f"instance {sop_instance_uid}", directory, force, on_result)


def _get(
    node: DicomNode,
    query: Dataset,
    what: str,
    directory: Path,
    force: bool,
    on_result: ResultCallback | None,
) -> list[FileResult]:
    """C-GET what ``query`` names (``what``, in messages), each instance written as it comes."""
    results: list[FileResult] = []

    def report(result: FileResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    def handle_store(event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        try:
            path = output_path(directory, uid)
            write_atomically(path, lambda stream: _write_as_received(event, stream), force)
        except EncapsulatedSTLError as error:
            report(FileResult(Path(error.path or directory), FAILED, error.reason, uid))
            return 0xA700 if "cannot write" in error.reason else 0xC000
        report(FileResult(path, WRITTEN, "", uid))
        return 0x0000

    classes = _get_contexts()
    contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)]
    contexts += [build_context(uid, list(_UNCOMPRESSED)) for uid in classes]
    roles = [build_role(uid, scp_role=True) for uid in classes]
    ae = _application_entity(node)
    try:
        assoc, watch = _associate(
            ae, node, contexts=contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, handle_store)]
        )
    except PacsError:
        ae.shutdown()
        raise
    final = None
    try:
        _require_context(assoc, node, StudyRootQueryRetrieveInformationModelGet)
        for status, identifier in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if "Status" not in status:
                raise PacsError(_no_status(watch, node, "C-GET"))
            final = status
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()
    code = int(final.Status) if final is not None else None
    if code not in (0x0000, 0xB000) and not results:
        comment = str(final.get("ErrorComment", "") or "") if final is not None else ""
        raise PacsError(
            f"{node.label} did not send {what}: "
            + (_status_text(code, comment) if code is not None else "no answer")
        )
    if not results:
        raise PacsError(f"{node.label} has no instances in {what}")
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0) if final is not None else 0
    if failed > sum(1 for r in results if not r.ok):
        missing = failed - sum(1 for r in results if not r.ok)
        report(
            FileResult(
                directory, FAILED,
                f"{missing} instance(s) of {what} were not sent by {node.label} "
                "(a SOP class this client did not offer?)",
            )
        )
    return results
