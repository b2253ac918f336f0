"""Users' firm role and code-factor lock; the audit trail listed in event-time order.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ... ADD several columns otherwise cleanly.
    with op.batch_alter_table("users") as batch:
        # Every existing user becomes a member: nobody is an administrator until named one.
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="member"))
        batch.add_column(sa.Column("locked_until", sa.Float(), nullable=True))
    op.create_index(
        "ix_audit_events_user_id_created_at", "audit_events", ["user_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_user_id_created_at", table_name="audit_events")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("role")
