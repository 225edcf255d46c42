"""Service catalogue, notices, favourites

Revision ID: 7b0c1a1b0001
Revises: 14262598dbb7
Create Date: 2026-11-24 23:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b0c1a1b0001'
down_revision = '14262598dbb7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['departments.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_departments_parent_id'), ['parent_id'], unique=False)

    op.create_table('hall_audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hall_audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hall_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_audit_events_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_hall_audit_events_object'), ['object'], unique=False)

    op.create_table('service_categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('hall_role_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('granted_by', sa.String(length=64), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hall_role_grants', schema=None) as batch_op:
        batch_op.create_index('ix_hall_role_grants_account_role', ['account', 'role'], unique=False)

    op.create_table('notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('publish_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notices_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_publish_at'), ['publish_at'], unique=False)

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('keywords', sa.String(length=500), nullable=False),
    sa.Column('for_student', sa.Boolean(), nullable=False),
    sa.Column('for_staff', sa.Boolean(), nullable=False),
    sa.Column('for_visitor', sa.Boolean(), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('entry_url', sa.String(length=500), nullable=True),
    sa.Column('recommended', sa.Boolean(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('eligibility', sa.Text(), nullable=False),
    sa.Column('materials', sa.Text(), nullable=False),
    sa.Column('steps', sa.Text(), nullable=False),
    sa.Column('approval_flow', sa.Text(), nullable=False),
    sa.Column('time_limit', sa.String(length=200), nullable=False),
    sa.Column('fee', sa.String(length=200), nullable=False),
    sa.Column('contact_phone', sa.String(length=100), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('offline_instructions', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('search_pinyin', sa.Text(), nullable=False),
    sa.Column('search_initials', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['service_categories.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_services_category_id'), ['category_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_services_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_services_status'), ['status'], unique=False)
        batch_op.create_index('ix_services_status_open_count', ['status', 'open_count'], unique=False)

    op.create_table('system_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('section', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('icon', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('allowed_kinds', sa.String(length=100), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('system_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_system_entries_department_id'), ['department_id'], unique=False)

    op.create_table('favourites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('system_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['system_id'], ['system_entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['hall_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'service_id', name='uq_favourites_user_service'),
    sa.UniqueConstraint('user_id', 'system_id', name='uq_favourites_user_system')
    )
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_favourites_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_favourites_system_id'), ['system_id'], unique=False)

    op.create_table('usage_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('system_id', sa.Integer(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['system_id'], ['system_entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['hall_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'service_id', name='uq_usage_counts_user_service'),
    sa.UniqueConstraint('user_id', 'system_id', name='uq_usage_counts_user_system')
    )
    with op.batch_alter_table('usage_counts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_counts_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_counts_system_id'), ['system_id'], unique=False)



def downgrade():
    with op.batch_alter_table('usage_counts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_counts_system_id'))
        batch_op.drop_index(batch_op.f('ix_usage_counts_service_id'))

    op.drop_table('usage_counts')
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_favourites_system_id'))
        batch_op.drop_index(batch_op.f('ix_favourites_service_id'))

    op.drop_table('favourites')
    with op.batch_alter_table('system_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_system_entries_department_id'))

    op.drop_table('system_entries')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index('ix_services_status_open_count')
        batch_op.drop_index(batch_op.f('ix_services_status'))
        batch_op.drop_index(batch_op.f('ix_services_department_id'))
        batch_op.drop_index(batch_op.f('ix_services_category_id'))

    op.drop_table('services')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notices_publish_at'))
        batch_op.drop_index(batch_op.f('ix_notices_department_id'))

    op.drop_table('notices')
    with op.batch_alter_table('hall_role_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_hall_role_grants_account_role')

    op.drop_table('hall_role_grants')
    op.drop_table('service_categories')
    with op.batch_alter_table('hall_audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hall_audit_events_object'))
        batch_op.drop_index(batch_op.f('ix_hall_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_hall_audit_events_actor'))
        batch_op.drop_index(batch_op.f('ix_hall_audit_events_action'))

    op.drop_table('hall_audit_events')
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_departments_parent_id'))

    op.drop_table('departments')
