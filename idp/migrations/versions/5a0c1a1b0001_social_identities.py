"""WeChat and WeCom identities bound to accounts

Revision ID: 5a0c1a1b0001
Revises: c4c7a52ab231
Create Date: 2026-11-24 23:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5a0c1a1b0001'
down_revision = 'c4c7a52ab231'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('social_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=128), nullable=False),
    sa.Column('openid', sa.String(length=128), nullable=True),
    sa.Column('unionid', sa.String(length=128), nullable=True),
    sa.Column('nickname', sa.String(length=100), nullable=True),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'subject', name='uq_social_identities_provider_subject'),
    sa.UniqueConstraint('user_id', 'provider', name='uq_social_identities_user_provider')
    )
    with op.batch_alter_table('social_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_social_identities_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('social_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_social_identities_user_id'))

    op.drop_table('social_identities')
