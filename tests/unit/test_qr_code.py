"""The enrollment QR code: rendered as a reader meets it, then decoded by a real QR reader.

resvg rasterises the SVG as a browser or an image converter would, and zxing-cpp reads it as
a phone's scanner does. Before the fix the code had no background of its own and a 2-module
margin: on a dark page, or converted to an opaque image with no white behind it, it vanished.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
import resvg_py
import segno
import zxingcpp
from PIL import Image

from mfa_pipeline.adapters.segno_qr import MODULE_PIXELS, QUIET_ZONE_MODULES, qr_svg

URI = "otpauth://totp/Demo%20Firm:demo?secret=JBSWY3DPEHPK3PXPJBSWY3DP&issuer=Demo%20Firm"
SVG_NS = "{http://www.w3.org/2000/svg}"


def decoded(png: bytes) -> list[str]:
    image = Image.open(io.BytesIO(png)).convert("RGB")  # alpha dropped: transparent is black
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("page", ["#000000", "#1e1e1e", "#ffffff"])
def test_the_qr_code_decodes_on_a_dark_or_a_light_page(page: str) -> None:
    png = resvg_py.svg_to_bytes(svg_string=qr_svg(URI), background=page)

    assert decoded(png) == [URI]


def test_the_qr_code_decodes_when_converted_to_an_image_without_a_background() -> None:
    png = resvg_py.svg_to_bytes(svg_string=qr_svg(URI))  # transparent where nothing is drawn

    assert decoded(png) == [URI]


def test_the_qr_code_has_a_white_background_over_the_whole_image() -> None:
    root = ET.fromstring(qr_svg(URI))  # noqa: S314 - our own output, not untrusted XML
    size = int(root.attrib["width"])
    group = root.find(f"{SVG_NS}g")
    assert group is not None
    assert group.attrib["transform"] == f"scale({MODULE_PIXELS})"
    background = group.find(f"{SVG_NS}path")
    assert background is not None

    modules = size // MODULE_PIXELS
    assert root.attrib["height"] == root.attrib["width"]
    assert background.attrib["fill"] == "#fff"
    assert background.attrib["d"] == f"M0 0h{modules}v{modules}h-{modules}z"


def test_the_qr_code_keeps_a_quiet_zone_of_four_modules_on_every_side() -> None:
    symbol = segno.make(URI, error="m")
    width = symbol.symbol_size(border=0)[0]
    root = ET.fromstring(qr_svg(URI))  # noqa: S314 - our own output, not untrusted XML
    modules = root.find(f"{SVG_NS}g/{SVG_NS}path[@class='qrline']")
    assert modules is not None

    # segno draws dark runs as horizontal strokes: absolute "M x y.5" then relative moves.
    start = re.match(r"M(\d+) (\d+)\.5", modules.attrib["d"])
    assert start is not None
    assert int(root.attrib["width"]) == (width + 2 * QUIET_ZONE_MODULES) * MODULE_PIXELS
    # The top-left finder pattern starts 4 modules in (ISO/IEC 18004 §6.3.8).
    assert (int(start[1]), int(start[2])) == (4, 4)
