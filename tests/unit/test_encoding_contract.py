"""The encoding contract: both encoders implement it, and the remote side stays free of torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from milco_os.encoding.contract import SparseEncoder, check_texts


@pytest.mark.parametrize("module", ["milco_os.encoding.triton_client", "milco_os.encoding.pruning",
                                    "milco_os.pipeline.ingest", "milco_os.search"])
def test_remote_encoding_ingest_and_search_import_no_torch(module: str) -> None:
    probe = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=120).returncode == 0, f"{module} imports torch"


def test_both_encoders_implement_the_contract() -> None:
    from milco_os.encoding.triton_client import TritonEncoder
    from milco_os.model import MilcoEncoder

    assert issubclass(MilcoEncoder, SparseEncoder) and issubclass(TritonEncoder, SparseEncoder)


def test_text_checks_name_the_position_of_a_non_string() -> None:
    assert check_texts(("a", "")) == ["a", ""]
    with pytest.raises(TypeError, match="position 1 is int"):
        check_texts(["a", 3])
    with pytest.raises(TypeError, match="not a single string"):
        check_texts("a")
