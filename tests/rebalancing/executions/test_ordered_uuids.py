"""Trade order ids of a bulk write: UUID version 7 layout, unique and in creation order."""

import uuid

from rebalancing.services import bulk


def test_ids_are_version_7_uuids_in_ascending_order():
    ids = bulk.ordered_uuids(5000)
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids  # canonical text, as PostgreSQL's COPY reads it
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert ids == sorted(ids) and len(set(ids)) == 5000
    assert bulk.ordered_uuids(0) == []


def test_ids_stay_ordered_when_the_counter_carries_into_the_high_bits(monkeypatch):
    # A random start 3 below a multiple of 2**62: the fourth id carries into the 12 bits
    # after the version, which the ids before it share.
    start = (5 << 62) - 3
    monkeypatch.setattr(bulk.os, "urandom", lambda n: (start << 2).to_bytes(n, "big"))
    ids = bulk.ordered_uuids(6)
    parsed = [uuid.UUID(i) for i in ids]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [u.int >> 64 & 0xFFF for u in parsed] == [4, 4, 4, 5, 5, 5]
    assert [u.int & ((1 << 62) - 1) for u in parsed] == [(start + k) & ((1 << 62) - 1) for k in range(6)]
