"""Lease ids are made many at a time on the hot path (a batch claim wants
one per job): each must still be a version-4 UUID, as uuid4() makes, and
never repeat."""

import uuid

from server.routes.claiming import lease_ids


def test_each_lease_id_is_a_random_uuid_in_canonical_text():
    ids = lease_ids(500)
    assert len(ids) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_lease_ids_do_not_repeat_within_or_across_calls():
    seen = set(lease_ids(1000)) | set(lease_ids(1000))
    assert len(seen) == 2000


def test_no_lease_ids_for_nothing():
    assert lease_ids(0) == []
