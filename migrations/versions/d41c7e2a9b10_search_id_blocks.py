"""search log after the response: id blocks, visitors' history_cleared_at

Revision ID: d41c7e2a9b10
Revises: cce26ed38a7f
Create Date: 2026-11-28 19:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd41c7e2a9b10'
down_revision = 'cce26ed38a7f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('id_blocks',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('next_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_id_blocks'))
    )
    with op.batch_alter_table('visitors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history_cleared_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('visitors', schema=None) as batch_op:
        batch_op.drop_column('history_cleared_at')
    op.drop_table('id_blocks')
