from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from milco_os.commands.connection import INSECURE_WARNING, Connection, connection_options


def test_password_never_shows_in_repr() -> None:
    connection = Connection("https://search.example:9200", "ops", "s3cret-Pa55")
    assert "s3cret-Pa55" not in repr(connection) and "ops" in repr(connection)


@pytest.mark.parametrize("insecure", [False, True])
def test_certificates_are_verified_unless_insecure(insecure: bool, capsys: pytest.CaptureFixture) -> None:
    client = Connection("https://search.example:9200", insecure=insecure, backend="opensearch").client()
    connection = client.transport.get_connection()
    assert connection.pool.cert_reqs == ("CERT_NONE" if insecure else "CERT_REQUIRED")
    assert (INSECURE_WARNING in capsys.readouterr().err) == insecure


@pytest.mark.parametrize("insecure", [False, True])
def test_elasticsearch_clients_verify_certificates_unless_insecure(insecure: bool) -> None:
    client = Connection("https://search.example:9200", insecure=insecure, backend="elasticsearch").client()
    node = client.transport.node_pool.all()[0]
    assert node.config.verify_certs is (not insecure)
    assert type(client).__module__.startswith("elasticsearch")


def test_options_arrive_as_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    @click.command()
    @connection_options
    @click.option("--index")
    def command(connection: Connection, index: str) -> None:
        seen.update(connection=connection, index=index)

    monkeypatch.setenv("MILCO_OS_PASSWORD", "from-env")
    result = CliRunner().invoke(command, ["--url", "http://h:1", "--user", "u", "--index", "i", "--insecure"])
    assert result.exit_code == 0, result.output
    assert seen == {"connection": Connection("http://h:1", "u", "from-env", None, None, True, "auto"),
                    "index": "i"}
