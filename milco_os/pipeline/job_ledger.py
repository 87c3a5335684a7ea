"""The cluster-side ledger of a job shared by hosts: which shares are done, written so that exactly one share sees
the job complete."""

from __future__ import annotations

from dataclasses import dataclass

from milco_os.engines import Engine, ErrorKind, plain
from milco_os.pipeline.shares import Share, ShareError

JOBS_INDEX = "milco-os-jobs"


@dataclass(frozen=True)
class ShareCounts:
    """What one share did, as recorded in the ledger."""

    read: int
    written: int
    dead_lettered: int


class JobLedger:
    """The cluster-side record of a shared job: one document per (kind, source, dest) in ``milco-os-jobs``."""

    def __init__(self, engine: Engine, kind: str, source: str, dest: str, slices: int, shares: int) -> None:
        self.engine, self.client = engine, engine.client
        self.doc_id = f"{kind}:{source}:{dest}"
        self.expected = {"kind": kind, "source": source, "dest": dest, "slices": slices, "shares": shares}

    def check(self) -> None:
        """Refuse to take part in a job recorded with other slices or shares (its slices would not line up)."""
        document = self._read()
        if document is None:
            return
        recorded = {key: document[0].get(key) for key in self.expected}
        if recorded != self.expected and not document[0].get("complete"):
            raise ShareError(f"the job {self.doc_id} is recorded in '{JOBS_INDEX}' with {recorded['slices']} slices "
                             f"in {recorded['shares']} shares, not {self.expected['slices']} in "
                             f"{self.expected['shares']}.",
                             hint="give every host the same --slices and --share N; or delete the ledger document "
                                  "to start the job over.")

    def record(self, share: Share, counts: ShareCounts, run: str) -> dict[str, ShareCounts] | None:
        """Record ``share`` as done in its ``run`` (a share checkpoint's token); the shares' counts when the job is
        complete, else None. A run recorded already (a finished share resumed) is not written again: a complete
        job's record would otherwise start the job's next run, waiting for shares that will not run again."""
        self._ensure_index()
        while True:
            found = self._read()
            body, versions = (found[0], found[1]) if found else ({**self.expected, "done": {}}, None)
            if (body.get("done") or {}).get(str(share.number), {}).get("run") == run:
                return shares_counts(body) if body.get("complete") else None
            if found and body.get("complete"):
                body = {**self.expected, "done": {}}  # a finished earlier run of the same job: start a new record
            body["done"] = {**body.get("done", {}), str(share.number): {**vars(counts), "run": run}}
            body["complete"] = len(body["done"]) == share.of
            try:
                self._write(body, versions)
            except Exception as exc:
                if self.engine.status(exc) == 409:
                    continue  # another share wrote meanwhile: read again
                raise
            return shares_counts(body) if body["complete"] else None

    def done_shares(self) -> list[int]:
        found = self._read()
        return sorted(int(number) for number in (found[0].get("done") or {})) if found else []

    def _read(self) -> tuple[dict, tuple[int, int]] | None:
        try:
            hit = plain(self.client.get(index=JOBS_INDEX, id=self.doc_id))
        except Exception as exc:
            if self.engine.classify(exc) is ErrorKind.NOT_FOUND:
                return None
            raise
        return hit["_source"], (hit["_seq_no"], hit["_primary_term"])

    def _write(self, body: dict, versions: tuple[int, int] | None) -> None:
        if versions is None:
            self.client.index(index=JOBS_INDEX, id=self.doc_id, body=body, op_type="create", refresh="true")
        else:
            self.client.index(index=JOBS_INDEX, id=self.doc_id, body=body, if_seq_no=versions[0],
                              if_primary_term=versions[1], refresh="true")

    def _ensure_index(self) -> None:
        if not self.client.indices.exists(index=JOBS_INDEX):
            self.engine.create_index_unless_exists(JOBS_INDEX, {
                "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
                "mappings": {"dynamic": False, "properties": {"kind": {"type": "keyword"}}}})


def shares_counts(body: dict) -> dict[str, ShareCounts]:
    """Share number -> its counts, from a ledger document."""
    return {number: ShareCounts(done["read"], done["written"], done["dead_lettered"])
            for number, done in body["done"].items()}
