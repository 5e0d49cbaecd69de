"""Storage contract: the same tests on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from hms.config import HmsConfig, parse_config
from hms.wheel import find_occurrence
from storage import db, models as m, repo, sessions
from tests.conftest import oslo


async def test_migrations_are_current(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        assert await db.migrations_current(engine)
    finally:
        await engine.dispose()


async def test_import_creates_everything_once(session: AsyncSession, khm: HmsConfig) -> None:
    report = await repo.import_org(session, khm, oslo(2027, 1, 4, 9))
    assert sum(r.startswith("person ") for r in report.created) == 20
    assert sum(r.startswith("floor ") for r in report.created) == 5
    again = await repo.import_org(session, khm, oslo(2027, 1, 5, 9))
    assert (again.created, again.updated, again.deactivated, again.reactivated) == ([], [], [], [])
    assert len((await session.exec(select(m.Person))).all()) == 20
    roles = (await session.exec(select(m.RoleAssignment).where(m.RoleAssignment.role == "floor_contact"))).all()
    assert sorted(r.scope_key for r in roles) == ["hm-1", "hm-2", "hm-3", "hm-u", "okern-mag"]


async def test_reimport_of_edited_file_updates_in_place_and_keeps_history(
        session: AsyncSession, khm: HmsConfig, khm_text: str) -> None:
    await repo.import_org(session, khm, oslo(2027, 1, 4, 9))
    occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
    assert occ is not None
    row = await repo.record_completion(session, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 3, 9, 12))
    session.add(m.ChecklistAnswer(occurrence_id=row.id, submission_id="s1", template_key="fire_round",
                                  template_version=1, item_key="escape_routes", answer="ok",
                                  submitted_by="eirik.haugen@khm.uio.no", submitted_at=oslo(2027, 3, 3, 9, 12)))
    await session.commit()

    # Eirik leaves: Ida takes the floor, a new deputy arrives, a section is renamed.
    edited = khm_text.replace("        contact: eirik.haugen@khm.uio.no\n        deputy: ida.lund@khm.uio.no",
                              "        contact: ida.lund@khm.uio.no\n        deputy: nora.berg@khm.uio.no")
    edited = edited.replace("  - {name: Eirik Haugen, email: eirik.haugen@khm.uio.no, title: Formidler, demo: true}\n",
                            "  - {name: Nora Berg, email: nora.berg@khm.uio.no, title: Formidler, demo: true}\n")
    edited = edited.replace("en: Public programmes section}", "en: Public programmes and learning section}")
    assert edited.count("nora.berg") == 2
    report = await repo.import_org(session, parse_config(edited), oslo(2027, 4, 1, 9))
    assert "person eirik.haugen@khm.uio.no" in report.deactivated
    assert "person nora.berg@khm.uio.no" in report.created
    assert "section publikum" in report.updated
    assert "role floor_contact hm-2 ida.lund@khm.uio.no" in report.created
    assert "role floor_contact hm-2 eirik.haugen@khm.uio.no" in report.deactivated

    people = {p.email: p for p in (await session.exec(select(m.Person))).all()}
    assert len(people) == 21 and people["eirik.haugen@khm.uio.no"].active is False
    answers = (await session.exec(select(m.ChecklistAnswer))).all()
    assert [(a.submitted_by, a.answer) for a in answers] == [("eirik.haugen@khm.uio.no", "ok")]
    ended = (await session.exec(select(m.RoleAssignment).where(
        m.RoleAssignment.person_email == "eirik.haugen@khm.uio.no"))).one()
    assert ended.active is False and ended.until == oslo(2027, 4, 1, 9)
    section = (await session.exec(select(m.Section).where(m.Section.key == "publikum"))).one()
    assert section.name_en == "Public programmes and learning section"

    # Eirik comes back: the same row is reactivated, not duplicated.
    back = await repo.import_org(session, khm, oslo(2027, 5, 1, 9))
    assert "person eirik.haugen@khm.uio.no" in back.reactivated
    assert len((await session.exec(select(m.Person))).all()) == 21


def test_drafts_kept_as_answer_rows_move_to_one_row_per_item(db_url: str, khm: HmsConfig) -> None:
    """Migration 0005 keeps the newest draft per item of each open round, leaves the final answers alone, and
    drops drafts of rounds already done; its downgrade puts the drafts back as draft answers."""
    from alembic import command

    config = db.alembic_config(db_url)
    command.downgrade(config, "0003")
    engine = db.create_sync_engine(db_url)
    answer = sa.table("checklist_answer", *(sa.column(c) for c in (
        "occurrence_id", "submission_id", "template_key", "template_version", "item_key", "answer", "comment",
        "is_draft", "submitted_by")), sa.column("submitted_at", m.AwareDateTime()))
    try:
        with engine.begin() as conn:
            ids = []
            for key, done in (("fire_round:2027-Q1:hm-1", None), ("fire_round:2027-Q1:hm-2", oslo(2027, 3, 5, 9))):
                occ = find_occurrence(khm, key)
                assert occ is not None
                ids.append(conn.execute(sa.insert(m.table(m.Occurrence)).values(
                    key=occ.key, task_key=occ.task, cycle=occ.cycle, section_key=occ.section, floor_key=occ.floor,
                    window_start=occ.window_start, due=occ.due, created_at=oslo(2027, 3, 1, 9), completed_at=done,
                    completed_by=done and "eirik.haugen@khm.uio.no").returning(m.table(m.Occurrence).c.id)).scalar())
            open_, done_ = ids

            def row(occurrence: int, item: str, value: str, comment: str | None, draft: bool, day: int) -> dict:
                return {"occurrence_id": occurrence, "submission_id": "s", "template_key": "fire_round",
                        "template_version": 1, "item_key": item, "answer": value, "comment": comment,
                        "is_draft": draft, "submitted_by": "fatima.ali@khm.uio.no",
                        "submitted_at": oslo(2027, 3, day, 9)}
            conn.execute(answer.insert(), [
                row(open_, "escape_routes", "ok", None, True, 1),
                row(open_, "escape_routes", "avvik", "Kile", True, 2), row(open_, "exit_signs", "ok", None, True, 3),
                row(done_, "escape_routes", "avvik", None, True, 4), row(done_, "escape_routes", "ok", None, False, 5)])
        db.upgrade(db_url)
        with engine.connect() as conn:
            drafts = conn.execute(sa.select(m.table(m.ChecklistDraft))).all()
            assert {(d.occurrence_id, d.item_key, d.answer, d.comment, d.saved_at) for d in drafts} == {
                (open_, "escape_routes", "avvik", "Kile", oslo(2027, 3, 2, 9)),
                (open_, "exit_signs", "ok", None, oslo(2027, 3, 3, 9))}
            finals = conn.execute(sa.select(m.table(m.ChecklistAnswer))).all()
            assert [(a.occurrence_id, a.item_key, a.answer) for a in finals] == [(done_, "escape_routes", "ok")]
        command.downgrade(config, "0003")
        with engine.connect() as conn:
            back = conn.execute(sa.select(answer.c.occurrence_id, answer.c.item_key, answer.c.is_draft)).all()
        assert sorted((o, i, bool(d)) for o, i, d in back) == [
            (open_, "escape_routes", True), (open_, "exit_signs", True), (done_, "escape_routes", False)]
    finally:
        engine.dispose()
        db.upgrade(db_url)


async def test_completions_round_trip_aware(session: AsyncSession, khm: HmsConfig) -> None:
    occ = find_occurrence(khm, "vernerunde:2027:samling")
    assert occ is not None
    at = oslo(2027, 6, 20, 14, 5)
    await repo.record_completion(session, occ, "Tor.Arne.Nilsen@khm.uio.no", at, note="Rapport sendt")
    await repo.record_completion(session, occ, "siri.holm@khm.uio.no", oslo(2027, 6, 21, 9), note="dobbel")
    done = await repo.completions(session, dt.date(2027, 6, 1), dt.date(2027, 6, 30))
    c = done["vernerunde:2027:samling"]
    assert c.at == at and c.at.tzinfo is not None and c.by == "tor.arne.nilsen@khm.uio.no"
    events = await repo.occurrence_events(session, ["vernerunde:2027:samling"])
    assert [(e.actor_email, e.note) for e in events] == [("tor.arne.nilsen@khm.uio.no", "Rapport sendt"),
                                                          ("siri.holm@khm.uio.no", "dobbel")]
    assert await repo.completions(session, dt.date(2027, 7, 2), dt.date(2027, 7, 31)) == {}


async def test_naive_datetime_refused(session: AsyncSession) -> None:
    session.add(m.Person(email="x@example.org", name="X", updated_at=dt.datetime(2027, 1, 1)))  # noqa: DTZ001
    with pytest.raises(sa.exc.StatementError, match="naive datetime refused"):
        await session.commit()


async def test_unique_keys_hold(session: AsyncSession) -> None:
    now = oslo(2027, 1, 1, 9)
    session.add(m.OutboxMessage(dedupe_key="k1", kind="prompt", payload="{}", not_before=now, created_at=now))
    await session.commit()
    session.add(m.OutboxMessage(dedupe_key="k1", kind="prompt", payload="{}", not_before=now, created_at=now))
    with pytest.raises(sa.exc.IntegrityError):
        await session.commit()


async def test_sqlite_inline_reads_see_every_commit_from_any_connection(tmp_path: object, khm: HmsConfig) -> None:
    """The inline reader keeps plain rows between writes; any commit elsewhere makes the next read fresh."""
    url = f"sqlite:///{tmp_path}/hms.sqlite3"
    db.upgrade(url)
    writer = db.create_engine(url)
    readers = sessions.Readers(url, writer)
    start, end = dt.date(2027, 1, 1), dt.date(2027, 3, 31)
    try:
        async with readers() as r:
            assert await repo.completions(r, start, end) == {}
        async with readers() as r:
            assert await repo.completions(r, start, end) == {}
        assert (readers.hits, readers.misses) == (1, 1)

        occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
        assert occ is not None
        async with db.session_factory(writer)() as s:  # this process's writer
            await repo.record_completion(s, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 1, 10))
        async with readers() as r:
            assert list(await repo.completions(r, start, end)) == [occ.key]

        other = find_occurrence(khm, "fire_round:2027-Q1:hm-3")
        assert other is not None
        sync = db.create_sync_engine(url)  # another program on the same file (e.g. an hms-bot command)
        with sync.begin() as conn:
            conn.execute(sa.update(m.Occurrence.__table__).where(m.Occurrence.__table__.c.key == occ.key)
                         .values(completed_by="someone.else@khm.uio.no"))
        sync.dispose()
        async with readers() as r:
            found = await repo.completions(r, start, end)
        assert found[occ.key].by == "someone.else@khm.uio.no"
        assert readers.misses == 3
    finally:
        await readers.dispose()
        await writer.dispose()


Q1 = (dt.date(2027, 1, 1), dt.date(2027, 3, 31))


async def q1_completions(readers: sessions.Readers) -> dict[str, object]:
    """The first quarter's completions, read through the readers (kept or not)."""
    async with readers() as r:
        return dict(await repo.completions(r, *Q1))


