"""delivery rate: the send schedule replicas share, and indexes for the claim's busy-recipient look-up

`delivery_rate` holds one row per limit (today one: the tenant's). Every proactive message moves it on, dozens of
times a second during a fan-out, so it has no change-notification trigger (migration 0003): like the retry
ledger it is never read by answers, and a NOTIFY per send would empty every replica's read cache each time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delivery_rate',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('next_at', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index(op.f('ix_outbox_claimed_until'), 'outbox', ['claimed_until'], unique=False)
    op.create_index(op.f('ix_outbox_sent_at'), 'outbox', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_sent_at'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_claimed_until'), table_name='outbox')
    op.drop_table('delivery_rate')
