"""change notifications (PostgreSQL): NOTIFY hms_changes after any statement that changes a table answers read

Readers in every replica LISTEN on the channel and drop what they keep when it fires (storage/sessions.py). The
retry ledger (written on every turn) is left out; a table added later needs the trigger too (a test checks).
SQLite needs nothing: its readers use PRAGMA data_version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "hms_changes"
TABLES = ("person", "section", "floor", "role_assignment", "occurrence", "occurrence_event", "checklist_answer",
          "finding", "measure", "measure_event", "conversation_ref", "outbox", "channel_thread")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE OR REPLACE FUNCTION hms_notify_change() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
    """)
    for table in TABLES:
        op.execute(f'CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{table}" '
                   "FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS hms_notify_change ON "{table}"')
    op.execute("DROP FUNCTION IF EXISTS hms_notify_change()")
