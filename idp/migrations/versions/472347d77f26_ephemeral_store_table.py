"""ephemeral store table

Revision ID: 472347d77f26
Revises: 
Create Date: 2026-11-24 20:31:58.272112

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '472347d77f26'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ephemeral_entries',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('counter', sa.BigInteger(), nullable=True),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('ephemeral_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ephemeral_entries_expires_at'), ['expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('ephemeral_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ephemeral_entries_expires_at'))

    op.drop_table('ephemeral_entries')
