"""Garbage collection tuned for a long-running event loop.

CPython's collector walks every object of a generation it collects. After start-up the heap
holds a few hundred thousand objects of imported code (FastAPI, pydantic, socketio, asyncpg)
that live as long as the process, so each full collection walked all of them: a stall of tens
of milliseconds that every socket of the node felt as latency. Once start-up is over they are
moved out of the collector's reach (`gc.freeze`), and the young generation is collected less
often: a send allocates a few dozen container objects, and with the default threshold of 700
the collector ran every few sends. Cycles are still collected, only in larger, rarer steps.
"""

from __future__ import annotations

import gc

# Allocations (net, of container objects) between young collections; collections of the young
# generation between middle ones; middle between full ones (full ones also wait until the
# objects that survived since the last one are a quarter of the long-lived heap).
THRESHOLDS = (20_000, 20, 20)


def settle() -> None:
    """Called once start-up is done: what exists now lives as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
