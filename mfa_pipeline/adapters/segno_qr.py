"""QR codes for authenticator enrollment, as inline SVG (no image files, no external service)."""

from __future__ import annotations

import io

import segno


def qr_svg(data: str) -> str:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(
        buffer,
        kind="svg",
        scale=4,
        border=2,
        xmldecl=False,
        svgns=True,
        title="Scan with your authenticator app",
    )
    return buffer.getvalue().decode()
