"""Realistic old flow-run history, for tests, benchmarks and the stack's ``--demo``.

The server ignores the timestamps a client proposes, so history is made
through the API (``seed``) or written in bulk (``bulk``, ``rows``) and then
aged on the database. A leaf: it imports nothing else of the bundle.
"""

from flows.history.bulk import BulkSeeded, bulk_seed
from flows.history.seed import RunSpec, make_history

__all__ = ["BulkSeeded", "RunSpec", "bulk_seed", "make_history"]
