"""signal_feed and change_seq: the signal counts' commit-ordered change feed

Revision ID: i14b_signal_feed
Revises: i16_recommendations
Create Date: 2026-12-04 20:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i14b_signal_feed'
down_revision = 'i16_recommendations'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'signal_feed',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('head', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    for table in ('product_signals', 'query_signals'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), nullable=False, server_default='0'))
            batch_op.create_index(batch_op.f(f'ix_{table}_change_seq'), ['change_seq'], unique=False)
    # Existing rows keep number 0: a worker's first read (and each reconciliation) reads them all.


def downgrade():
    for table in ('product_signals', 'query_signals'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_change_seq'))
            batch_op.drop_column('change_seq')
    op.drop_table('signal_feed')
