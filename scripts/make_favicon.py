"""Writes static/img/favicon.ico from static/img/favicon.svg: the SVG drawn by Chromium at 16, 32
and 48 pixels, the PNGs wrapped in an ICO container. Run it after changing the SVG:

    .venv/bin/python scripts/make_favicon.py
"""

import base64
import struct
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SIZES = (16, 32, 48)
CHROMIUM = "/usr/bin/chromium"


def render(svg: str) -> list[tuple[int, bytes]]:
    source = f"data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pngs = []
        for size in SIZES:
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(f'<body style="margin:0"><img src="{source}" width="{size}" height="{size}"></body>')
            pngs.append((size, page.screenshot(omit_background=True)))
        browser.close()
    return pngs


def ico(pngs: list[tuple[int, bytes]]) -> bytes:
    """ICONDIR, one ICONDIRENTRY per image (width, height, colours, reserved, planes, bits, size,
    offset), then the PNGs themselves."""
    offset = 6 + 16 * len(pngs)
    entries, data = b"", b""
    for size, png in pngs:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return struct.pack("<HHH", 0, 1, len(pngs)) + entries + data


if __name__ == "__main__":
    svg = (ROOT / "static/img/favicon.svg").read_text(encoding="utf-8")
    (ROOT / "static/img/favicon.ico").write_bytes(ico(render(svg)))
