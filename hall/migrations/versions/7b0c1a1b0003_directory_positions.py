"""Directory sync: positions and their holders, sync state, people's active flag

Revision ID: 7b0c1a1b0003
Revises: 7b0c1a1b0002
Create Date: 2026-11-24 23:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b0c1a1b0003'
down_revision = '7b0c1a1b0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('directory_sync_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('users_modified', sa.DateTime(timezone=True), nullable=True),
    sa.Column('groups_modified', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_full_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_result', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scim_id', sa.String(length=64), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scim_id')
    )
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_positions_department_id'), ['department_id'], unique=False)

    op.create_table('position_holders',
    sa.Column('position_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['position_id'], ['positions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['hall_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('position_id', 'user_id')
    )
    with op.batch_alter_table('hall_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('directory_synced_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('hall_users', schema=None) as batch_op:
        batch_op.drop_column('directory_synced_at')
        batch_op.drop_column('active')

    op.drop_table('position_holders')
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_positions_department_id'))

    op.drop_table('positions')
    op.drop_table('directory_sync_state')
