"""Push devices: platform, sealed FCM token and sealed Ed25519 public key on the factor row.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ... ADD several columns otherwise cleanly.
    with op.batch_alter_table("factors") as batch:
        batch.add_column(sa.Column("platform", sa.String(16), nullable=True))
        batch.add_column(sa.Column("push_token_ciphertext", sa.Text(), nullable=True))
        batch.add_column(sa.Column("public_key", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("factors") as batch:
        batch.drop_column("public_key")
        batch.drop_column("push_token_ciphertext")
        batch.drop_column("platform")
