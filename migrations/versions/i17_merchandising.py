"""merchandising: synonyms, query rules, and impressions marked when a rule imposed their position

Revision ID: i17_merchandising
Revises: i21a_product_listed_at
Create Date: 2026-12-04 20:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i17_merchandising'
down_revision = 'i21a_product_listed_at'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('synonyms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_synonyms'))
    )
    op.create_index(op.f('ix_synonyms_updated_at'), 'synonyms', ['updated_at'], unique=False)
    op.create_table('query_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('query', sa.String(length=200), nullable=False),
    sa.Column('match', sa.String(length=10), nullable=False),
    sa.Column('pins', sa.JSON(), nullable=False),
    sa.Column('hides', sa.JSON(), nullable=False),
    sa.Column('boosts', sa.JSON(), nullable=False),
    sa.Column('redirect_url', sa.String(length=500), nullable=True),
    sa.Column('starts_at', sa.DateTime(), nullable=True),
    sa.Column('ends_at', sa.DateTime(), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_query_rules'))
    )
    op.create_index(op.f('ix_query_rules_query'), 'query_rules', ['query'], unique=False)
    op.create_index(op.f('ix_query_rules_updated_at'), 'query_rules', ['updated_at'], unique=False)
    with op.batch_alter_table('impressions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('imposed', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('impressions', schema=None) as batch_op:
        batch_op.drop_column('imposed')
    op.drop_index(op.f('ix_query_rules_updated_at'), table_name='query_rules')
    op.drop_index(op.f('ix_query_rules_query'), table_name='query_rules')
    op.drop_table('query_rules')
    op.drop_index(op.f('ix_synonyms_updated_at'), table_name='synonyms')
    op.drop_table('synonyms')
