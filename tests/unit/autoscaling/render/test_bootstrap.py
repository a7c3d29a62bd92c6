"""The rendered host script, run by bash: it reads the target lifecycle state over IMDSv2, warms
the image once before the instance parks in the warm pool, and completes the launch hook once
per state change: CONTINUE when /ping answered 200 (or, in service, when the ECS agent has
registered), ABANDON when it did not within the start-up budget.

AWS is played by local stand-ins: an instance metadata service and an ECS agent introspection
endpoint (local HTTP servers) and an ``aws`` command that records its arguments. ``docker`` is
a recording stand-in too: no container engine runs here, so a local HTTP server answers the
container's ``/ping`` with the status the test sets.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from warmgate.autoscaling.render import RenderOptions
from warmgate.autoscaling.render.bootstrap import SCRIPT_PATH, UNIT_NAME, lifecycle_script, user_data

TOKEN = "imds-session-token"


@dataclass
class Host:
    """What the script sees: metadata, the agent, the container's /ping."""

    state: str = "Warmed:Stopped"
    ping_status: int = 200
    registered: bool = False
    tokens_checked: list[bool] = field(default_factory=list)
    agent_queries: int = 0


def serve(host: Host) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:  # IMDSv2 session token
            has_ttl = "X-aws-ec2-metadata-token-ttl-seconds" in self.headers
            self.answer(200, TOKEN) if self.path == "/latest/api/token" and has_ttl else self.answer(400)

        def do_GET(self) -> None:
            if self.path.startswith("/latest/meta-data/"):
                host.tokens_checked.append(self.headers.get("X-aws-ec2-metadata-token") == TOKEN)
                item = self.path.removeprefix("/latest/meta-data/")
                values = {
                    "instance-id": "i-0123456789abcdef0",
                    "placement/region": "eu-west-1",
                    "autoscaling/target-lifecycle-state": host.state,
                }
                self.answer(200, values[item]) if item in values else self.answer(404)
            elif self.path == "/v1/metadata":
                host.agent_queries += 1
                arn = '"arn:aws:ecs:eu-west-1:123456789012:container-instance/emb/abc"'
                self.answer(
                    200, f'{{"Cluster": "emb", "ContainerInstanceArn": {arn}}}'
                ) if host.registered else self.answer(200, '{"Cluster": "emb"}')
            elif self.path == "/ping":
                self.answer(host.ping_status)
            else:
                self.answer(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Run:
    host: Host
    calls: Path
    process: subprocess.Popen[bytes]

    def lines(self, prefix: str) -> list[str]:
        text = self.calls.read_text() if self.calls.exists() else ""
        return [line for line in text.splitlines() if line.startswith(prefix)]

    def wait_for(self, prefix: str, count: int, deadline_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + deadline_s
        while len(self.lines(prefix)) < count:
            assert self.process.poll() is None, (
                self.process.stdout.read().decode() if self.process.stdout else ""
            )
            assert time.monotonic() < deadline, f"{count} '{prefix}' calls not seen: {self.calls.read_text()}"
            time.sleep(0.05)
        return self.lines(prefix)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []
    servers: list[ThreadingHTTPServer] = []

    def run(host: Host, startup_s: int = 60) -> Run:
        server = serve(host)
        servers.append(server)
        port = server.server_address[1]
        calls = tmp_path / "calls"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in ("aws", "docker"):  # record the call; say nothing
            shim = bin_dir / tool
            shim.write_text(f'#!/bin/bash\necho "{tool} $*" >> {calls}\n')
            shim.chmod(0o755)
        rendered = lifecycle_script(RenderOptions(name="emb", image="repo/emb:1", port=port))
        # the test's start-up budget: seconds instead of minutes
        script = rendered.replace("\nSTARTUP_S=600\n", f"\nSTARTUP_S={startup_s}\n")
        assert script != rendered or startup_s == 600
        path = tmp_path / "warmgate-lifecycle"
        path.write_text(script)
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "WARMGATE_IMDS": f"http://127.0.0.1:{port}",
            "WARMGATE_ECS_AGENT": f"http://127.0.0.1:{port}",
            "WARMGATE_POLL_S": "0.1",
        }
        process = subprocess.Popen(
            ["bash", str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        runs.append(Run(host, calls, process))
        return runs[-1]

    yield run
    for r in runs:
        r.process.kill()
        r.process.wait(timeout=10)
    for server in servers:
        server.shutdown()
        server.server_close()


def hook_call(result: str) -> str:
    return (
        "aws autoscaling complete-lifecycle-action --region eu-west-1 --auto-scaling-group-name emb-ecs "
        f"--lifecycle-hook-name emb-warm --instance-id i-0123456789abcdef0 --lifecycle-action-result {result}"
    )


def test_a_standby_parks_only_after_warming_once_then_enters_service(start: Callable[..., Run]) -> None:
    run = start(Host(state="Warmed:Stopped", ping_status=200))
    assert run.wait_for("aws", 1) == [hook_call("CONTINUE")]
    docker = run.lines("docker")
    assert docker[1].startswith("docker run -d --name warmgate-prewarm") and docker[1].endswith(
        "repo/emb:1 serve"
    )
    assert docker[2].startswith("docker stop -t 75 warmgate-prewarm")  # the server drains, then exits
    assert all(run.host.tokens_checked)  # every metadata read carried the IMDSv2 token

    # leaving the pool: no local /ping to wait for; CONTINUE once the ECS agent registered
    run.host.state = "InService"
    deadline = time.monotonic() + 30
    while run.host.agent_queries < 2:  # it asked the agent, twice, and got no instance ARN
        assert time.monotonic() < deadline, "the script never asked the ECS agent"
        time.sleep(0.05)
    assert run.lines("aws") == [hook_call("CONTINUE")]  # not yet: the agent has not registered
    run.host.registered = True
    assert run.wait_for("aws", 2)[1] == hook_call("CONTINUE")
    assert len(run.lines("docker run")) == 1  # the image ran once, before parking


def test_an_image_that_never_gets_ready_is_abandoned(start: Callable[..., Run]) -> None:
    run = start(Host(state="Warmed:Hibernated", ping_status=503), startup_s=3)
    assert run.wait_for("aws", 1) == [hook_call("ABANDON")]
    assert run.lines("docker stop")  # the failed container is stopped, not left running


def test_the_user_data_is_valid_bash_that_installs_the_script_verbatim(tmp_path: Path) -> None:
    options = RenderOptions(name="emb", image="repo/emb:1")
    text = user_data(options)
    path = tmp_path / "user-data"
    path.write_text(text)
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    # the heredoc is quoted ('WARMGATE_EOF'): bash writes the script without expanding it
    body = text.split(f"cat > {SCRIPT_PATH} <<'WARMGATE_EOF'\n", 1)[1].split("\nWARMGATE_EOF\n", 1)[0]
    assert body + "\n" == lifecycle_script(options)
    assert f"systemctl enable --now --no-block {UNIT_NAME}" in text
