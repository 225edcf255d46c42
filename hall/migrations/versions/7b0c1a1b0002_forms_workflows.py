"""Forms, flows, applications and tasks

Revision ID: 7b0c1a1b0002
Revises: 7b0c1a1b0001
Create Date: 2026-11-24 23:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b0c1a1b0002'
down_revision = '7b0c1a1b0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('form_definitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('ui', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('service_id', 'version', name='uq_form_definitions_version')
    )
    op.create_table('flow_definitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('service_id', 'version', name='uq_flow_definitions_version')
    )
    op.create_table('applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('form_definition_id', sa.Integer(), nullable=False),
    sa.Column('flow_snapshot', sa.JSON(), nullable=False),
    sa.Column('applicant', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['form_definition_id'], ['form_definitions.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index('ix_applications_applicant_status', ['applicant', 'status', 'submitted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_form_definition_id'), ['form_definition_id'], unique=False)
        batch_op.create_index('ix_applications_service_status', ['service_id', 'status'], unique=False)
        batch_op.create_index('ix_applications_applicant_submitted', ['applicant', 'submitted_at'], unique=False)

    op.create_table('workflow_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('application_status', sa.String(length=16), nullable=False),
    sa.Column('engine_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('node_name', sa.String(length=200), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=False),
    sa.Column('on_behalf_of', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opinion', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id', 'engine_id', name='uq_workflow_tasks_engine_id')
    )
    with op.batch_alter_table('workflow_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_tasks_application_status', ['application_id', 'status'], unique=False)
        batch_op.create_index('ix_workflow_tasks_assignee_status', ['assignee', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_workflow_tasks_assignee_service', ['assignee', 'service_id', 'application_id', 'application_status', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_workflow_tasks_assignee_acted', ['assignee', 'acted_at'], unique=False)

    op.create_table('application_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('on_behalf_of', sa.String(length=64), nullable=True),
    sa.Column('node_id', sa.String(length=64), nullable=True),
    sa.Column('opinion', sa.Text(), nullable=True),
    sa.Column('target', sa.String(length=500), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id', 'seq', name='uq_application_events_seq')
    )
    op.create_table('carbon_copies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('carbon_copies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carbon_copies_application_id'), ['application_id'], unique=False)
        batch_op.create_index('ix_carbon_copies_recipient_created', ['recipient', 'created_at'], unique=False)
        batch_op.create_index('ix_carbon_copies_recipient_read', ['recipient', 'read_at'], unique=False)

    op.create_table('workflow_delegations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delegator', sa.String(length=64), nullable=False),
    sa.Column('delegate', sa.String(length=64), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('workflow_delegations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_delegations_delegator'), ['delegator'], unique=False)


def downgrade():
    with op.batch_alter_table('workflow_delegations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_delegations_delegator'))

    op.drop_table('workflow_delegations')
    with op.batch_alter_table('carbon_copies', schema=None) as batch_op:
        batch_op.drop_index('ix_carbon_copies_recipient_read')
        batch_op.drop_index('ix_carbon_copies_recipient_created')
        batch_op.drop_index(batch_op.f('ix_carbon_copies_application_id'))

    op.drop_table('carbon_copies')
    op.drop_table('application_events')
    with op.batch_alter_table('workflow_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_tasks_assignee_acted')
        batch_op.drop_index('ix_workflow_tasks_assignee_service')
        batch_op.drop_index('ix_workflow_tasks_assignee_status')
        batch_op.drop_index('ix_workflow_tasks_application_status')

    op.drop_table('workflow_tasks')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('ix_applications_service_status')
        batch_op.drop_index('ix_applications_applicant_submitted')
        batch_op.drop_index(batch_op.f('ix_applications_form_definition_id'))
        batch_op.drop_index('ix_applications_applicant_status')

    op.drop_table('applications')
    op.drop_table('flow_definitions')
    op.drop_table('form_definitions')
