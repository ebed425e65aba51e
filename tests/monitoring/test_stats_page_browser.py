"""The `smallfirst stats --html` page in a real headless browser (Debian's Chromium): every plot decodes, is laid
out where the screenshot shows it drawn, and the page is not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from shared.cli import app
from tests.monitoring.records import result, shadow

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's Chromium is not installed: apt-get install -y chromium")
# Headless as root, and quiet on a machine with no network (no component updates, sync or other background calls).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--virtual-time-budget=10000"]
WIDTH = 1100
# Set after load: each image's decoded size and its place on the page, and the page's height.
PROBE = """<script>
window.addEventListener('load', () => {
  for (const img of document.images) {
    const r = img.getBoundingClientRect();
    img.dataset.natural = img.naturalWidth + 'x' + img.naturalHeight;
    img.dataset.box = [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round).join(',');
  }
  document.body.dataset.height = document.documentElement.scrollHeight;
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The page of three days of a task: escalations, a review, a failure, and shadow pairs every day."""
    folder = tmp_path_factory.mktemp("page")
    now = datetime.now(timezone.utc)
    records, pairs = [], []
    for back in range(3):
        at = now - timedelta(days=back)
        records += [result(f"{back}-a{n}", at=at, tiers=("small",), confidence=0.6 + n / 100) for n in range(30)]
        records += [result(f"{back}-e{n}", "escalated", at=at, outcomes=("low_confidence", "accepted"),
                           confidence=0.2 + n / 50, cost=0.012) for n in range(10 + 5 * back)]
        records += [result(f"{back}-r", "needs_review", at=at, outcomes=("low_confidence",), tiers=("small",)),
                    result(f"{back}-f", "failed", at=at, outcomes=("error",), tiers=("small",))]
        pairs += [shadow(f"{back}-a{n}", agree=n % (4 + back) != 0, at=at) for n in range(12)]
    (folder / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    (folder / "shadow.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    html = folder / "stats.html"
    outcome = CliRunner().invoke(app, ["stats", "--results", str(folder / "results.jsonl"), "--shadow",
                                       str(folder / "shadow.jsonl"), "--html", str(html)])
    assert outcome.exit_code == 0, outcome.output
    return html


def laid_out_images(page: Path, tmp_path: Path) -> tuple[list[dict[str, str]], int]:
    """Each <img>'s probed attributes, and the page's height, from the DOM Chromium holds after load."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri()).stdout
    images = [dict(re.findall(r'data-(\w+)="([^"]*)"', tag)) for tag in re.findall(r"<img [^>]*>", dom)]
    height = re.search(r'<body data-height="(\d+)"', dom)
    assert height, "the probe did not run: " + dom[:300]
    return images, int(height.group(1))


def test_every_plot_decodes_and_is_drawn_on_the_screenshot(page, tmp_path):
    images, height = laid_out_images(page, tmp_path)
    assert len(images) == 5  # volume, escalation, cost, accuracy, confidence
    for image in images:
        width, tall = map(int, image["natural"].split("x"))
        assert width > 300 and tall > 200, image

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (height, WIDTH)
    assert pixels.std() > 20  # not a blank page
    for image in images:
        left, top, width, tall = map(int, image["box"].split(","))
        region = pixels[top:top + tall, left:left + width]
        assert region.shape[0] == tall and region.shape[1] == width, image
        colourful = (region.max(axis=2) - region.min(axis=2)) > 60  # bars, lines and markers, not grey text
        assert colourful.sum() > 200, f"{image['alt'] if 'alt' in image else image}: no plot drawn"
        assert (region.mean(axis=2) < 100).sum() > 200  # axes, ticks and labels are drawn too
