"""Tasks remember when the applicant urged them (催办)

Revision ID: 7b0c1a1b0005
Revises: 7b0c1a1b0004
Create Date: 2026-11-25 01:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b0c1a1b0005'
down_revision = '7b0c1a1b0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('workflow_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('urged_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('workflow_tasks', schema=None) as batch_op:
        batch_op.drop_column('urged_at')
