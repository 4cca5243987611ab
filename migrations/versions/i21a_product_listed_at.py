"""products.listed_at: the catalog's own listing date, which freshness and the new-product bonus read

Revision ID: i21a_product_listed_at
Revises: i21b_hardening
Create Date: 2026-12-04 19:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i21a_product_listed_at'
down_revision = 'i21b_hardening'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listed_at', sa.DateTime(), nullable=True))
    # Existing products keep the age they had (their row's creation); re-importing with
    # --established clears it for a catalog that was never new.
    op.execute("UPDATE products SET listed_at = created_at")


def downgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('listed_at')
