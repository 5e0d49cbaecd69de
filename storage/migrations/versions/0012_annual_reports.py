"""annual reports: each section's HMS annual report as its leader submitted it

One row per report occurrence (section and cycle): the year it reports on, the parts as submitted (JSON texts), the
numbers the draft was prefilled with (JSON), who and when. The table gets the NOTIFY trigger of migration 0003, like
every table answers read.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('annual_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('section_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('parts', sa.Text(), nullable=False),
    sa.Column('figures', sa.Text(), nullable=False),
    sa.Column('submitted_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submission_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['occurrence_id'], ['occurrence.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('occurrence_id')
    )
    op.create_index(op.f('ix_annual_report_year'), 'annual_report', ['year'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON '
                   '"annual_report" FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')


def downgrade() -> None:
    op.drop_index(op.f('ix_annual_report_year'), table_name='annual_report')
    op.drop_table('annual_report')  # its trigger goes with it
