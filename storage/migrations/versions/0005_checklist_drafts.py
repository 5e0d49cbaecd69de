"""checklist drafts: one row per item of an open round, overwritten in place, instead of a pile of answer rows

Every page save appended its answers to checklist_answer with is_draft set, and every page save and round start
read them all back. The newest draft per item of each open round moves to checklist_draft (with the NOTIFY
trigger of migration 0003, like every table answers read); the draft rows leave checklist_answer, which keeps only
the final answers, and its is_draft column goes. Drafts of rounds already completed served nothing and are dropped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANSWER = sa.table('checklist_answer', sa.column('id', sa.Integer), sa.column('occurrence_id', sa.Integer),
                  sa.column('submission_id', sa.String), sa.column('template_key', sa.String),
                  sa.column('template_version', sa.Integer), sa.column('item_key', sa.String),
                  sa.column('answer', sa.String), sa.column('comment', sa.Text), sa.column('is_draft', sa.Boolean),
                  sa.column('submitted_by', sa.String), sa.column('submitted_at', sa.DateTime))
DRAFT = sa.table('checklist_draft', sa.column('occurrence_id', sa.Integer), sa.column('item_key', sa.String),
                 sa.column('template_key', sa.String), sa.column('template_version', sa.Integer),
                 sa.column('answer', sa.String), sa.column('comment', sa.Text), sa.column('saved_by', sa.String),
                 sa.column('saved_at', sa.DateTime))
OCCURRENCE = sa.table('occurrence', sa.column('id', sa.Integer), sa.column('completed_at', sa.DateTime))
DRAFT_COLUMNS = ['occurrence_id', 'item_key', 'template_key', 'template_version', 'answer', 'comment', 'saved_by',
                 'saved_at']


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    op.create_table('checklist_draft',
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('item_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('template_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('template_version', sa.Integer(), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('saved_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('saved_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['occurrence_id'], ['occurrence.id'], ),
    sa.PrimaryKeyConstraint('occurrence_id', 'item_key')
    )
    if _postgresql():
        op.execute('CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "checklist_draft" '
                   'FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')
    newest = (sa.select(sa.func.max(ANSWER.c.id)).where(ANSWER.c.is_draft == sa.true())
              .group_by(ANSWER.c.occurrence_id, ANSWER.c.item_key))
    kept = (sa.select(ANSWER.c.occurrence_id, ANSWER.c.item_key, ANSWER.c.template_key, ANSWER.c.template_version,
                      ANSWER.c.answer, ANSWER.c.comment, ANSWER.c.submitted_by, ANSWER.c.submitted_at)
            .join(OCCURRENCE, OCCURRENCE.c.id == ANSWER.c.occurrence_id)
            .where(ANSWER.c.id.in_(newest), OCCURRENCE.c.completed_at.is_(None)))
    op.execute(DRAFT.insert().from_select(DRAFT_COLUMNS, kept))
    op.execute(ANSWER.delete().where(ANSWER.c.is_draft == sa.true()))
    with op.batch_alter_table('checklist_answer') as batch_op:
        batch_op.drop_column('is_draft')


def downgrade() -> None:
    with op.batch_alter_table('checklist_answer') as batch_op:
        batch_op.add_column(sa.Column('is_draft', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(ANSWER.insert().from_select(
        ['occurrence_id', 'submission_id', 'template_key', 'template_version', 'item_key', 'answer', 'comment',
         'is_draft', 'submitted_by', 'submitted_at'],
        sa.select(DRAFT.c.occurrence_id, sa.literal('draft'), DRAFT.c.template_key, DRAFT.c.template_version,
                  DRAFT.c.item_key, DRAFT.c.answer, DRAFT.c.comment, sa.true(), DRAFT.c.saved_by, DRAFT.c.saved_at)))
    with op.batch_alter_table('checklist_answer') as batch_op:
        batch_op.alter_column('is_draft', server_default=None)
    op.drop_table('checklist_draft')  # its trigger goes with it
