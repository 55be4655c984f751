"""``send``, ``find`` and ``fetch``: 3D models to and from a PACS (DIMSE or DICOMweb).

Exit codes: 0 when everything was stored or found; 1 when a transfer failed (a file
not stored, a peer unreachable or refusing, a fetched OBJ model's MTL object not on the
peer); 2 for bad input (see the package's ``cli`` module).  Warnings (an OBJ sent
without the MTL objects it references) are one ``warning:`` line each on stderr.
Passwords and tokens are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from ..errors import EncapsulatedSTLError, PacsError
from ..pacs.peers import (
    DEFAULT_CALLING_AE_TITLE,
    DEFAULT_TIMEOUT,
    DicomNode,
    DicomWebServer,
    FileResult,
    ModelSeries,
    TlsFiles,
    TransferReport,
    check_timeout,
)
from ..pacs.transfer import fetch_series, find_model_series, send_files
from . import one_line

EXIT_TRANSFER_FAILED = 1

#: Environment variables read when --token / --password are not given, so secrets
#: need not appear on the command line (and in the process list).
TOKEN_VARIABLE = "ENCAPSULATED_STL_DICOMWEB_TOKEN"
PASSWORD_VARIABLE = "ENCAPSULATED_STL_DICOMWEB_PASSWORD"


def register(subparsers) -> None:
    send = subparsers.add_parser(
        "send",
        help="send DICOM files (models, and their source series if you like) to a PACS",
        description="Send DICOM files to a PACS: C-STORE with --to, STOW-RS with --dicomweb. "
        "Directories are searched recursively; non-DICOM files in them are skipped. An Encapsulated "
        "OBJ file takes along the Encapsulated MTL files it references from its folder. "
        "One line per file, then a summary. Exit 1 if any file was not stored.",
    )
    send.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="DICOM files or directories")
    _add_peer_arguments(send, dimse_flag="--to")
    send.set_defaults(run=run_send)

    find = subparsers.add_parser(
        "find",
        help="list the 3D model series (Modality M3D) on a PACS",
        description="List 3D model series (Modality M3D): patient, study, description and "
        "what the series holds (STL and OBJ models, MTL materials). C-FIND with --from, "
        "QIDO-RS with --dicomweb.",
    )
    _add_peer_arguments(find, dimse_flag="--from")
    find.add_argument("--patient-id", metavar="ID", help="only this patient")
    find.add_argument("--study-uid", metavar="UID", help="only this study")
    find.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    find.set_defaults(run=run_find)

    fetch = subparsers.add_parser(
        "fetch",
        help="retrieve one series from a PACS into a directory",
        description="Retrieve every instance of a series into DIR as <SOP Instance UID>.dcm: "
        "C-GET with --from, WADO-RS with --dicomweb. The Encapsulated MTL objects an OBJ model "
        "references come along from any series of its study; exit 1 if one is not on the peer. "
        "'encapsulated-stl extract' and 'info' work on the result.",
    )
    _add_peer_arguments(fetch, dimse_flag="--from")
    fetch.add_argument("--series-uid", metavar="UID", required=True, help="the series to retrieve")
    fetch.add_argument("--study-uid", metavar="UID", help="its study (looked up when not given)")
    fetch.add_argument("-o", "--output", metavar="DIR", required=True, help="directory to write into")
    fetch.add_argument("--force", action="store_true", help="overwrite files that exist")
    fetch.set_defaults(run=run_fetch)


def _add_peer_arguments(parser: argparse.ArgumentParser, dimse_flag: str) -> None:
    peer = parser.add_argument_group("peer (one of)")
    where = peer.add_mutually_exclusive_group(required=True)
    where.add_argument(
        dimse_flag, dest="node", metavar="AET@HOST:PORT",
        help="DICOM node, e.g. ORTHANC@127.0.0.1:4242",
    )
    parser.set_defaults(dimse_flag=dimse_flag)
    where.add_argument(
        "--dicomweb", metavar="URL", help="DICOMweb service root, e.g. http://127.0.0.1:8042/dicom-web"
    )
    dimse = parser.add_argument_group("DIMSE options")
    dimse.add_argument(
        "--calling-aet", metavar="AET", default=DEFAULT_CALLING_AE_TITLE,
        help=f"our AE title, as the PACS knows it (default: {DEFAULT_CALLING_AE_TITLE})",
    )
    dimse.add_argument("--tls-cert", metavar="PEM", help="our TLS certificate (DICOM TLS)")
    dimse.add_argument("--tls-key", metavar="PEM", help="its private key")
    dimse.add_argument("--tls-ca", metavar="PEM", help="CA certificate(s) to trust for the peer (also for https)")
    web = parser.add_argument_group("DICOMweb options")
    web.add_argument("--token", help=f"bearer token (or set {TOKEN_VARIABLE})")
    web.add_argument("--user", help="user for HTTP basic authentication")
    web.add_argument("--password", help=f"its password (or set {PASSWORD_VARIABLE})")
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"seconds to wait for the peer (default: {DEFAULT_TIMEOUT:g})",
    )


def _seconds(text: str) -> float:
    try:
        return check_timeout(text)
    except EncapsulatedSTLError as error:
        raise argparse.ArgumentTypeError(error.reason) from None


def peer_from_args(args: argparse.Namespace) -> DicomNode | DicomWebServer:
    """The :class:`DicomNode` or :class:`DicomWebServer` the options name.

    An unusable peer is an error about its option (``--to``, ``--from`` or
    ``--dicomweb``), not about the files.
    """
    if args.node is not None:
        tls = None
        if args.tls_cert or args.tls_key or args.tls_ca:
            tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_ca)
        with _about(args.dimse_flag):
            return DicomNode.parse(
                args.node, calling_ae_title=args.calling_aet, tls=tls, timeout=args.timeout
            )
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    password = args.password or (os.environ.get(PASSWORD_VARIABLE) if args.user else None) or None
    with _about("--dicomweb"):
        return DicomWebServer(
            args.dicomweb,
            token=token,
            user=args.user,
            password=password,
            timeout=args.timeout,
            ca_certificates=args.tls_ca,
        )


@contextlib.contextmanager
def _about(option: str):
    try:
        yield
    except EncapsulatedSTLError as error:
        if error.path is None:
            raise type(error)(error.reason, option) from None
        raise


def _printer(args: argparse.Namespace):
    def show(result: FileResult) -> None:
        if not args.quiet or not result.ok:
            print(result.line(), flush=True)

    return show


def run_send(args: argparse.Namespace) -> int:
    peer = peer_from_args(args)
    report = send_files(args.paths, peer, on_result=_printer(args))
    _warn(report)
    print(report.summary("stored"), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else EXIT_TRANSFER_FAILED


def _warn(report: TransferReport) -> None:
    for warning in report.warnings:
        print(one_line(f"warning: {warning}"), file=sys.stderr, flush=True)


def run_find(args: argparse.Namespace) -> int:
    peer = peer_from_args(args)
    try:
        series = find_model_series(peer, patient_id=args.patient_id, study_instance_uid=args.study_uid)
    except PacsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_TRANSFER_FAILED
    if args.json:
        print(json.dumps([s.as_dict() for s in series], indent=2))
        return 0
    if not series:
        if not args.quiet:
            print(f"no 3D model series found on {peer.label}")
        return 0
    columns = ("patient_id", "patient_name", "study_date", "study_description",
               "series_description", "instance_count", "series_instance_uid")
    header = ("PATIENT ID", "PATIENT", "STUDY DATE", "STUDY", "SERIES", "FILES", "HOLDS", "SERIES UID")
    rows = [header]
    for found in series:
        cells = ["" if getattr(found, c) is None else str(getattr(found, c)) for c in columns]
        rows.append(tuple(cells[:-1] + [_holds(found), cells[-1]]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    peer = peer_from_args(args)
    try:
        report = fetch_series(
            peer, args.series_uid, args.output, study_instance_uid=args.study_uid,
            force=args.force, on_result=_printer(args),
        )
    except PacsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_TRANSFER_FAILED
    _warn(report)
    print(report.summary("written"), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else EXIT_TRANSFER_FAILED


def _holds(series: ModelSeries) -> str:
    """``1 OBJ + 1 MTL``, ``2 STL``; ``1 MTL (materials)`` for a series with no model."""
    text = " + ".join(f"{series.formats[kind]} {kind}" for kind in ("STL", "OBJ", "MTL", "other")
                      if series.formats.get(kind))
    return text + " (materials)" if text and not series.models else text
