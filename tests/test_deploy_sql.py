"""deploy/sql on the real PostgreSQL: each service role writes its own database only, and the
BI login reads the projections' bi_* relations and writes nothing."""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import ADMIN_URL, fresh_database

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "deploy/sql"
SERVICES = ("opportunity", "projections", "reminders")
BI_GROUP = "oppstream_bi_read"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("psql") is None, reason="the SQL files are psql scripts"),
]


@dataclass(frozen=True)
class Cluster:
    databases: dict[str, str]  # service -> its database URL
    roles: dict[str, str]  # service -> its role; "bi" -> the BI login

    def url(self, service: str, role: str) -> str:
        """The service's database as `role` (the test server trusts local connections, so
        the passwords are not checked here)."""
        return self.databases[service].replace("://postgres@", f"://{role}@", 1)


def psql(url: str, script: str, **variables: str) -> subprocess.CompletedProcess[str]:
    arguments = ["psql", url, "--no-psqlrc", "--quiet", "-f", str(SQL / script)]
    for name, value in variables.items():
        arguments += ["-v", f"{name}={value}"]
    return subprocess.run(arguments, capture_output=True, text=True, check=False)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:8]
    roles = {service: f"{service}_{suffix}" for service in SERVICES} | {"bi": f"bi_reader_{suffix}"}
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        group_existed = admin.execute(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [BI_GROUP]
        ).fetchone() == (True,)
    with ExitStack() as stack:
        # Registered first, so it runs last: once the databases are gone.
        stack.callback(drop_roles, [*roles.values(), *([] if group_existed else [BI_GROUP])])
        databases = {s: stack.enter_context(fresh_database(f"roles_{s}")) for s in SERVICES}
        yield Cluster(databases, roles)


def drop_roles(roles: list[str]) -> None:
    """After the databases are gone: their grants, default privileges and event trigger went
    with them."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        for role in roles:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    names = {f"{service}_role": role for service, role in cluster.roles.items() if service != "bi"}
    passwords = {f"{service}_password": "placeholder" for service in SERVICES}
    databases = {
        "eventstore_db": database_name(cluster.databases["opportunity"]),
        "projections_db": database_name(cluster.databases["projections"]),
        "reminders_db": database_name(cluster.databases["reminders"]),
    }
    for _ in range(2):  # idempotent
        done = psql(ADMIN_URL, "service_roles.sql", **names, **passwords, **databases)
        assert done.returncode == 0, done.stderr
    # The projections service's own tables, created as its role the way its migrations do.
    with psycopg.connect(cluster.url("projections", cluster.roles["projections"])) as service:
        service.execute("CREATE TABLE bi_opportunity (id text PRIMARY KEY, stage text)")
        service.execute("INSERT INTO bi_opportunity VALUES ('o-1', 'proposal')")
        service.execute("CREATE TABLE projection_position (topic text, position bigint)")
        service.execute(
            "CREATE VIEW bi_funnel AS SELECT stage, count(*) FROM bi_opportunity GROUP BY stage"
        )
    projections = cluster.databases["projections"]
    done = psql(projections, "bi_readonly_role.sql", owner=cluster.roles["projections"])
    assert done.returncode == 0, done.stderr
    for _ in range(2):
        done = psql(
            projections,
            "bi_login_role.sql",
            bi_login=cluster.roles["bi"],
            bi_password="placeholder",
        )
        assert done.returncode == 0, done.stderr
    return cluster


def test_the_scripts_refuse_to_run_without_passwords(cluster: Cluster) -> None:
    refused = psql(ADMIN_URL, "service_roles.sql")
    assert refused.returncode != 0
    assert "opportunity_password" in refused.stderr
    refused = psql(cluster.databases["projections"], "bi_login_role.sql", bi_login="nobody_here")
    assert refused.returncode != 0
    assert "bi_password" in refused.stderr


def test_service_roles_log_in_with_no_cluster_wide_power(installed: Cluster) -> None:
    with psycopg.connect(ADMIN_URL) as admin:
        for service in SERVICES:
            row = admin.execute(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
                " rolbypassrls, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                [installed.roles[service]],
            ).fetchone()
            assert row == (True, False, False, False, False, False, True)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_role_creates_tables_in_its_own_database_only(
    installed: Cluster, service: str
) -> None:
    role = installed.roles[service]
    with psycopg.connect(installed.url(service, role)) as own:
        own.execute("CREATE TABLE own_table (id int)")
        own.execute("INSERT INTO own_table VALUES (1)")
        own.execute("DROP TABLE own_table")
    for other in SERVICES:
        if other != service:
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(installed.url(other, role)).close()


def test_the_bi_login_reads_bi_relations(installed: Cluster) -> None:
    with psycopg.connect(installed.url("projections", installed.roles["bi"])) as bi:
        assert bi.execute("SELECT stage FROM bi_opportunity").fetchall() == [("proposal",)]
        assert bi.execute("SELECT count FROM bi_funnel").fetchall() == [(1,)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO bi_opportunity VALUES ('o-2', 'won')",
        "UPDATE bi_opportunity SET stage = 'won'",
        "DELETE FROM bi_opportunity",
        "CREATE TABLE bi_mine (id int)",
        "SELECT * FROM projection_position",
    ],
)
def test_the_bi_login_writes_nothing_and_reads_no_bookkeeping(
    installed: Cluster, statement: str
) -> None:
    with (
        psycopg.connect(installed.url("projections", installed.roles["bi"])) as bi,
        pytest.raises(
            (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)
        ),
    ):
        bi.execute(statement)


def test_the_bi_login_cannot_reach_the_other_databases(installed: Cluster) -> None:
    for service in ("opportunity", "reminders"):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(installed.url(service, installed.roles["bi"])).close()
