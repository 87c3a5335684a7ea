"""The alias guard: an alias moves onto a reindexed index only when every source document is accounted for."""

from __future__ import annotations

from milco_os.engines import plain
from milco_os.errors import ReindexError


def move_alias(client, alias: str, dest: str, source: str, dead_lettered: int) -> str:
    """Point ``alias`` at ``dest`` only when SRC count == DEST count + dead-lettered; say what was done."""
    client.indices.refresh(index=dest)
    source_count = client.count(index=source)["count"]
    dest_count = client.count(index=dest)["count"]
    if source_count != dest_count + dead_lettered:
        raise ReindexError(
            f"Alias '{alias}' left alone: {source} has {source_count} documents but {dest} has {dest_count} "
            f"and {dead_lettered} went to the dead-letter file.",
            hint="look at the dead-letter file and re-run with --resume or --skip-existing.",
        )
    is_alias = client.indices.exists_alias(name=alias)
    if not is_alias and client.indices.exists(index=alias):
        raise ReindexError(f"'{alias}' is an index, not an alias: it cannot be moved onto {dest}.")
    current = list(plain(client.indices.get_alias(name=alias)).keys()) if is_alias else []
    actions = [{"remove": {"index": index, "alias": alias}} for index in current if index != dest]
    actions.append({"add": {"index": dest, "alias": alias}})
    client.indices.update_aliases(body={"actions": actions})
    return f"alias {alias}: {', '.join(current) or '(none)'} -> {dest}"
