"""measure sources: measures from every source (not only a round's deviation), their history of owners and
deadlines, and their evidence

`measure` gets its source, description, section, CIM reference and creator, and `finding_id` becomes optional (a
measure from ARK, ROS, LAMU, an audit or an incident has no finding). Measures made from a round's deviation keep
their finding and get source "round", the finding's text as their description, its author as their creator and the
round's section. `measure_event` records what changed (kind, old and new value; the reason in `note`), and
`measure_evidence` holds notes, links and files (with the NOTIFY trigger of migration 0003, like every table
answers read).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURE = sa.table('measure', sa.column('id', sa.Integer), sa.column('finding_id', sa.Integer),
                   sa.column('description', sa.Text), sa.column('section_key', sa.String),
                   sa.column('created_by', sa.String))
FINDING = sa.table('finding', sa.column('id', sa.Integer), sa.column('occurrence_id', sa.Integer),
                   sa.column('description', sa.Text), sa.column('created_by', sa.String))
OCCURRENCE = sa.table('occurrence', sa.column('id', sa.Integer), sa.column('section_key', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('measure') as batch_op:
        batch_op.add_column(sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                      server_default='round'))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('section_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('cim_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))
        batch_op.alter_column('finding_id', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('measure') as batch_op:
        batch_op.alter_column('source', server_default=None)
    finding = FINDING.c
    op.execute(MEASURE.update().values(
        description=sa.select(finding.description).where(finding.id == MEASURE.c.finding_id).scalar_subquery(),
        created_by=sa.select(finding.created_by).where(finding.id == MEASURE.c.finding_id).scalar_subquery(),
        section_key=sa.select(OCCURRENCE.c.section_key).join(FINDING, finding.occurrence_id == OCCURRENCE.c.id)
        .where(finding.id == MEASURE.c.finding_id).scalar_subquery()))
    with op.batch_alter_table('measure_event') as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('old_value', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))
        batch_op.add_column(sa.Column('new_value', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))
    op.create_table('measure_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('measure_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['measure_id'], ['measure.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_measure_evidence_measure_id'), 'measure_evidence', ['measure_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE TRIGGER hms_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON '
                   '"measure_evidence" FOR EACH STATEMENT EXECUTE FUNCTION hms_notify_change()')


def downgrade() -> None:
    op.drop_index(op.f('ix_measure_evidence_measure_id'), table_name='measure_evidence')
    op.drop_table('measure_evidence')  # its trigger goes with it
    with op.batch_alter_table('measure_event') as batch_op:
        batch_op.drop_column('new_value')
        batch_op.drop_column('old_value')
        batch_op.drop_column('kind')
    # measures without a finding cannot go back to a schema that requires one: their history goes with them
    op.execute(sa.text('DELETE FROM measure_event WHERE measure_id IN (SELECT id FROM measure WHERE finding_id IS '
                       'NULL)'))
    op.execute(MEASURE.delete().where(MEASURE.c.finding_id.is_(None)))
    with op.batch_alter_table('measure') as batch_op:
        batch_op.alter_column('finding_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('created_by')
        batch_op.drop_column('cim_ref')
        batch_op.drop_column('section_key')
        batch_op.drop_column('description')
        batch_op.drop_column('source')
