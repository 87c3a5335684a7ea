"""The README's Python examples run as written, against a real node and a tiny checkpoint."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

REPO_ROOT = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:9200"
README_CHECKPOINT = "path/to/milco-checkpoint"

pytestmark = pytest.mark.integration


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_python_examples_that_use_a_cluster() -> None:
    assert len(python_examples()) >= 2 and any(README_URL in example for example in python_examples())


@pytest.mark.parametrize("number", range(len(python_examples())))
def test_readme_python_example_runs(number: int, opensearch_url: str, opensearch: OpenSearch,
                                    tiny_checkpoint: Path) -> None:
    example = python_examples()[number]
    index = f"readme-{uuid.uuid4().hex[:8]}"
    code = (example.replace(README_URL, opensearch_url).replace(README_CHECKPOINT, str(tiny_checkpoint))
            .replace('"docs"', f'"{index}"'))
    namespace: dict = {}
    try:
        exec(compile(code, f"README.md python example {number}", "exec"), namespace)
    finally:
        opensearch.indices.delete(index=index, ignore_unavailable=True)
    if "hits" in namespace:
        assert namespace["summary"].written == 1
        assert [hit.id for hit in namespace["hits"]] == ["1"] and namespace["hits"][0].terms
    else:
        assert namespace["vectors"][0].terms(namespace["encoder"].vocabulary)
