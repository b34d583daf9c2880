"""Which poller worker owns which gateway: rendezvous (highest-random-weight) hashing.

Every worker computes the same answer from the same list of live workers, without talking to
the others; when a worker joins or leaves, only the gateways it gains or loses move (about
1/n of them), never the rest. The answer is what a worker *should* own; what it *does* own is
the lease it holds in the database (:mod:`vpp.cluster.leases`), taken and handed over in turn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(worker_id: str, gateway_id: int) -> int:
    """A stable pseudo-random weight of (worker, gateway): the first 8 bytes of BLAKE2b."""
    digest = hashlib.blake2b(f"{worker_id}\x00{gateway_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(gateway_id: int, workers: Iterable[str]) -> str | None:
    """The worker with the highest weight for ``gateway_id`` (ties by name); None: no worker."""
    best: tuple[int, str] | None = None
    for w in workers:
        key = (weight(w, gateway_id), w)
        if best is None or key > best:
            best = key
    return best[1] if best is not None else None


def assign(gateway_ids: Iterable[int], workers: Iterable[str]) -> dict[int, str]:
    """Gateway -> the worker that should own it; empty when there are no workers."""
    ws = sorted(set(workers))
    if not ws:
        return {}
    return {g: str(owner_of(g, ws)) for g in gateway_ids}
