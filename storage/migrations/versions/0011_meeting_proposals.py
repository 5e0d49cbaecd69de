"""meeting proposals: the time a section leader and the safety representative agree for the safety round

One row per proposal (who proposed which start to whom, when), answered once: accepted, countered by a newer
proposal from the answerer, or replaced by the proposer's newer one. `seq` counts an occurrence's proposals and is
unique per occurrence, so two proposals made at once cannot both follow the same one. The table gets the NOTIFY
trigger of migration 0003, like every table answers read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('meeting_proposal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('proposed_to', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('answered_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['occurrence_id'], ['occurrence.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('occurrence_id', 'seq', name='uq_meeting_proposal_seq')
    )
    op.create_index(op.f('ix_meeting_proposal_occurrence_id'), 'meeting_proposal', ['occurrence_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON '
                   '"meeting_proposal" FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')


def downgrade() -> None:
    op.drop_index(op.f('ix_meeting_proposal_occurrence_id'), table_name='meeting_proposal')
    op.drop_table('meeting_proposal')  # its trigger goes with it
