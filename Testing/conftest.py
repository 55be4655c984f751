"""Shared test fixtures: paths to the real CT data and peer-tool requirements.

A test that needs a peer tool (dciodvfy, DCMTK, Orthanc) calls :func:`require_tool`.
On a user's machine a missing tool skips the test with the reason; in CI
(``CI=true``) it fails, so a missing install step can never pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTING = Path(__file__).resolve().parent
REPO = TESTING.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "dcm_qa_ct"

if str(TESTING) not in sys.path:
    sys.path.insert(0, str(TESTING))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# The fuzz tests: no deadline (CI machines vary), no example database written into
# the work tree (every failure found is kept as a named regression case instead),
# and the number of examples per test bounded so the campaign's time is too.  In CI
# the examples are the same on every run, so that a failure there is reproducible
# and main stays green; on a developer's machine each run draws new ones.
settings.register_profile(
    "project",
    deadline=None,
    database=None,
    derandomize=in_ci(),
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("project")


def missing(reason: str) -> None:
    """Skip with ``reason`` on a user's machine; fail in CI."""
    if in_ci():
        pytest.fail(f"CI must have this: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, package_hint: str) -> str:
    """Absolute path of the executable ``name``, or skip/fail naming how to install it."""
    path = shutil.which(name)
    if path is None:
        missing(f"'{name}' is not installed ({package_hint})")
    return path


def run_console_script(*argv, timeout: float = 120):
    """The installed ``encapsulated-stl`` as a user runs it, in its own process, with no
    input on stdin: (exit code, stdout, stderr)."""
    exe = shutil.which("encapsulated-stl")
    command = [exe] if exe else [sys.executable, "-m", "encapsulated_stl"]
    result = subprocess.run(
        command + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode, result.stdout, result.stderr


def real_series(name: str) -> Path:
    """A folder of ../shared/data/dcm_qa_ct, or skip/fail when the data is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        missing(f"real CT data not found at {path} (clone with ../shared beside the repo)")
    return path


@pytest.fixture
def ge_tilted_series() -> Path:
    """Real GE head CT, 18.5 degree tilt and uneven slice spacing (28 slices)."""
    return real_series("GE_tilt18_uneven")


@pytest.fixture
def philips_minus_tilt_series() -> Path:
    return real_series("Philips_phantom_two_tilts/tilt_minus18.5")


@pytest.fixture
def philips_plus_tilt_series() -> Path:
    return real_series("Philips_phantom_two_tilts/tilt_plus16.5")


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory):
    """A real Orthanc on 127.0.0.1 (free ports, temporary storage) for one test module."""
    from orthanc_server import OrthancServer

    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.fixture
def orthanc(orthanc_server):
    """The module's Orthanc, emptied for this test."""
    assert orthanc_server.running, orthanc_server.log_tail()
    orthanc_server.clear()
    return orthanc_server


def pytest_generate_tests(metafunc):
    """Every test that uses ``slicer_release`` runs once per Slicer release under test."""
    if "slicer_release" in metafunc.fixturenames:
        import slicer_harness

        metafunc.parametrize("slicer_release", slicer_harness.releases_under_test(), scope="session")


@pytest.fixture(scope="session")
def phantom_ct(tmp_path_factory):
    """The 20 degree tilted, evenly spaced CT of a sphere (slicer_scenes.write_tilted_phantom)."""
    import slicer_scenes

    folder = tmp_path_factory.mktemp("ct")
    slicer_scenes.write_tilted_phantom(folder)
    return folder


@pytest.fixture
def harness(slicer_release):
    """Slicer ``slicer_release``'s own Python with our plugin and module, an empty scene and
    an empty DICOM database (Testing/slicer_harness)."""
    import slicer_harness

    return slicer_harness.for_release(slicer_release)


@pytest.fixture
def mrml(harness):
    """The harness, for tests that need MRML (slicer-core: Python 3.10 and later)."""
    if not harness.has_mrml:
        pytest.skip("needs MRML from slicer-core, which has no wheel for this Python "
                    f"{sys.version_info.major}.{sys.version_info.minor}; Slicer {harness.release}'s "
                    "Python files are tested here without MRML")
    return harness
