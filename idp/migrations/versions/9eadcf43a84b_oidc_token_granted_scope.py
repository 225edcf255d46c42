"""OAuth tokens keep the scope their authorization granted, along the refresh-token family

Revision ID: 9eadcf43a84b
Revises: 3f1f5575dfa5
Create Date: 2026-12-07 06:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9eadcf43a84b'
down_revision = '3f1f5575dfa5'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: rows issued before it have only their own scope, which stands in for the grant.
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('granted_scope', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.drop_column('granted_scope')
