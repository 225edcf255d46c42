"""oidc signing keys, tokens and consents

Revision ID: c4c7a52ab231
Revises: 23ef54c6e290
Create Date: 2026-11-24 21:21:58.460129

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4c7a52ab231'
down_revision = '23ef54c6e290'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oidc_signing_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('alg', sa.String(length=8), nullable=False),
    sa.Column('private_key_encrypted', sa.Text(), nullable=False),
    sa.Column('public_jwk', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kid')
    )
    with op.batch_alter_table('oidc_signing_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_signing_keys_expires_at'), ['expires_at'], unique=False)

    op.create_table('oidc_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'client_id', name='uq_oidc_consents_user_client')
    )
    with op.batch_alter_table('oidc_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_consents_client_id'), ['client_id'], unique=False)

    op.create_table('oidc_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('access_token_hash', sa.String(length=64), nullable=False),
    sa.Column('refresh_token_hash', sa.String(length=64), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('family_id', sa.String(length=32), nullable=False),
    sa.Column('rotated_from_id', sa.Integer(), nullable=True),
    sa.Column('authorization_code_hash', sa.String(length=64), nullable=True),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('access_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rotated_from_id'], ['oidc_tokens.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('access_token_hash'),
    sa.UniqueConstraint('refresh_token_hash')
    )
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_tokens_authorization_code_hash'), ['authorization_code_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_sid'), ['sid'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_sid'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_client_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_authorization_code_hash'))

    op.drop_table('oidc_tokens')
    with op.batch_alter_table('oidc_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_consents_client_id'))

    op.drop_table('oidc_consents')
    with op.batch_alter_table('oidc_signing_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_signing_keys_expires_at'))

    op.drop_table('oidc_signing_keys')
