"""the first day: when the database was first migrated, and completions registered afterwards

`database_info` holds one row with `first_migrated_at`: without `unit.tracking_starts` in the organisation file,
its day is the first day the wheel is kept (nothing due before it is overdue, reminded or escalated). A fresh
database gets the row from the program that migrates it (`storage.db.upgrade(..., now=...)`, on that program's
clock). A database that was in use before this migration gets the earliest instant it has on record (the first
organisation import, the first occurrence, message or conversation), so upgrading does not hide its history.
The table gets the NOTIFY trigger of migration 0003, like every table answers read.

`occurrence_event.registered_by/registered_at` and `occurrence.registered_by` mark a completion registered
afterwards (work done before or outside the bot) with who put it on record and when.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the earliest instant the database has on record, if any (NULL on a fresh database)
EARLIEST = """
    SELECT MIN(t) AS t FROM (
        SELECT MIN(since) AS t FROM role_assignment
        UNION ALL SELECT MIN(created_at) FROM occurrence
        UNION ALL SELECT MIN(created_at) FROM outbox
        UNION ALL SELECT MIN(created_at) FROM conversation_ref
    ) AS evidence
"""


def upgrade() -> None:
    op.create_table('database_info',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_migrated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "database_info" '
                   'FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')
    op.execute(f"INSERT INTO database_info (id, first_migrated_at) SELECT 1, t FROM ({EARLIEST}) AS earliest "
               "WHERE t IS NOT NULL")
    with op.batch_alter_table('occurrence_event') as batch:
        batch.add_column(sa.Column('registered_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))
        batch.add_column(sa.Column('registered_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('occurrence') as batch:
        batch.add_column(sa.Column('registered_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE .. DROP COLUMN (SQLite 3.35+): batch mode would copy `occurrence`, and SQLite refuses to
    # drop a table other tables' rows point to
    op.drop_column('occurrence', 'registered_by')
    op.drop_column('occurrence_event', 'registered_at')
    op.drop_column('occurrence_event', 'registered_by')
    op.drop_table('database_info')  # its trigger goes with it
