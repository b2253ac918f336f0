"""Administrators' invitations to enable MFA (who, by whom, when).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mfa_invitations",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("invitation_id", sa.String(64), nullable=False),
        sa.Column("firm_id", sa.String(255), nullable=False),
        sa.Column("invited_by", sa.String(255), nullable=False),
        sa.Column("invited_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name="fk_mfa_invitations_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_mfa_invitations"),
        sa.UniqueConstraint("invitation_id", name="uq_mfa_invitations_invitation_id"),
    )
    op.create_index("ix_mfa_invitations_firm_id", "mfa_invitations", ["firm_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_invitations_firm_id", table_name="mfa_invitations")
    op.drop_table("mfa_invitations")
