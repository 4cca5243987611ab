"""suggestion rule: client hash, blocklist, reviews; spelling corrections; demo orders

Revision ID: i22a_storefront_rules
Revises: i22b_schedule_runs
Create Date: 2026-12-04 19:20:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "i22a_storefront_rules"
down_revision = "i22b_schedule_runs"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "suggestion_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phrase", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_blocks")),
        sa.UniqueConstraint("phrase", name=op.f("uq_suggestion_blocks_phrase")),
    )
    op.create_table(
        "suggestion_reviews",
        sa.Column("normalized", sa.String(length=200), nullable=False),
        sa.Column("reviewed_by", sa.String(length=254), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("normalized", name=op.f("pk_suggestion_reviews")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.String(length=36), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["visitor_id"], ["visitors.id"], name=op.f("fk_orders_visitor_id_visitors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_visitor_id"), ["visitor_id"], unique=False)
    with op.batch_alter_table("search_queries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("corrected_text", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("client_hash", sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table("search_queries", schema=None) as batch_op:
        batch_op.drop_column("client_hash")
        batch_op.drop_column("corrected_text")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_visitor_id"))
    op.drop_table("orders")
    op.drop_table("suggestion_reviews")
    op.drop_table("suggestion_blocks")
