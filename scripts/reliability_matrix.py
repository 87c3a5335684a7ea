"""Run the reliability tests and write docs/RELIABILITY.md from the rows they record.

    .venv/bin/python scripts/reliability_matrix.py            # run tests/reliability, then render
    .venv/bin/python scripts/reliability_matrix.py --rows F   # render from rows kept by an earlier run

The tests record each case with ``MILCO_OS_RELIABILITY_MATRIX`` set; a failing test
fails this script and leaves the document as it was.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "RELIABILITY.md"
COLUMNS = (("area", "Area"), ("case", "Fault or input"), ("interface", "Via"), ("sent", "Sent"),
           ("stored", "Stored"), ("dead_lettered", "Dead-lettered"), ("left_for_rerun", "Left for re-run"),
           ("superseded", "Superseded"),
           ("lost", "Lost"), ("duplicated", "Duplicated"), ("exit_codes", "Exit code"), ("note", "Note"))

PREAMBLE = """# Reliability matrix

What milco-os does with outages, backpressure, bad input and bad connection settings, measured
by `tests/reliability/` against real services the tests start: OpenSearch nodes built from Maven
Central (one with the security plugin: TLS on HTTP and transport, basic auth; a 3-node cluster
started with `milco-os dev-cluster start --nodes 3`, indices of 3 primaries and 1 replica),
`tritonserver`s, and a tiny random MILCO checkpoint. Each row is one test's audit of the index afterwards:
every document sent is stored (each once, with the vector the in-process encoder gives its text),
dead-lettered (one JSON line naming its line, id and field), or left for a re-run that the tool
reported (a refused job or a checkpoint), or superseded by a later document with the same id
(reported as a duplicate); **Lost** is what is none of these and must be 0.

Regenerate with `.venv/bin/python scripts/reliability_matrix.py` (after `bash scripts/test.sh`
has set up the machine).
"""

SEMANTICS = """## What the tool does

| Situation | Behaviour | Exit code |
|---|---|---|
| 429 (write queue full) | retried with exponential backoff (0.5 s doubling to 20 s, from 0.5 s again once documents are taken), counted as `rejected_429_retried` in the summary; never dead-lettered: a batch pushed back for longer than `--unavailable-timeout` without a document taken stops the job with its checkpoint | 0 (4 past the timeout) |
| cluster stops answering, or answers 502/503/504 | the batch waits and retries until `--unavailable-timeout` (default 120 s) passes without progress; then stops with the checkpoint saved | 4 (resume with `--resume`) |
| tritonserver unreachable or restarting | requests retried with backoff for `--unavailable-timeout`; then stops with the checkpoint saved | 7 (resume with `--resume`) |
| one of several tritonservers (`--triton-url A,B`) stops answering | set aside (warning naming it), its requests go to the others; tried again after a backoff doubling up to 5 s | 0 |
| every tritonserver of the list down | requests wait `--unavailable-timeout` for one to come back; then stops with the checkpoint saved | 7 (resume with `--resume`) |
| a node of a multi-node cluster (`--url A,B,C`) dies mid-job | the client goes on through the other nodes; writes wait for replicas to be promoted; a reindex page whose point in time lost shards is read again from its cursor under a new one (never a partial page) | 0 |
| a `--workers` process dies or fails | the other workers finish their slices; the job stops naming the worker, with the checkpoint of every slice saved | 1 (resume with `--resume`) |
| `--share K/N` hosts finish in any order | each records its counts in the cluster's `milco-os-jobs` ledger with a conditional write; the one that completes the job verifies the counts and moves `--alias`, once | 0 (8 when the counts disagree) |
| invalid JSON or UTF-8, a JSON value that is not an object, text that is not a string or list of strings | dead-lettered with line (and id, field when known); the rest goes on | 1 |
| empty or blank text | stored without MILCO terms, counted as `no_text` | 0 |
| text longer than the model takes (e.g. 5 MB) | truncated to the model's token limit and encoded (or split with `--passages`) | 0 |
| no id | a content-hash id, so re-ingesting the same file never duplicates | 0 |
| the same id twice in one run | the last one wins; each repeat is reported on stderr and counted as `duplicate_ids` | 0 |
| a vector weight that is NaN, infinite, zero or negative (custom encoder) | dead-lettered naming the field (`milco_en`/`milco_m`) before anything reaches the cluster | 1 |
| a value the index mapping refuses | dead-lettered with the field the cluster names | 1 |
| a document that makes the cluster refuse the whole bulk request (an `_id` over 512 bytes, `NaN` in a field) | the request is bisected until the documents at fault are alone; only they are dead-lettered, each with its own reason | 1 |
| text that is not valid Unicode (a lone surrogate), JSON nested deeper than the reader takes | dead-lettered naming the line (and field); the rest goes on | 1 |
| a UTF-8 byte-order mark on the first line, CRLF line ends | read as plain JSONL | 0 |
| routed documents (`_routing.required`, parent/child `join` fields) | `reindex` and `enrich` write each document under the routing it was read with; `ingest --routing-field F` routes by field F (a document without F is refused by a routing-required index and dead-lettered) | 0 |
| destination index maps a MILCO field differently | refused before reading input | 6 |
| wrong credentials (401) or missing permission (403) | one line naming the host (and user), nothing written | 9 |
| TLS certificate not verifiable | one line naming the host; `--ca-certs` fixes it, `--insecure` skips it with a warning | 10 |
| cluster unreachable | one line naming the host | 4 |

Passwords, API keys and the `Authorization` headers they make never appear in output, errors,
dead-letter or checkpoint files (a test runs every failing path and searches all of it); a
password inside `--url` is removed before the URL is shown. Services the tool starts
(`dev-cluster`, `triton serve`, the test nodes) listen on 127.0.0.1 only (checked from
`/proc/net/tcp`).
"""


def run_tests(rows_file: Path) -> None:
    env = {**os.environ, "MILCO_OS_RELIABILITY_MATRIX": str(rows_file)}
    command = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider"]
    if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
        sys.exit("reliability tests failed: docs/RELIABILITY.md left unchanged")


def render(rows: list[dict]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key in ("area", "case", "interface", "note") else "---:" for key, _ in COLUMNS) + "|"
    body = ["| " + " | ".join(str(row[key]).replace("|", "\\|") for key, _ in COLUMNS) + " |"
            for row in sorted(rows, key=lambda row: (row["area"], row["case"]))]
    measured = (f"Measured {datetime.date.today().isoformat()} on {platform.machine()} Linux, Python "
                f"{platform.python_version()}: {len(rows)} cases, {sum(row['sent'] for row in rows)} documents, "
                f"{sum(row['lost'] for row in rows)} lost, {sum(row['duplicated'] for row in rows)} duplicated.")
    return "\n".join([PREAMBLE, "## Matrix", "", measured, "", header, rule, *body, "", SEMANTICS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=Path, help="render from this rows file instead of running the tests")
    args = parser.parse_args()
    if args.rows:
        rows = json.loads(args.rows.read_text(encoding="utf-8"))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            rows_file = Path(scratch) / "rows.json"
            run_tests(rows_file)
            rows = json.loads(rows_file.read_text(encoding="utf-8"))
    losing = [row["case"] for row in rows if row["lost"]]
    if losing:
        sys.exit(f"lost documents in: {'; '.join(losing)}; docs/RELIABILITY.md left unchanged")
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(render(rows), encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)} ({len(rows)} cases)")


if __name__ == "__main__":
    main()
