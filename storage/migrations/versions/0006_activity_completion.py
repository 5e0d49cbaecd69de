"""activity completion: a handled activity is in progress until its turn completes

The retry ledger used to record an activity as handled before its turn ran, so a Teams retry of a turn whose
reply failed was dropped. Now a row without `completed_at` is a claim in progress (PostgreSQL: it lapses after a
short lease, for a replica that died); rows already on record were handled and count as completed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('processed_activity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE processed_activity SET completed_at = received_at")


def downgrade() -> None:
    op.execute("DELETE FROM processed_activity WHERE completed_at IS NULL")
    with op.batch_alter_table('processed_activity', schema=None) as batch_op:
        batch_op.drop_column('completed_at')
