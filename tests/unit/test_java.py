from pathlib import Path

import pytest

from milco_os.errors import MissingToolError
from milco_os.services.java import find_java, inspect_java_home, parse_release_major


@pytest.mark.parametrize(
    ("release", "major"),
    [('JAVA_VERSION="17.0.15"\n', 17), ('IMPLEMENTOR="x"\nJAVA_VERSION="25"\n', 25), ('JAVA_VERSION="1.8.0_392"', 8),
     ("nothing here", None)],
)
def test_parse_release_major(release: str, major: int | None) -> None:
    assert parse_release_major(release) == major


def test_inspect_java_home_needs_an_executable_java(tmp_path: Path) -> None:
    (tmp_path / "release").write_text('JAVA_VERSION="21.0.2"\n')
    assert inspect_java_home(tmp_path) is None
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    home = inspect_java_home(tmp_path)
    assert home is not None and home.major == 21 and home.java == java


def test_find_java_names_what_it_found_when_nothing_fits() -> None:
    with pytest.raises(MissingToolError) as failure:
        find_java(90, 99, "OpenSearch 99.0.0")
    assert "OpenSearch 99.0.0 needs Java 90 to 99" in str(failure.value)
    assert "MILCO_OS_JAVA_HOME" in str(failure.value)
