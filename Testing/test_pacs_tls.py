"""DICOM TLS: C-STORE to an Orthanc that speaks only TLS and requires a client certificate.

Certificates are made with the openssl command for this test: a CA, a server
certificate for 127.0.0.1 and a client certificate signed by it, and a second,
unrelated CA that must not be trusted.
"""

from __future__ import annotations

import subprocess

import numpy as np

from conftest import require_tool
from encapsulated_stl.cli import main
from encapsulated_stl.iod.encapsulate import ModelMetadata, encapsulate_stl, save_dataset
from encapsulated_stl.series.source_series import find_source_series
from encapsulated_stl.stl.format import binary_stl_bytes
from orthanc_server import CALLING_AE_TITLE, OrthancServer

TRIANGLES = np.array([[[0, 0, 0], [10, 0, 0], [0, 10, 0]]], dtype=np.float32)


def make_certificates(openssl: str, folder):
    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
            "-days", "2", "-subj", f"/CN=encapsulated-stl test {ca}")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, extra in (("server", "/CN=127.0.0.1", ["-extfile", "server.ext"]), ("client", "/CN=client", [])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", *extra)
    return {name: str(folder / name) for name in
            ("ca.pem", "other-ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_send_over_dicom_tls(tmp_path, ge_tilted_series, capsys):
    openssl = require_tool("openssl", "apt-get install openssl")
    pem = make_certificates(openssl, tmp_path)
    model = save_dataset(
        encapsulate_stl(binary_stl_bytes(TRIANGLES), find_source_series(ge_tilted_series), ModelMetadata()),
        tmp_path / "model.dcm",
    )
    server = OrthancServer(tmp_path / "orthanc", tls={
        "certificate": pem["server.pem"], "private_key": pem["server.key"], "trusted": pem["ca.pem"]}).start()
    try:
        base = ["send", str(model), "--to", server.node, "--calling-aet", CALLING_AE_TITLE, "--timeout", "5"]
        tls = ["--tls-cert", pem["client.pem"], "--tls-key", pem["client.key"]]

        assert main(base + tls + ["--tls-ca", pem["other-ca.pem"]]) == 1  # server not trusted
        out, err = capsys.readouterr()
        assert "TLS handshake or association failed" in out
        assert main(base) == 1  # plain DICOM to a TLS port
        out, err = capsys.readouterr()
        assert out.startswith("not sent") and server.node in out
        assert server.instance_uids() == set()

        assert main(base + tls + ["--tls-ca", pem["ca.pem"]]) == 0
        out, err = capsys.readouterr()
        assert "1 of 1 file(s) stored" in out, out + err
        assert len(server.instance_uids()) == 1
    finally:
        server.stop(kill=True)