async def until_listening(readers: sessions.Readers) -> None:
    async with asyncio.timeout(10):
        while not readers.listening:
            await readers.wait_for_change(readers.version)


@pytest.mark.postgres
def test_postgresql_tables_notify_changes_except_the_retry_ledger(postgres_url: str) -> None:
    """Migration 0003's triggers cover every table answers may read; a table added later needs one too. Left
    out: the retry ledger and the shared send schedule (migration 0008), written on every turn and every
    proactive message and never read by answers: a notification each time would empty every replica's cache."""
    engine = db.create_sync_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version", "processed_activity",
                                                                "delivery_rate"}
            triggered = {r[0] for r in conn.execute(sa.text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname = 'hms_notify_change'"))}
    finally:
        engine.dispose()
    assert tables == triggered


@pytest.mark.postgres
async def test_postgresql_readers_keep_rows_until_any_replica_changes_something(postgres_url: str,
                                                                               khm: HmsConfig) -> None:
    from tests.conftest import _clear

    _clear(postgres_url)
    writer = db.create_engine(postgres_url)
    readers = sessions.Readers(postgres_url, writer)

    async def completions() -> dict[str, object]:
        return await q1_completions(readers)

    try:
        assert await completions() == {}  # not listening yet: read, not kept
        assert readers.hits == 0
        await readers.start()
        await until_listening(readers)
        assert await completions() == {}
        assert await completions() == {}
        assert readers.hits == 1

        # another replica (another connection, no ORM session here) completes a round
        occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
        assert occ is not None
        other = db.create_sync_engine(postgres_url)
        before = readers.version
        with other.begin() as conn:
            conn.execute(sa.insert(m.table(m.Occurrence)).values(
                key=occ.key, task_key=occ.task, cycle=occ.cycle, section_key=occ.section, floor_key=occ.floor,
                window_start=occ.window_start, due=occ.due, created_at=oslo(2027, 3, 1, 10),
                completed_at=oslo(2027, 3, 1, 10), completed_by="eirik.haugen@khm.uio.no"))
        other.dispose()
        async with asyncio.timeout(10):
            await readers.wait_for_change(before)  # the notification
        assert list(await completions()) == [occ.key]

        # a commit in this process is seen at once, without waiting for its notification
        notified = readers.notified
        async with db.session_factory(writer)() as s:
            await repo.record_completion(s, find_occurrence(khm, "fire_round:2027-Q1:hm-3"),  # type: ignore[arg-type]
                                         "fatima.ali@khm.uio.no", oslo(2027, 3, 2, 10))
        assert len(await completions()) == 2
        async with asyncio.timeout(10):
            while readers.notified == notified:  # then its notification arrives too
                await readers.wait_for_change(readers.version)

        # the retry ledger's writes do not count as changes
        from storage.ledger import ActivityLedger

        ledger = ActivityLedger(writer)
        await completions()
        hits = readers.hits
        await ledger.claim("msteams|c|x", oslo(2027, 3, 2, 10))
        await completions()
        assert readers.hits == hits + 1

        # the listening connection is lost: nothing is kept until it is back
        admin = db.create_sync_engine(postgres_url)
        with admin.begin() as conn:
            assert conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = 'LISTEN hms_changes' AND pid <> pg_backend_pid()")).scalar() == 1
        admin.dispose()
        async with asyncio.timeout(10):
            while readers.listening:
                await readers.wait_for_change(readers.version)
        hits = readers.hits
        await completions()
        await completions()
        assert readers.hits == hits
        await until_listening(readers)  # it reconnects by itself
        await completions()
        await completions()
        assert readers.hits == hits + 1
    finally:
        await readers.dispose()
        await writer.dispose()
    assert not readers.listening


@pytest.mark.postgres
async def test_postgresql_readers_see_a_commit_of_this_process_before_its_notification(
        postgres_url: str, khm: HmsConfig) -> None:
    from tests.conftest import _clear

    _clear(postgres_url)
    writer = db.create_engine(postgres_url)
    readers = sessions.Readers(postgres_url, writer)
    readers.listening = True  # as if listening, with no notification ever delivered
    start, end = dt.date(2027, 1, 1), dt.date(2027, 3, 31)
    try:
        for _ in range(2):
            async with readers() as r:
                assert await repo.completions(r, start, end) == {}
        assert readers.hits == 1
        occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
        assert occ is not None
        async with db.session_factory(writer)() as s:
            await repo.record_completion(s, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 1, 10))
        async with readers() as r:
            assert list(await repo.completions(r, start, end)) == [occ.key]
    finally:
        await readers.dispose()
        await writer.dispose()


@pytest.mark.postgres
async def test_postgresql_readers_keep_rows_across_commits_that_wrote_nothing(postgres_url: str,
                                                                             khm: HmsConfig) -> None:
    """Identifying a person or pressing a card that changes nothing ends with a commit: the readers keep what
    they read. A commit that wrote rows empties them at once."""
    from tests.conftest import _clear

    _clear(postgres_url)
    writer = db.create_engine(postgres_url)
    sessions_ = db.session_factory(writer)
    async with sessions_() as s:
        await repo.import_org(s, khm, oslo(2027, 1, 4, 9))
    readers = sessions.Readers(postgres_url, writer)

    async def completions() -> dict[str, object]:
        return await q1_completions(readers)

    try:
        await readers.start()
        await until_listening(readers)
        assert await completions() == {}
        version, hits = readers.version, readers.hits

        async with sessions_() as s:  # reads, an assignment that changes nothing, a locking read
            person = await repo.person_by_email(s, "fatima.ali@khm.uio.no")
            assert person is not None and await repo.person_by_teams_id(s, "29:nobody") is None
            person.name = person.name
            await s.exec(select(m.Person).where(m.Person.email == "fatima.ali@khm.uio.no").with_for_update())
            await s.commit()
        async with sessions_() as s:  # a write rolled back, then a read-only commit
            person = await repo.person_by_email(s, "fatima.ali@khm.uio.no")
            assert person is not None
            person.title = "changed, then rolled back"
            await s.flush()
            await s.rollback()
            await repo.person_by_email(s, "fatima.ali@khm.uio.no")
            await s.commit()
        assert readers.version == version
        assert await completions() == {}
        assert readers.hits == hits + 1

        occ = find_occurrence(khm, "fire_round:2027-Q1:hm-2")
        assert occ is not None
        async with sessions_() as s:
            await repo.record_completion(s, occ, "eirik.haugen@khm.uio.no", oslo(2027, 3, 1, 10))
        assert readers.version > version  # at once, before the notification
        assert list(await completions()) == [occ.key]
    finally:
        await readers.dispose()
        await writer.dispose()


@pytest.mark.postgres
async def test_postgresql_readers_keep_nothing_when_notifications_do_not_arrive(
        postgres_url: str, postgres_admin_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Behind a pooler in transaction mode LISTEN hears nothing; the probe shows it, and nothing is kept."""
    writer = db.create_engine(postgres_url)
    readers = sessions.Readers(postgres_url, writer)
    readers._listen_url = postgres_admin_url  # listens on another database: its probes never come back
    readers.PROBE_WAIT = 0.3
    try:
        await readers.start()
        async with asyncio.timeout(10):
            while not readers.failures:
                await readers.wait_for_change(readers.version)
        assert "do not arrive" in caplog.text
        assert not readers.listening
        for _ in range(2):
            async with readers() as r:
                await repo.completions(r, dt.date(2027, 1, 1), dt.date(2027, 3, 31))
        assert readers.hits == 0
    finally:
        await readers.dispose()
        await writer.dispose()
