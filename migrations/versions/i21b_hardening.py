"""hardening: flagged feedback, product views, admin session versions, job heartbeats

Revision ID: i21b_hardening
Revises: i14_change_feed
Create Date: 2026-12-04 19:20:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "i21b_hardening"
down_revision = "i14_change_feed"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "product_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("viewed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_product_views_product_id_products")),
        sa.ForeignKeyConstraint(["visitor_id"], ["visitors.id"], name=op.f("fk_product_views_visitor_id_visitors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_views")),
        sa.UniqueConstraint("visitor_id", "product_id", name="uq_product_views_visitor_product"),
    )
    with op.batch_alter_table("product_views", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_views_product_id"), ["product_id"], unique=False)
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feedback_flagged_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("feedback_flag_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("rate_window_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("window_purchases", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("window_add_to_carts", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flagged", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("flagged")
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.drop_column("window_add_to_carts")
        batch_op.drop_column("window_purchases")
        batch_op.drop_column("rate_window_at")
        batch_op.drop_column("feedback_flag_reason")
        batch_op.drop_column("feedback_flagged_at")
    with op.batch_alter_table("product_views", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_views_product_id"))
    op.drop_table("product_views")
