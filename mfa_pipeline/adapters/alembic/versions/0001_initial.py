"""Users and factors.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("firm_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
    )
    op.create_index("ix_users_firm_id", "users", ["firm_id"])
    op.create_table(
        "factors",
        sa.Column("factor_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("phone_ciphertext", sa.Text(), nullable=True),
        sa.Column("phone_last2", sa.String(2), nullable=True),
        sa.Column("phone_region", sa.String(3), nullable=True),
        sa.Column("last_totp_step", sa.BigInteger(), nullable=True),
        sa.Column("pending_challenge_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name="fk_factors_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("factor_id", name="pk_factors"),
    )
    op.create_index("ix_factors_user_id_type", "factors", ["user_id", "type"])


def downgrade() -> None:
    op.drop_index("ix_factors_user_id_type", table_name="factors")
    op.drop_table("factors")
    op.drop_index("ix_users_firm_id", table_name="users")
    op.drop_table("users")
