"""Online forms: drafts (草稿箱) and attachments

Revision ID: 7b0c1a1b0004
Revises: 7b0c1a1b0003
Create Date: 2026-11-24 23:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b0c1a1b0004'
down_revision = '7b0c1a1b0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('form_drafts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('form_definition_id', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('chosen', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['form_definition_id'], ['form_definitions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('form_drafts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_drafts_form_definition_id'), ['form_definition_id'], unique=False)
        batch_op.create_index('ix_form_drafts_owner_updated', ['owner', 'updated_at'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('storage_name', sa.String(length=64), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('storage_name')
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_application_id'), ['application_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachments_owner'), ['owner'], unique=False)


def downgrade():
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_owner'))
        batch_op.drop_index(batch_op.f('ix_attachments_application_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('form_drafts', schema=None) as batch_op:
        batch_op.drop_index('ix_form_drafts_owner_updated')
        batch_op.drop_index(batch_op.f('ix_form_drafts_form_definition_id'))

    op.drop_table('form_drafts')
