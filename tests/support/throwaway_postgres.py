"""A PostgreSQL cluster of a test's own, on a free port, that the test may stop and start:
the shared server on 5432 serves other developers' tests and is never touched."""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.processes import free_port

PG_CTL_TIMEOUT = 60


def postgres_bin() -> Path | None:
    """The newest installed server's binaries (Debian layout), if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


@dataclass
class Cluster:
    """A running cluster: trust authentication, listening on 127.0.0.1:`port` only."""

    bin: Path
    root: Path
    port: int
    as_postgres: Sequence[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        self._pg_ctl("start", "-w", "-o", options, "-l", str(self.root / "server.log"))

    def stop(self, mode: str = "fast") -> None:
        """Shut down; "fast", as an operator's restart does, ends the sessions at once."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            check=False,
            timeout=PG_CTL_TIMEOUT,
        )
        return status.returncode == 0

    def _pg_ctl(self, *args: str) -> None:
        # -D always names this cluster's own directory: never PGDATA, never the shared server.
        _run([*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), *args])


def _run(command: Sequence[str]) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=PG_CTL_TIMEOUT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new cluster, started; stopped and deleted however the block ends."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    # The server refuses to run as root: as root, run it as the `postgres` user, in a folder
    # of its own outside pytest's (whose parents only root may enter).
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="oppstream-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(binaries, root, free_port(), as_postgres)
    try:
        _run(
            [
                *as_postgres,
                str(binaries / "initdb"),
                *("-D", str(cluster.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
                "--no-sync",
            ]
        )
        cluster.start()
        yield cluster
    finally:
        if cluster.data.exists() and cluster.is_running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
