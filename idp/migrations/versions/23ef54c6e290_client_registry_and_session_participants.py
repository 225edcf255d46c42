"""client registry and session participants

Revision ID: 23ef54c6e290
Revises: 4b44d488e23d
Create Date: 2026-11-24 21:14:14.939162

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '23ef54c6e290'
down_revision = '4b44d488e23d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('cas_services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('service_pattern', sa.Text(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('proxy_allowed', sa.Boolean(), nullable=False),
    sa.Column('single_logout', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('allowed_kinds', sa.JSON(), nullable=True),
    sa.Column('allowed_departments', sa.JSON(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('oidc_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('client_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('backchannel_logout_uri', sa.String(length=1000), nullable=True),
    sa.Column('grant_types', sa.JSON(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('token_endpoint_auth_method', sa.String(length=32), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('first_party', sa.Boolean(), nullable=False),
    sa.Column('require_pkce', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('allowed_kinds', sa.JSON(), nullable=True),
    sa.Column('allowed_departments', sa.JSON(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_id')
    )
    op.create_table('session_participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('oidc_client_id', sa.Integer(), nullable=True),
    sa.Column('cas_service_id', sa.Integer(), nullable=True),
    sa.Column('service_url', sa.Text(), nullable=True),
    sa.Column('session_index', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cas_service_id'], ['cas_services.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['oidc_client_id'], ['oidc_clients.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sso_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('session_participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_participants_session_id'), ['session_id'], unique=False)
        batch_op.create_index('ix_session_participants_session_protocol', ['session_id', 'protocol'], unique=False)



def downgrade():
    with op.batch_alter_table('session_participants', schema=None) as batch_op:
        batch_op.drop_index('ix_session_participants_session_protocol')
        batch_op.drop_index(batch_op.f('ix_session_participants_session_id'))

    op.drop_table('session_participants')
    op.drop_table('oidc_clients')
    op.drop_table('cas_services')
