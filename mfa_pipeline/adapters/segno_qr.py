"""QR codes for authenticator enrollment, as inline SVG (no image files, no external service)."""

from __future__ import annotations

import io

import segno

from mfa_pipeline.ports import QrRenderer

# ISO/IEC 18004 §6.3.8: a light quiet zone 4 modules wide on every side. Readers find the
# finder patterns by that margin; with less, or with a page colour behind it, they give up.
QUIET_ZONE_MODULES = 4
MODULE_PIXELS = 4


def qr_svg(data: str) -> str:
    """The code on its own white square: readable on a dark page and after any conversion."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(
        buffer,
        kind="svg",
        scale=MODULE_PIXELS,
        border=QUIET_ZONE_MODULES,
        dark="#000",
        light="#fff",  # an opaque background, not the page's colour showing through
        xmldecl=False,
        svgns=True,
        title="Scan with your authenticator app",
    )
    return buffer.getvalue().decode()


class SegnoQrRenderer(QrRenderer):
    def svg(self, data: str) -> str:
        return qr_svg(data)
