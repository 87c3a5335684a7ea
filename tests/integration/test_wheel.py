"""The wheel, installed into a fresh virtualenv outside the checkout, does the main job on its own files.

Its dependencies (torch and the rest, gigabytes) are borrowed from the test environment through
a path entry, so nothing is downloaded; milco-os itself, its data files and its console script
come only from the wheel, and every command runs outside the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os import __version__

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [{"id": "berlin", "text": "Berlin ist die Hauptstadt von Deutschland."},
             {"id": "tokyo", "text": "東京は日本の首都です。"},
             {"id": "cairo", "text": "القاهرة هي عاصمة مصر"}]


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} exited {result.returncode}: {result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtualenv holding milco-os from a wheel built from this checkout."""
    root = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"), str(REPO_ROOT)], root)
    wheels = list((root / "dist").glob("milco_os-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    python = venv / "bin" / "python"
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             root).stdout.strip())
    (site_packages / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
         str(wheels[0])], root)
    return venv / "bin"


def test_the_installed_package_and_its_files_come_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    assert run([str(installed / "milco-os"), "--version"], tmp_path).stdout.split()[-1] == __version__
    probe = ("import json, milco_os, milco_os.resources as r, milco_os.sample_corpus as s; print(json.dumps("
             "[milco_os.__file__, *(str(r.resource_dir(n)) for n in ('mappings', 'ingest_pipelines', "
             "'opensearch_ml', 'triton_models')), str(s.sample_dir())]))")
    paths = [Path(p) for p in json.loads(run([str(installed / "python"), "-c", probe], tmp_path).stdout)]
    venv = installed.parent.resolve()
    for path in paths:
        assert path.resolve().is_relative_to(venv), f"{path} is not inside the virtualenv"
    package, mappings, pipelines, _, triton_models, sample = paths
    assert (mappings / "milco_index.json").is_file() and (pipelines / "milco-stamp.json").is_file()
    assert (triton_models / "milco" / "1" / "model.py").is_file()
    assert (sample / "corpus.jsonl").is_file() and (sample / "qrels" / "test.tsv").is_file()
    assert not package.resolve().is_relative_to(REPO_ROOT)


def test_the_installed_command_exports_sets_up_ingests_and_searches(
        installed: Path, tmp_path: Path, opensearch_url: str, opensearch: OpenSearch, index_name: str) -> None:
    milco_os = str(installed / "milco-os")
    run([milco_os, "tiny-checkpoint", "checkpoint"], tmp_path)
    model = run([milco_os, "triton", "export", "--model", "checkpoint", "--out", "repository", "--device", "cpu"],
                tmp_path).stdout.strip()
    version_dir = tmp_path / model / "1"  # an absolute path printed stays as it is
    assert (version_dir / "model.py").is_file() and (version_dir / "requirements.txt").is_file()
    assert (version_dir / "milco_os" / "serving" / "triton_backend.py").is_file()
    assert f'string_value: "{__version__}"' in (version_dir.parent / "config.pbtxt").read_text()

    run([milco_os, "setup", "--url", opensearch_url, "--index", index_name, "--replicas", "0"], tmp_path)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCUMENTS))
    run([milco_os, "ingest", "--url", opensearch_url, "--index", index_name, "--model", "checkpoint",
         "docs.jsonl"], tmp_path)
    opensearch.indices.refresh(index=index_name)
    assert opensearch.count(index=index_name)["count"] == len(DOCUMENTS)
    found = run([milco_os, "search", "--url", opensearch_url, "--index", index_name, "--model", "checkpoint",
                 "--format", "json", DOCUMENTS[0]["text"]], tmp_path).stdout
    hits = json.loads(found)["hits"]
    assert hits and hits[0]["id"] == "berlin", found
