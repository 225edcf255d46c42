"""OIDC clients choose the algorithm of their ID tokens (id_token_signed_response_alg)

Revision ID: b7e2d4c81f06
Revises: 9eadcf43a84b
Create Date: 2026-12-07 07:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e2d4c81f06'
down_revision = '9eadcf43a84b'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: a client registered before it, like one that names none, gets RS256.
    with op.batch_alter_table('oidc_clients', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('id_token_signed_response_alg', sa.String(length=8), nullable=True)
        )


def downgrade():
    with op.batch_alter_table('oidc_clients', schema=None) as batch_op:
        batch_op.drop_column('id_token_signed_response_alg')
