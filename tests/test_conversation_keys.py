"""Application keys name conversations (``Store.conversation_for``, ``create_conversation(key=)``).

On SQLite and PostgreSQL, with both twins:

* ``conversation_for(key)`` creates the conversation on first use and returns that same one
  afterwards (title and metadata are those of the first call); ``create=False`` finds or raises
  ``ConversationNotFoundError`` naming the key;
* keys are per namespace: the same key in two namespaces names two conversations, and one
  namespace cannot find another's key;
* ``create_conversation(key=...)`` of a taken key raises ``ConversationExistsError`` and writes
  nothing; conversations without a key never collide;
* bad keys are a ``ValidationError`` before anything is written;
* concurrent first uses of one key, from many threads (each with its own store, as separate
  processes would), all get one conversation, and exactly one row exists;
* deleting a keyed conversation frees its key; forks and imports carry no key;
* a database at revision 0006 upgrades with its conversations unkeyed.
"""

from __future__ import annotations

import io
import pickle
import threading
from pathlib import Path

import pytest

import convkit
from convkit import ConversationExistsError, ConversationNotFoundError, Message, ValidationError
from convkit.store import _migrate as migrate

from . import _store_support as sup


def test_created_on_first_use_then_found(open_store: sup.StoreOpener, db_url: str) -> None:
    store = open_store()
    first = store.conversation_for("user-42", title="Ada", metadata={"plan": "pro"})
    assert first.key == "user-42"
    assert (first.title, first.metadata, first.message_count) == ("Ada", {"plan": "pro"}, 0)
    store.append(first.id, Message.user("hello"))
    again = store.conversation_for("user-42", title="ignored", metadata={"plan": "ignored"})
    assert again.id == first.id
    assert (again.title, again.metadata, again.message_count) == ("Ada", {"plan": "pro"}, 1)
    assert store.conversation_for("user-42", create=False).id == first.id
    assert store.get_conversation(first.id).key == "user-42"
    assert [c.key for c in store.list_conversations()] == ["user-42"]
    assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 1


def test_find_conversation_only_reads(open_store: sup.StoreOpener, db_url: str) -> None:
    store = open_store()
    assert store.find_conversation("user-1") is None
    assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 0
    made = store.conversation_for("user-1")
    assert store.find_conversation("user-1") == made
    with pytest.raises(ValidationError, match="key"):
        store.find_conversation("")


def test_missing_key_without_create(open_store: sup.StoreOpener, db_url: str) -> None:
    store = open_store()
    with pytest.raises(ConversationNotFoundError, match="no conversation with key 'nobody'") as info:
        store.conversation_for("nobody", create=False)
    assert info.value.key is True
    assert info.value.conversation_id == "nobody"
    again = pickle.loads(pickle.dumps(info.value))
    assert (str(again), again.key) == (str(info.value), True)
    assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 0


def test_keys_are_per_namespace(open_store: sup.StoreOpener) -> None:
    a = open_store(namespace="tenant-a")
    b = open_store(namespace="tenant-b")
    mine = a.conversation_for("shared-name")
    with pytest.raises(ConversationNotFoundError):
        b.conversation_for("shared-name", create=False)
    theirs = b.conversation_for("shared-name")
    assert theirs.id != mine.id
    assert (theirs.namespace, mine.namespace) == ("tenant-b", "tenant-a")
    assert a.conversation_for("shared-name").id == mine.id


def test_a_taken_key_is_refused_and_nothing_is_written(open_store: sup.StoreOpener, db_url: str) -> None:
    store = open_store()
    made = store.create_conversation(title="one", key="k")
    assert made.key == "k"
    with pytest.raises(ConversationExistsError, match="conversation_for") as info:
        store.create_conversation(title="two", key="k")
    assert (info.value.key, info.value.namespace) == ("k", store.namespace)
    assert isinstance(info.value, convkit.StoreError)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    # conversations without a key never collide
    assert store.create_conversation().key is None
    assert store.create_conversation().key is None
    assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 3
    assert store.conversation_for("k").title == "one"


