"""The PACS stops in the middle of a C-STORE batch, then comes back and the batch is re-run.

This test has an Orthanc of its own (the module-wide one of test_pacs_orthanc.py
must stay up): it is killed from the progress callback after the sixth file, the
way a crashed or restarted server drops an association.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom

from encapsulated_stl.cli import main
from encapsulated_stl.iod.encapsulate import ModelMetadata, encapsulate_stl, save_dataset
from encapsulated_stl.pacs.transfer import send_files
from encapsulated_stl.pacs.peers import FAILED, NOT_SENT, STORED, DicomNode
from encapsulated_stl.series.source_series import find_source_series
from encapsulated_stl.stl.format import binary_stl_bytes
from orthanc_server import CALLING_AE_TITLE, OrthancServer

TRIANGLES = np.array([[[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 0, 0], [0, 10, 0], [0, 0, 10]]], dtype=np.float32)
STOP_AFTER = 6


def digests(paths):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_server_stopped_mid_batch_then_rerun_completes(tmp_path, ge_tilted_series, capsys):
    source = find_source_series(ge_tilted_series)
    model = save_dataset(encapsulate_stl(binary_stl_bytes(TRIANGLES), source, ModelMetadata()), tmp_path / "model.dcm")
    files = sorted(source.files) + [model]
    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    before = digests(files)

    server = OrthancServer(tmp_path / "orthanc").start()
    try:
        node = DicomNode.parse(server.node, calling_ae_title=CALLING_AE_TITLE, timeout=10)
        seen = []

        def stop_the_server(result):
            seen.append(result)
            if len(seen) == STOP_AFTER:
                server.stop(kill=True)

        report = send_files([ge_tilted_series, model], node, on_result=stop_the_server)
        statuses = [r.status for r in report.results]
        assert statuses[:STOP_AFTER] == [STORED] * STOP_AFTER
        assert not report.ok and len(report.results) == len(files) == 29
        rest = report.results[STOP_AFTER:]
        assert {r.status for r in rest} <= {FAILED, NOT_SENT} and rest[-1].status == NOT_SENT
        for result in rest:
            assert server.node in result.message and ("ended" in result.message or "no answer" in result.message)
        assert digests(files) == before

        # the server comes back with what it had stored; a re-run completes the batch
        server.start()
        assert len(server.instance_uids()) >= STOP_AFTER
        code = main(["send", str(ge_tilted_series), str(model), "--to", server.node, "--calling-aet", CALLING_AE_TITLE])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        assert "29 of 29 file(s) stored" in out
        assert server.instance_uids() == uids
        assert len(server.rest("/instances")) == 29  # resent files were not duplicated
        assert digests(files) == before
    finally:
        server.stop(kill=True)
