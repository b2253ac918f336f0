"""Backup codes: a new set, shown once, as JSON or as a text file to print."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from mfa_pipeline.api.cpu_pool import CpuBoundPool
from mfa_pipeline.api.deps import ApplicationDep, BackupCodesDep
from mfa_pipeline.api.schemas import ID_PATTERN, ErrorOut, iso
from mfa_pipeline.services.backup_codes import BackupCodeSet

router = APIRouter(prefix="/v1/users", tags=["users"], responses={401: {"model": ErrorOut}})
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]

TEXT_FILE_NAME = "backup-codes.txt"


class BackupCodesOut(BaseModel):
    codes: list[str]
    generated_at: str | None


def wants_text(accept: str | None) -> bool:
    """True when `Accept` ranks text/plain above JSON (JSON wins ties and absent headers)."""
    if not accept:
        return False
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks[media.lower()] = max(quality, ranks.get(media.lower(), 0.0))
    text = ranks.get("text/plain", 0.0)
    json = max(ranks.get("application/json", 0.0), ranks.get("*/*", 0.0) * 0.5)
    return text > 0 and text > json


def text_file(codes: BackupCodeSet) -> str:
    lines = [
        "Backup codes for two-step verification",
        f"Generated {iso(codes.generated_at)}",
        "",
        "Keep these codes somewhere safe, such as printed in a drawer or in a password manager.",
        "If you lose your phone, sign in with your password, choose 'Use backup security code'",
        "and type one of these codes. Each code works once. Dashes and capitals do not matter.",
        "Generating new codes makes all of these stop working.",
        "",
        *codes.codes,
        "",
    ]
    return "\n".join(lines)


@router.post(
    "/{user_id}/backup-codes",
    status_code=201,
    response_model=BackupCodesOut,
    responses={
        201: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The new codes: JSON, or a text file with `Accept: text/plain`.",
        },
        404: {"model": ErrorOut},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
async def generate_backup_codes(
    user_id: UserIdPath,
    request: Request,
    backup_codes: BackupCodesDep,
    app: ApplicationDep,
    accept: Annotated[str | None, Header()] = None,
) -> BackupCodesOut | PlainTextResponse:
    """Ten new single-use codes, shown only in this answer; any earlier set stops working.

    At most a few sets per user per hour (429); the hashing runs on a small pool of its own,
    and when that is full the answer is 503 with Retry-After.
    """
    pool: CpuBoundPool = request.app.state.cpu_pool
    codes = await pool.run(
        functools.partial(backup_codes.generate, user_id=user_id, application=app)
    )
    if wants_text(accept):
        return PlainTextResponse(
            text_file(codes),
            status_code=201,
            headers={
                "Content-Disposition": f'attachment; filename="{TEXT_FILE_NAME}"',
                "Cache-Control": "no-store",
            },
        )
    return BackupCodesOut(codes=codes.codes, generated_at=iso(codes.generated_at))
