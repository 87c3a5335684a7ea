import socket
import subprocess
import sys
from pathlib import Path

import pytest

from milco_os.errors import MissingToolError, ServiceError
from milco_os.services import maven
from milco_os.services.ports import free_port, is_port_free, require_free_port
from milco_os.services.processes import log_tail, pid_alive, stop_popen, wait_until


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(200)))
    tail = log_tail(log, 50).splitlines()
    assert tail[0] == "line 150" and tail[-1] == "line 199" and len(tail) == 50
    assert log_tail(tmp_path / "missing.log") == ""


def test_wait_until_times_out_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("booting\nstuck on something\n")
    with pytest.raises(ServiceError) as failure:
        wait_until(lambda: False, timeout=0.3, what="test service", log=log, interval=0.05)
    assert "did not become ready within" in str(failure.value)
    assert "stuck on something" in str(failure.value)


def test_wait_until_fails_fast_when_the_process_dies() -> None:
    with pytest.raises(ServiceError, match="exited before it became ready"):
        wait_until(lambda: False, timeout=60, what="test service", alive=lambda: False)


def test_wait_until_returns_when_ready() -> None:
    answers = iter([False, False, True])
    waited = wait_until(lambda: next(answers), timeout=5, what="x", interval=0.05)
    assert next(answers, "no more") == "no more", "it returned before the condition held"
    assert 2 * 0.05 <= waited < 5, f"{waited} s: not the seconds of the two waits between three polls"


def test_port_helpers_see_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not is_port_free(port)
        with pytest.raises(ServiceError, match=f"Port {port} on 127.0.0.1 is already in use"):
            require_free_port(port, "thing")
    assert is_port_free(port)
    assert is_port_free(free_port())


def test_stop_popen_and_pid_alive() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pid_alive(process.pid)
    stop_popen(process, grace=5)
    assert not pid_alive(process.pid)


def test_missing_mvn_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="Maven \\('mvn'\\) is needed"):
        maven.fetch(maven.Artifact("org.example", "nothing", "1.0"), tmp_path / "repo")
