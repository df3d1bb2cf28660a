"""The manifest alone: what it holds comes back exactly, and its hash is what was shown."""

from __future__ import annotations

import hashlib
import uuid

from flows.cleanup.manifest import HASH_SLICE, Manifest


def test_ids_and_rules_come_back_in_order_slice_by_slice() -> None:
    ids = [uuid.uuid4() for _ in range(1000)]
    rules = [i % 3 for i in range(1000)]
    manifest = Manifest.of(ids, rules)

    assert len(manifest) == 1000
    assert manifest.ids(0, len(manifest)) == ids
    assert [rule for _, rule in manifest.batch(0, 1000)] == rules
    assert manifest.ids(990, 50) == ids[990:]
    assert manifest.batch(5, 3) == list(zip(ids[5:8], rules[5:8], strict=True))
    assert manifest.batch(1000, 10) == []


def test_without_rules_every_run_goes_by_the_default_rule() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    assert Manifest.of(ids).batch(0, 10) == [(run_id, None) for run_id in ids]


def test_the_hash_is_over_the_ids_in_order_however_many_there_are() -> None:
    ids = [uuid.uuid4() for _ in range(HASH_SLICE + 7)]
    joined = "\n".join(str(run_id) for run_id in ids).encode()

    assert Manifest.of(ids).hash == hashlib.sha256(joined).hexdigest()[:12]
    assert Manifest.of(reversed(ids)).hash != Manifest.of(ids).hash
    assert Manifest().hash == hashlib.sha256(b"").hexdigest()[:12]


def test_the_other_targets_bound_into_it_change_its_hash() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    plain = Manifest.of(ids)
    bound = plain.bind(["events: Events(cutoff=...) -> 120 rows"])

    assert bound.ids(0, 3) == ids
    assert bound.hash != plain.hash
    assert plain.bind([]).hash == plain.hash
    assert bound.hash != plain.bind(["events: Events(cutoff=...) -> 121 rows"]).hash
