"""recommendations: co-occurrence counts (pair_signals), served lists and their items, events.recommendation_id

Revision ID: i16_recommendations
Revises: i17_merchandising
Create Date: 2026-12-04 19:58:29.798288

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i16_recommendations'
down_revision = 'i17_merchandising'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pair_signals',
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('short', sa.Float(), nullable=False),
    sa.Column('long', sa.Float(), nullable=False),
    sa.Column('stamp', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['products.id'], name=op.f('fk_pair_signals_partner_id_products')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_pair_signals_product_id_products')),
    sa.PrimaryKeyConstraint('product_id', 'partner_id', name=op.f('pk_pair_signals'))
    )
    with op.batch_alter_table('pair_signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pair_signals_updated_at'), ['updated_at'], unique=False)

    op.create_table('recommendation_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.String(length=36), nullable=True),
    sa.Column('context', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=30), nullable=False),
    sa.Column('strategy', sa.String(length=30), nullable=False),
    sa.Column('anchor_product_id', sa.Integer(), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['anchor_product_id'], ['products.id'], name=op.f('fk_recommendation_lists_anchor_product_id_products')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_recommendation_lists_model_version_id_model_versions')),
    sa.ForeignKeyConstraint(['visitor_id'], ['visitors.id'], name=op.f('fk_recommendation_lists_visitor_id_visitors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendation_lists'))
    )
    with op.batch_alter_table('recommendation_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recommendation_lists_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_recommendation_lists_visitor_id'), ['visitor_id'], unique=False)

    op.create_table('recommendation_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recommendation_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=30), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_recommendation_items_product_id_products')),
    sa.ForeignKeyConstraint(['recommendation_id'], ['recommendation_lists.id'], name=op.f('fk_recommendation_items_recommendation_id_recommendation_lists')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendation_items')),
    sa.UniqueConstraint('recommendation_id', 'position', name='uq_recommendation_items_position')
    )
    with op.batch_alter_table('recommendation_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recommendation_items_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recommendation_items_recommendation_id'), ['recommendation_id'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recommendation_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_recommendation_id'), ['recommendation_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_events_recommendation_id_recommendation_lists'), 'recommendation_lists', ['recommendation_id'], ['id'])



def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_events_recommendation_id_recommendation_lists'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_events_recommendation_id'))
        batch_op.drop_column('recommendation_id')

    with op.batch_alter_table('recommendation_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recommendation_items_recommendation_id'))
        batch_op.drop_index(batch_op.f('ix_recommendation_items_product_id'))

    op.drop_table('recommendation_items')
    with op.batch_alter_table('recommendation_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recommendation_lists_visitor_id'))
        batch_op.drop_index(batch_op.f('ix_recommendation_lists_created_at'))

    op.drop_table('recommendation_lists')
    with op.batch_alter_table('pair_signals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pair_signals_updated_at'))

    op.drop_table('pair_signals')
