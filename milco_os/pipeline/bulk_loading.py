"""Index settings a vector field needs while a bulk load writes into it: held for the job, then put back.

neural-search 3.6 clusters a SEISMIC segment as it is flushed once it reaches the field's
``approximate_threshold``, on the thread that holds the bulk request; under an index's own
settings a large load can stall for minutes (``bench/scale.py``). ``VectorField.loading_settings``
names what keeps segments small during a load; ``bulk_loading`` sets it for the block and puts the
index's own values back afterwards. The values it replaced are written to the mapping's
``_meta.milco_os.loading`` before anything changes, so the job after one that was killed half way
puts back the index's own values, not the loading ones. A cluster that refuses the change (a role
without the index-settings privilege, a serverless collection) loads under its own settings, with a
warning.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from milco_os.engines import Engine, ErrorKind, plain
from milco_os.index.handle import IndexHandle, milco_meta, stored_mapping, update_milco_meta

log = logging.getLogger(__name__)

LOADING_META = "loading"  # under _meta.milco_os: the explicit values a load replaced, while one holds them
# Refusals after which the load goes on under the index's own settings.
LOAD_WITHOUT_ON = (ErrorKind.AUTHORIZATION, ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND)


@contextmanager
def bulk_loading(index: IndexHandle, on_notice: Callable[[str], None] = log.warning, *,
                 put_back: bool = True) -> Iterator[None]:
    """``index`` under its vector field's loading settings while the block runs, its own values afterwards; with
    ``put_back`` False (one host's share of a job) they stay, recorded, for the share that completes the job to
    put back (``put_back_loading``)."""
    wanted = index.field.loading_settings()
    if not wanted:
        yield
        return
    engine = index.engine
    try:
        replaced = hold(engine, index.name, wanted)
    except Exception as exc:
        if engine.classify(exc) not in LOAD_WITHOUT_ON:
            raise
        on_notice(f"index '{index.name}': loading under its own settings, not {described(wanted)} "
                  f"({engine.reason(exc)}); a large load into it may stall while segments are clustered")
        yield
        return
    try:
        yield
    finally:
        if put_back:
            restore(index, wanted, replaced, on_notice)


def put_back_loading(index: IndexHandle, on_notice: Callable[[str], None] = log.warning) -> None:
    """Put back the values a load recorded it replaced on ``index`` (nothing when none is recorded)."""
    wanted = index.field.loading_settings()
    replaced = milco_meta(stored_mapping(index.engine, index.name)).get(LOADING_META) if wanted else None
    if replaced is not None:
        restore(index, wanted, replaced, on_notice)


def hold(engine: Engine, index: str, wanted: Mapping[str, str]) -> dict[str, str]:
    """Put ``wanted`` on ``index``, first recording the explicit values it replaces (or keeping those an
    unfinished job recorded); the values to put back."""
    replaced = milco_meta(stored_mapping(engine, index)).get(LOADING_META)
    recorded_here = replaced is None
    if recorded_here:
        response = plain(engine.client.indices.get_settings(index=index, flat_settings=True))
        current = next(iter(response.values()))["settings"]
        replaced = {key: current[f"index.{key}"] for key in wanted if f"index.{key}" in current}
        update_milco_meta(engine, index, lambda record: {**record, LOADING_META: replaced})
    try:
        engine.client.indices.put_settings(index=index, body={f"index.{key}": value for key, value in wanted.items()})
    except Exception:
        if recorded_here:  # nothing changed, so nothing is to be put back
            forget(engine, index)
        raise
    return replaced


def restore(index: IndexHandle, wanted: Mapping[str, str], replaced: Mapping[str, str],
             on_notice: Callable[[str], None]) -> None:
    """Put back the values ``hold`` replaced (a setting the index did not set returns to its default) and drop
    the record of them; a cluster's refusal is told, not raised (the record stays for the next job)."""
    engine = index.engine
    try:
        engine.client.indices.put_settings(index=index.name,
                                           body={f"index.{key}": replaced.get(key) for key in wanted})
        forget(engine, index.name)
    except Exception as exc:
        if engine.classify(exc) is None:
            raise
        on_notice(f"index '{index.name}' keeps {described(wanted)} ({engine.reason(exc)}): the next job "
                  "into it puts its own settings back")


def forget(engine: Engine, index: str) -> None:
    """Drop the record of the values a load replaced."""
    update_milco_meta(engine, index, lambda record: {key: value for key, value in record.items()
                                                     if key != LOADING_META})


def described(settings: Mapping[str, str]) -> str:
    return ", ".join(f"index.{key}: {value}" for key, value in settings.items())
