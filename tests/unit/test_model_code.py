"""What an exported Triton model carries: its milco-os code, its requirements and a record of its making."""

from __future__ import annotations

import ast
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from milco_os import __version__
from milco_os.encoding.served_model import CHECKPOINT_PARAMETER, VERSION_PARAMETER, version_mismatch
from milco_os.encoding.fingerprint import checkpoint_sha256
from milco_os.serving.export_record import repository_warnings
from milco_os.serving.model_code import REQUIREMENTS, copy_runtime_code, imported_modules, runtime_modules
from milco_os.serving.triton_entry import TritonPythonModel, read_requirements, unmet_requirements
from milco_os.serving.triton_repository import model_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_code_is_the_backend_and_what_it_imports_not_the_cluster_side() -> None:
    modules = runtime_modules()
    for needed in ("milco_os", "milco_os.serving.triton_entry", "milco_os.serving.triton_backend",
                   "milco_os.model.encoder", "milco_os.model.checkpoint", "milco_os.encoding.pruning",
                   "milco_os.index.fields", "milco_os.errors"):
        assert needed in modules, needed
    assert not [name for name in modules if name.startswith(("milco_os.pipeline", "milco_os.commands",
                                                             "milco_os.services", "milco_os.engines"))]


def test_the_copied_code_imports_only_what_was_copied(tmp_path: Path) -> None:
    written = copy_runtime_code(tmp_path)
    copied = {".".join(path.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__")
              for path in written if path.suffix == ".py"}
    assert copied == set(runtime_modules())
    for path in written:
        if path.suffix == ".py":
            assert imported_modules(path) <= copied, path
    assert (tmp_path / "milco_os" / "model" / "data" / "bert-base-uncased-vocab.txt").is_file()


def test_imports_inside_functions_and_of_submodules_are_followed(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import os\nfrom milco_os.encoding import pruning\n\n"
                      "def later():\n    from milco_os.model import MilcoEncoder\n")
    assert imported_modules(source) == {"milco_os.encoding", "milco_os.encoding.pruning", "milco_os.model"}


def test_the_model_requirements_are_milco_os_dependencies_and_met_here() -> None:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = read_requirements(REQUIREMENTS)
    assert {line.split(">")[0].split("<")[0] for line in requirements} == {
        "torch", "transformers", "tokenizers", "safetensors", "numpy"}
    assert set(requirements) <= set(dependencies)
    assert unmet_requirements(requirements) == []


def test_unmet_requirements_name_the_missing_package_or_the_version_found() -> None:
    numpy_version = metadata.version("numpy")
    assert unmet_requirements(["milco-os-absent-package>=1", "numpy"]) == ["milco-os-absent-package (not installed)"]
    assert unmet_requirements([f"numpy<{numpy_version}"]) == [f"numpy<{numpy_version} ({numpy_version} installed)"]


def test_initialize_refuses_a_python_that_lacks_a_requirement(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "requirements.txt").write_text("# needed\nnumpy>=1.24\nmilco-os-absent-package>=2\n")
    args = {"model_repository": str(tmp_path), "model_version": "1", "model_name": "milco"}
    with pytest.raises(RuntimeError, match=r"model 'milco': the Python that runs it lacks "
                                           r"milco-os-absent-package \(not installed\); install them"):
        TritonPythonModel().initialize(args)


def test_the_checkpoint_hash_follows_its_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    first = checkpoint_sha256(tmp_path)
    assert len(first) == 64 and checkpoint_sha256(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert checkpoint_sha256(tmp_path) != first


def test_another_version_is_named_and_the_same_passes() -> None:
    assert version_mismatch(__version__, "model 'milco'") is None
    other = version_mismatch("0.0.1", "model 'milco'")
    assert other is not None and other.startswith("model 'milco' was exported with milco-os 0.0.1")
    assert "recorded no version" in (version_mismatch(None, "model 'milco'") or "")


def test_serve_warns_of_a_repository_another_version_exported(tmp_path: Path) -> None:
    for name, version in (("current", __version__), ("older", "0.0.1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text(model_config(
            name=name, recorded={VERSION_PARAMETER: version, CHECKPOINT_PARAMETER: "0" * 64}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.pbtxt").write_text('name: "other"\nbackend: "python"\n')
    warnings = repository_warnings(tmp_path)
    assert len(warnings) == 1 and warnings[0].startswith("model 'older' was exported with milco-os 0.0.1")


def test_the_entry_point_imports_only_the_standard_library_before_its_check() -> None:
    """Else a server without torch or numpy would fail on an ImportError, not on the message naming them."""
    tree = ast.parse((REPO_ROOT / "milco_os" / "serving" / "triton_entry.py").read_text())
    top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in top if isinstance(node, ast.ImportFrom)}
    assert names <= {"__future__", "sys", "importlib", "pathlib", "milco_os"}, names
