"""A real Orthanc server for the PACS tests, started and stopped by the tests.

:class:`OrthancServer` writes an Orthanc configuration (JSON) into a temporary
directory, starts ``Orthanc <config>`` on 127.0.0.1 with free HTTP and DICOM ports,
its own storage directory and the DICOMweb plugin, waits until the REST API answers,
and stops it.  The configuration makes Orthanc strict, so the fault tests meet real
refusals rather than simulated ones:

- ``DicomCheckCalledAet``: an association calling any AE title but ``ORTHANC`` is rejected;
- every ``DicomAlwaysAllow*`` is false and only the calling AE title
  :data:`CALLING_AE_TITLE` is a known modality: any other calling AE title is rejected;
- HTTP basic authentication with user :data:`USER` (DICOMweb and REST API).

``settings`` overrides any of these, e.g. ``{"DicomAlwaysAllowEcho": True}`` (Orthanc's
own default): associations from any calling AE title are then accepted, and its other
requests refused one by one.

Debian packages: ``orthanc`` and ``orthanc-dicomweb``.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import missing, require_tool

AE_TITLE = "ORTHANC"
CALLING_AE_TITLE = "ESTLTEST"
USER = "pacs-tester"
PASSWORD = "orthanc-test-password"

#: Where Debian's orthanc-dicomweb puts the plugin (the first is a symlink to the second).
DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
INSTALL_HINT = "apt-get install orthanc orthanc-dicomweb"


def dicomweb_plugin() -> str:
    """Path of the DICOMweb plugin, or skip/fail naming the package."""
    for candidate in DICOMWEB_PLUGIN_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    for folder in ("/usr/lib/orthanc", "/usr/share/orthanc/plugins"):
        found = sorted(Path(folder).glob("libOrthancDicomWeb.so*")) if Path(folder).is_dir() else []
        if found:
            return str(found[0])
    missing(f"the Orthanc DICOMweb plugin is not installed ({INSTALL_HINT})")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OrthancServer:
    """One Orthanc process with its own configuration, storage and ports.

    ``start()`` and ``stop()`` may be called again: the storage directory and the
    ports are kept, so a restarted server still has what it stored.
    """

    def __init__(self, directory: Path, tls: dict[str, str] | None = None, settings: dict | None = None):
        self.executable = require_tool("Orthanc", INSTALL_HINT)
        self.plugin = dicomweb_plugin()
        self.directory = Path(directory)
        self.storage = self.directory / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "orthanc.json"
        self.log_path = self.directory / "orthanc.log"
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.process: subprocess.Popen | None = None
        #: DICOM TLS files: ``certificate``, ``private_key`` and ``trusted`` (the CA of
        #: accepted client certificates); ``None`` for plain DICOM.
        self.tls = tls
        #: Orthanc configuration options that replace the strict ones above.
        self.settings = dict(settings or {})

    # -- addresses

    @property
    def node(self) -> str:
        """``AET@HOST:PORT`` of its DICOM server."""
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    # -- life cycle

    def configuration(self) -> dict:
        return {
            "Name": "encapsulated-stl tests",
            "StorageDirectory": str(self.storage),
            "IndexDirectory": str(self.storage),
            "StorageCompression": False,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalities": {
                "tests": {"AET": CALLING_AE_TITLE, "Host": "127.0.0.1", "Port": free_port()}
            },
            "DicomScpTimeout": 10,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "HttpThreadsCount": 4,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "Plugins": [self.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            **self.settings,
        }

    def start(self, timeout: float = 20.0) -> OrthancServer:
        configuration = self.configuration()
        if self.tls is not None:
            configuration.update(
                DicomTlsEnabled=True,
                DicomTlsCertificate=self.tls["certificate"],
                DicomTlsPrivateKey=self.tls["private_key"],
                DicomTlsTrustedCertificates=self.tls["trusted"],
                DicomTlsRemoteCertificateRequired=True,
            )
        self.config_path.write_text(json.dumps(configuration, indent=2))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.executable, str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.rest("/system").get("DicomPort") == self.dicom_port and self._dicom_listening():
                    return self
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log_tail()}")

    def _dicom_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the process (SIGKILL with ``kill``, as if it crashed) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST API (to check what the server holds, independently of the code under test)

    def rest(self, path: str):
        request = urllib.request.Request(self.http_url + path)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def rest_bytes(self, path: str) -> bytes:
        request = urllib.request.Request(self.http_url + path)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()

    def instance_uids(self) -> set[str]:
        """SOP Instance UIDs of every instance stored."""
        uids = set()
        for identifier in self.rest("/instances"):
            uids.add(self.rest(f"/instances/{identifier}")["MainDicomTags"]["SOPInstanceUID"])
        return uids

    def studies(self) -> dict[str, dict[str, dict]]:
        """Study Instance UID -> Series Instance UID -> {"Modality", "Instances"}."""
        result: dict[str, dict[str, dict]] = {}
        for study in self.rest("/studies?expand"):
            series_map = result.setdefault(study["MainDicomTags"]["StudyInstanceUID"], {})
            for series_id in study["Series"]:
                series = self.rest(f"/series/{series_id}")
                series_map[series["MainDicomTags"]["SeriesInstanceUID"]] = {
                    "Modality": series["MainDicomTags"].get("Modality"),
                    "Instances": len(series["Instances"]),
                }
        return result

    def clear(self) -> None:
        """Delete every patient (between tests sharing one server)."""
        for patient in self.rest("/patients"):
            request = urllib.request.Request(f"{self.http_url}/patients/{patient}", method="DELETE")
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
            urllib.request.urlopen(request, timeout=10).read()

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
