"""A throwaway local PostgreSQL cluster, for the tests and the claim benchmark: ``initdb`` +
``pg_ctl`` into a temporary folder.

It listens on a UNIX socket only (no TCP port to collide with), trusts local connections and
skips fsync, and it is stopped and deleted afterwards. PostgreSQL refuses to run as root, so
under root the server runs as the ``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql (Debian's server package: initdb, pg_ctl)"


class PostgresUnavailable(Exception):
    """This machine cannot run a throwaway cluster; the message says why."""


def find_server_bin() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: on PATH, else Debian's versioned folder."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise PostgresUnavailable(f"PostgreSQL server binaries not found; {INSTALL_HINT}")
    return Path(candidates[-1]).parent


@dataclass
class Cluster:
    """A running cluster; :attr:`conninfo` reaches its ``postgres`` database."""

    root: Path
    bin_dir: Path
    run_as: str | None
    port: int = 5432

    @property
    def conninfo(self) -> str:
        return f"host={self.root} port={self.port} user=postgres dbname=postgres"

    @property
    def url(self) -> str:
        """The same as a ``postgresql://`` URL (what ``--store`` and ``--pool-store`` take)."""
        return f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"

    def _run(self, argv: Sequence[str]) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()}\n{tail}".strip())

    def start(self) -> None:
        data = self.root / "data"
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        options = (
            f"-k {self.root} -p {self.port} -c listen_addresses='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        # -w: pg_ctl itself waits (up to -t seconds) until the server accepts connections.
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        try:
            self._run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"]
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """Start a cluster in a fresh temporary folder (the caller must :meth:`Cluster.stop` it)."""
    bin_dir = find_server_bin()
    run_as: str | None = None
    root = Path(tempfile.mkdtemp(prefix="warmgate-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            raise PostgresUnavailable(
                f"running as root and there is no 'postgres' user to run the server as; {INSTALL_HINT}"
            ) from None
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = "postgres"
    cluster = Cluster(root, bin_dir, run_as)
    try:
        cluster.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster
