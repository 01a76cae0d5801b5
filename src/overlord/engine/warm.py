"""A warm restart: the engine's checkpoint loaded, caught up to the head, then live.

:func:`warm_start` loads the store into the engine, rolls back whatever a reorg replaced
while the engine was down (the stored hashes against the node's, as the live follower
does), adds the users listed since, and processes the head: one full market read and the
users named by every position-changing event since the checkpoint, then the usual
rescreen and announcements. The engine forgot what it announced before the restart, so
every user underwater at the head is announced again (at least once, never missed).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from dataclasses import dataclass

from overlord.engine.engine import BlockReport
from overlord.engine.follower import CanonicalChain, Head, Reorg, Stale, plan_head
from overlord.engine.runner import Runner
from overlord.engine.store import Checkpoint


@dataclass(frozen=True)
class WarmStart:
    """What a warm restart did: the checkpoint it started from, the blocks it caught up
    over, a reorg it rolled back, the users newly listed, and its timings."""

    checkpoint: Checkpoint
    report: BlockReport
    caught_up_blocks: int
    orphaned_blocks: int
    beyond_history: bool
    new_listed_users: int
    load_s: float
    catch_up_s: float


def warm_start(
    runner: Runner, head: Head, chain: CanonicalChain, listed: Iterable[str] = ()
) -> WarmStart | None:
    """Resume ``runner``'s engine from its store at ``head``; ``None`` when the store is
    empty (the caller syncs in full).

    Raises:
        EngineStoreError: the stored state does not decode.
        RpcError: the node failed while catching up (the engine is then restored but not
            caught up; calling :meth:`Runner.process` again resumes).
    """
    engine = runner.engine
    started = time.perf_counter()
    checkpoint = engine.restore()
    if checkpoint is None:
        return None
    loaded = time.perf_counter()
    new = {a.lower() for a in listed} - set(engine.table.addresses)
    engine.reread_next(new)
    last = checkpoint.block
    plan = plan_head(engine.processed_hashes(), last, head, chain)
    orphaned, beyond = 0, False
    if isinstance(plan, Reorg):
        orphaned = engine.rollback(plan.ancestor, everyone=plan.beyond_history)
        beyond = plan.beyond_history
    target: int = head.number
    target_hash_known: str | None = head.block_hash
    if isinstance(plan, Stale) and head.number < last:
        # This node's head is behind the checkpoint, which is still canonical: resume there.
        target, target_hash_known = last, checkpoint.block_hash
    report = runner.process(target, block_hash=target_hash_known)
    gc.freeze()  # as after a cold sync: the loaded table stays out of the collector's way
    done = time.perf_counter()
    return WarmStart(
        checkpoint,
        report,
        max(target - last, 0),
        orphaned,
        beyond,
        len(new),
        loaded - started,
        done - loaded,
    )
