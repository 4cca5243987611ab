"""catalog change feed: every product save numbered in commit order

Revision ID: i14_change_feed
Revises: i22a_storefront_rules
Create Date: 2026-12-04 19:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i14_change_feed'
down_revision = 'i22a_storefront_rules'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('catalog_changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_catalog_changes')),
    sqlite_autoincrement=True
    )


def downgrade():
    op.drop_table('catalog_changes')
