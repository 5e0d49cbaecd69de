"""downloads and feed tokens: files handed out by link (the inspection pack asked for in the chat, until it
expires) and the tokens of calendar feeds and the wheel's picture (per person, section or unit; revocable)

Both get the NOTIFY trigger of migration 0003, like every table answers read.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('download',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token')
    )
    op.create_index(op.f('ix_download_expires_at'), 'download', ['expires_at'], unique=False)
    op.create_table('feed_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token')
    )
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('download', 'feed_token'):
            op.execute(f'CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON '
                       f'"{table}" FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')


def downgrade() -> None:
    op.drop_table('feed_token')
    op.drop_index(op.f('ix_download_expires_at'), table_name='download')
    op.drop_table('download')
