"""hall users and sessions

Revision ID: 14262598dbb7
Revises: 40f6f3dcd113
Create Date: 2026-11-24 21:52:54.566639

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '14262598dbb7'
down_revision = '40f6f3dcd113'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('hall_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sub', sa.String(length=255), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=True),
    sa.Column('department_code', sa.String(length=64), nullable=True),
    sa.Column('department_name', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sub')
    )
    with op.batch_alter_table('hall_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hall_users_account'), ['account'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_users_department_code'), ['department_code'], unique=False)

    op.create_table('hall_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('idp_sid', sa.String(length=255), nullable=True),
    sa.Column('id_token', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['hall_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hall_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hall_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_sessions_idp_sid'), ['idp_sid'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_sessions_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('hall_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hall_sessions_user_id'))
        batch_op.drop_index(batch_op.f('ix_hall_sessions_idp_sid'))
        batch_op.drop_index(batch_op.f('ix_hall_sessions_expires_at'))

    op.drop_table('hall_sessions')
    with op.batch_alter_table('hall_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hall_users_department_code'))
        batch_op.drop_index(batch_op.f('ix_hall_users_account'))

    op.drop_table('hall_users')
