"""Positions (department heads, counsellors) and their holders, for the directory API

Revision ID: 5a0c1a1b0004
Revises: 5a0c1a1b0003
Create Date: 2026-11-24 23:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5a0c1a1b0004'
down_revision = '5a0c1a1b0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('department_id', 'kind', name='uq_positions_dept_kind')
    )
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_positions_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_positions_updated_at'), ['updated_at'], unique=False)

    op.create_table('position_holders',
    sa.Column('position_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['position_id'], ['positions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('position_id', 'user_id')
    )


def downgrade():
    op.drop_table('position_holders')
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_positions_updated_at'))
        batch_op.drop_index(batch_op.f('ix_positions_department_id'))

    op.drop_table('positions')
