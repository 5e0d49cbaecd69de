"""occurrence building: the building a stored occurrence is for (tasks done per building, like a fire drill)

A task may be done once per building (the organisation file's `scope: building`); its stored occurrence names the
building, and a floor's names the floor's building too, so a measure from a building's round is seen by the people
of that building. Rows stored before keep no building (they are per unit, section or floor).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD/DROP COLUMN (SQLite has both): a batch copy of `occurrence` would break the rows that refer to it
    op.add_column('occurrence', sa.Column('building_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column('occurrence', 'building_key')
