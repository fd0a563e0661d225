"""The connection-slot book (server/slots.py): who is pushed out for whom."""

from __future__ import annotations

from server.slots import Slots, address_group


def test_an_address_over_its_share_loses_its_oldest_anonymous_connection():
    slots = Slots(max_connections=100, per_address=3)
    assert [slots.admit(i, "a") for i in range(3)] == [[], [], []]
    assert slots.admit(3, "a") == [0]
    assert slots.admit("b1", "b") == []  # another address has its own share
    assert (slots.open, slots.anonymous) == (4, 4)


def test_anonymous_connections_never_take_the_reserve():
    slots = Slots(max_connections=16, per_address=100)  # 12 anonymous at most, 4 reserved
    for i in range(12):
        assert slots.admit(i, f"10.0.0.{i}") == []
    assert slots.admit(12, "10.0.0.12") == [0]  # the oldest makes room
    assert slots.anonymous == 12


def test_connections_past_auth_are_never_pushed_out():
    slots = Slots(max_connections=16, per_address=100)
    for i in range(16):
        slots.admit(i, "a" if i % 2 else "b")
        slots.trust(i)
    assert slots.anonymous == 0 and slots.open == 16
    # every slot is held past auth: the newcomer itself is refused
    assert slots.admit("new", "c") == ["new"]
    slots.release(3)
    assert slots.admit("next", "c") == []


def test_a_newcomer_pushes_out_the_oldest_anonymous_when_all_slots_are_taken():
    slots = Slots(max_connections=16, per_address=100)
    for i in range(8):
        slots.admit(i, "a")
        slots.trust(i)
    for i in range(8, 16):
        slots.admit(i, "b")
    assert slots.admit(16, "c") == [8]
    assert slots.open == 16


def test_release_is_idempotent_and_trust_after_release_is_a_no_op():
    slots = Slots(max_connections=16, per_address=2)
    slots.admit("x", "a")
    slots.release("x")
    slots.release("x")
    slots.trust("x")
    assert (slots.open, slots.anonymous) == (0, 0)
    assert slots.admit("y", "a") == [] and slots.admit("z", "a") == []


def test_address_groups():
    assert address_group(("192.0.2.7", 1234)) == "192.0.2.7"
    assert address_group(("2001:db8:1:2:3:4:5:6", 1)) == "2001:db8:1:2::/64"
    assert address_group(("2001:db8:1:2:ffff::1", 1)) == "2001:db8:1:2::/64"
    assert address_group(("::ffff:192.0.2.7", 1)) == "192.0.2.7"
    assert address_group(None) == ""
