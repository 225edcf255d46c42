"""SSO session lineage: kept when the same user signs in again, named by CAS tickets

Revision ID: 3f1f5575dfa5
Revises: 5a0c1a1b0004
Create Date: 2026-11-26 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3f1f5575dfa5'
down_revision = '5a0c1a1b0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lineage', sa.String(length=64), nullable=True))
    # Each existing session begins its own lineage; the tickets already issued name its id.
    op.execute('UPDATE sso_sessions SET lineage = id')
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.alter_column('lineage', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f('ix_sso_sessions_lineage'), ['lineage'], unique=False)


def downgrade():
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_sessions_lineage'))
        batch_op.drop_column('lineage')