@pytest.mark.parametrize("key", ["", "x" * 256, "a\x00b", "\ud800", None, 42, b"bytes"])
def test_bad_keys_are_refused_before_writing(open_store: sup.StoreOpener, db_url: str, key: object) -> None:
    store = open_store()
    with pytest.raises(ValidationError, match="key"):
        store.conversation_for(key)
    if key is not None:  # key=None is "no key" for create_conversation
        with pytest.raises(ValidationError, match="key"):
            store.create_conversation(key=key)
    assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 0


def test_unusual_keys_round_trip(open_store: sup.StoreOpener) -> None:
    store = open_store()
    keys = ["x" * 255, "ü-用户-42", "a'; DROP TABLE convkit_messages; --", "%", "_", " "]
    ids = {key: store.conversation_for(key).id for key in keys}
    assert len(set(ids.values())) == len(keys)
    for key in keys:
        assert store.conversation_for(key, create=False).id == ids[key]
    # LIKE-style wildcards match only themselves
    assert store.conversation_for("%", create=False).key == "%"


def test_deleting_frees_the_key_and_copies_carry_none(open_store: sup.StoreOpener) -> None:
    store = open_store()
    conv = store.conversation_for("session-1")
    store.extend(conv.id, [Message.user("hi"), Message.assistant("hello")])
    assert store.fork(conv.id).key is None
    assert store.import_jsonl(io.StringIO(store.export_jsonl(conv.id))).key is None
    store.delete_conversation(conv.id)
    fresh = store.conversation_for("session-1")
    assert fresh.id != conv.id
    assert fresh.message_count == 0


def _first_uses(stores: list[convkit.Store], key: str) -> list[str]:
    """Every store asks for the new ``key`` at once, each from its own thread; the ids they got."""
    start = threading.Barrier(len(stores))
    got: list[str] = []
    errors: list[BaseException] = []

    def first_use(store: convkit.Store) -> None:
        try:
            start.wait()
            got.append(store.conversation_for(key, title="first").id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(got) == len(stores)
    return got


def test_concurrent_first_use_makes_one_conversation(backend: str, db_url: str) -> None:
    """Twelve threads, each with its own store (as separate processes would), ask for one new key at once."""
    stores = [sup.open_store(db_url, "sync") for _ in range(12)]
    try:
        assert len(set(_first_uses(stores, "race"))) == 1
        assert sup.scalar(db_url, "SELECT count(*) FROM convkit_conversations") == 1
    finally:
        for s in stores:
            s.close()


def test_upgrade_from_0006_keeps_conversations_unkeyed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, revision="0006_calibration_namespace")
    with sup.raw_engine(url) as engine, engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO convkit_conversations (id, namespace, metadata, last_seq, prefix_len, image_count, "
            "epoch, created_at, updated_at) VALUES ('old', 'default', '{}', 0, 0, 0, 0, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    migrate.upgrade(url)
    with convkit.Store(url) as store:
        assert store.get_conversation("old").key is None
        assert store.conversation_for("old").id != "old"  # a key is not an id


def test_finding_a_key_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    """An existing key is found by a read: on SQLite it does not queue behind another connection's write
    lock (every adapter looks its key up on each call)."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with convkit.Store(url, statement_timeout=2.0) as store:
        conv = store.conversation_for("k")
        with sup.raw_engine(url) as engine, engine.connect() as other:
            other.exec_driver_sql("BEGIN IMMEDIATE")  # another process writing
            try:
                assert store.conversation_for("k").id == conv.id
                assert store.conversation_for("k", create=False).id == conv.id
                assert store.find_conversation("k") == store.get_conversation(conv.id)
                assert store.find_conversation("absent") is None
            finally:
                other.exec_driver_sql("ROLLBACK")


def test_first_use_is_race_free_on_a_repeatable_read_engine() -> None:
    """On an engine of the user's at REPEATABLE READ, concurrent first uses still get one conversation
    (the key's INSERT then SELECT runs at READ COMMITTED; at REPEATABLE READ PostgreSQL raised a
    serialization failure for the losers)."""
    import sqlalchemy as sa

    engine = sa.create_engine(sup.pg_run_database(), isolation_level="REPEATABLE READ", pool_size=12)
    stores = [convkit.Store(engine=engine) for _ in range(12)]
    try:
        for round_ in range(3):
            assert len(set(_first_uses(stores, f"rr-{round_}"))) == 1
        with pytest.raises(ConversationExistsError):
            stores[0].create_conversation(key="rr-0")
    finally:
        engine.dispose()
