"""schedule_runs: when each Celery beat schedule last ran (shown on the admin overview)

Revision ID: i22b_schedule_runs
Revises: d41c7e2a9b10
Create Date: 2026-12-04 19:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'i22b_schedule_runs'
down_revision = 'd41c7e2a9b10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('schedule_runs',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('last_run_at', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=500), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_schedule_runs'))
    )


def downgrade():
    op.drop_table('schedule_runs')
