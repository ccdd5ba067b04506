"""An interrupted `make book` leaves nothing running (issue 15): the builder's papermill and kernel are
gone within 5 s of a Ctrl-C (SIGINT), a SIGTERM or a SIGKILL of the builder."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds processes through Linux /proc")


def marked(marker: str) -> dict[int, str]:
    """Live processes (not zombies) whose environment holds `marker`: the builder and all it started."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() not in (proc / "environ").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def _as_in_a_terminal() -> None:
    """SIGINT as a build in a terminal has it. A test run started in the background by a shell without
    job control (`make test &` in a script) inherits SIGINT ignored, and so would the builder: it would
    never see this test's Ctrl-C (a failure of the set-up, not of the builder)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_build_leaves_no_papermill_or_kernel_behind(tmp_path, how):
    marker = f"LIFCORE_BUILD_TEST={uuid.uuid4().hex}"
    profile = tmp_path / "slow.yaml"  # a notebook that runs long enough to be interrupted in its kernel
    profile.write_text("toy_gaussian:\n  grid: 300\n  grid_steps: 200000\n")
    # the builder's and papermill's stderr go to a file: a pipe nobody reads while the build runs fills
    # (64 KB) and blocks both writers, which would look like a builder that does not stop
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        builder = subprocess.Popen([sys.executable, str(ROOT / "book" / "build.py"), "--profile", str(profile), "--only",
                                    "toy_gaussian", "--no-html", "--force", "--build-dir", str(tmp_path / "build")],
                                   env={**os.environ, marker.split("=")[0]: marker.split("=")[1], "OMP_NUM_THREADS": "1"},
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                                   preexec_fn=_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while not any("ipykernel" in cmd for cmd in marked(marker).values()):
            assert builder.poll() is None, f"the build ended before its kernel started: {log.read_text()[-2000:]!r}"
            assert time.monotonic() < deadline, "no kernel started within 120 s"
            time.sleep(0.2)
        time.sleep(1.0)  # the kernel is executing cells
        assert any("papermill" in cmd for cmd in marked(marker).values())
        builder.send_signal(how)
        try:
            builder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the builder did not exit within 30 s of {how.name}; running: {marked(marker)}; "
                        f"its stderr ends: {log.read_text()[-3000:]!r}")
        deadline = time.monotonic() + 5.0
        while marked(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marked(marker) == {}, f"left running 5 s after {how.name}: {marked(marker)}"
    finally:
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)
