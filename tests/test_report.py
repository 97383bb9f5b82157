"""The report renderer (Markdown and self-contained HTML), its figures, and the page as a
real browser draws it (Debian's Chromium, headless; skipped where it is not installed)."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from dnabird.errors import InputError
from dnabird.report import PNG_SIGNATURE, Figure, Section, Table, write_report

RED, BLUE = (230, 20, 20), (20, 40, 230)
CHROMIUM = Path("/usr/bin/chromium")
SIZES_SCRIPT = (
    '<script>window.addEventListener("load", () => document.body.setAttribute("data-sizes", '
    'Array.from(document.images, i => i.naturalWidth + "x" + i.naturalHeight).join(" ")));'
    "</script>"
)


def _png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> Path:
    """Write a solid ``rgb`` PNG of ``width`` x ``height`` pixels (8-bit RGB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def _sections(folder: Path) -> list[Section]:
    red = _png(folder / "red.png", 400, 200, RED)
    blue = _png(folder / "pictures" / "blue.png", 300, 300, BLUE)
    return [
        Section(
            "First <section>",
            "One paragraph with <b>markup</b> & an ampersand.\n\nA second paragraph.",
            (
                Figure(red, "A red rectangle"),
                Table(("name", "value | unit"), (("a|b", "1,234.5"), ("c", "n/a")), "Numbers"),
            ),
        ),
        Section("Second", "Text.", (Figure(blue, "A blue square [1]"),)),
    ]


def test_markdown_links_pictures_and_escapes_tables(tmp_path: Path) -> None:
    markdown, page = write_report(tmp_path, "Report title", "The intro.", _sections(tmp_path))
    assert (markdown.name, page.name) == ("report.md", "report.html")
    text = markdown.read_text()
    assert text.startswith("# Report title\n\nThe intro.\n")
    assert "## First <section>" in text and "## Second" in text
    assert "![A red rectangle](red.png)" in text
    assert "![A blue square \\[1\\]](pictures/blue.png)" in text  # relative to the folder
    assert "| name | value \\| unit |" in text
    assert "| a\\|b | 1,234.5 |" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pictures",
        "red.png",
        "report.html",
        "report.md",
    ]  # nothing else: no temporary file left behind


def test_html_embeds_every_picture_and_escapes_text(tmp_path: Path) -> None:
    sections = _sections(tmp_path)
    _, page = write_report(tmp_path, "A <title>", "Intro & more.", sections)
    text = page.read_text()
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', text)
    assert len(sources) == 2
    for source, figure in zip(sources, (sections[0].items[0], sections[1].items[0]), strict=True):
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]) == figure.path.read_bytes()
    assert 'src="' not in re.sub(r'src="data:image/png;base64,[^"]+"', "", text)  # no links out
    assert "<title>A &lt;title&gt;</title>" in text and "<h2>First &lt;section&gt;</h2>" in text
    assert "<p>One paragraph with &lt;b&gt;markup&lt;/b&gt; &amp; an ampersand.</p>" in text
    assert "<p>A second paragraph.</p>" in text
    assert "<td class=number>1,234.5</td>" in text and "<td>n/a</td>" in text


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "report figure not found"),
        ("outside", "must lie inside the report folder"),
        ("not_png", "must be a PNG file"),
        ("short_row", "row 1 has 1 cells for 2 columns"),
    ],
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(
    tmp_path: Path, case: str, message: str
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    items: tuple = ()
    if case == "missing":
        items = (Figure(folder / "absent.png", "x"),)
    elif case == "outside":
        items = (Figure(_png(tmp_path / "elsewhere.png", 2, 2, RED), "x"),)
    elif case == "not_png":
        (folder / "fake.png").write_text("GIF89a")
        items = (Figure(folder / "fake.png", "x"),)
    else:
        items = (Table(("a", "b"), (("only one",),), "short"),)
    with pytest.raises(InputError, match=re.escape(message)) as error:
        write_report(folder, "t", "i", [Section("s", "t", items)])
    assert "\n" not in str(error.value)
    assert not (folder / "report.md").exists() and not (folder / "report.html").exists()


# ------------------------------------------------------------------ the report's figures
def test_length_histograms_picture(tmp_path: Path) -> None:
    from dnabird.plots import length_histogram_figure, plot_length_histograms

    documents = np.array([40_000, 55_000, 70_000, 61_000])
    token_bp = np.array([0, 10, 30, 60])  # 10 tokens of 1 bp, 30 of 2 bp, 60 of 3 bp
    figure = length_histogram_figure(documents, token_bp, "Corpus")
    docs, tokens = figure.axes
    assert docs.get_xlabel() == "document length (kbp)" and docs.get_ylabel() == "documents"
    assert tokens.get_xlabel() == "token length (bp)"
    assert tokens.get_ylabel() == "tokens (thousands)"
    assert (
        docs.get_title() == "Documents (4)"
        and tokens.get_title() == "Tokens (100; the longest 3 bp)"
    )
    assert figure._suptitle.get_text() == "Corpus"
    legend = [t.get_text() for t in tokens.get_legend().get_texts()]
    assert legend == ["mean 2.50 bp per token"]  # (10 + 60 + 180) / 100
    assert [t.get_text() for t in docs.get_legend().get_texts()] == ["median 58.0 kbp"]
    path = plot_length_histograms(documents, token_bp, tmp_path / "lengths.png", "Corpus")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_track_auroc_picture_marks_undefined_tracks(tmp_path: Path) -> None:
    from dnabird.plots import plot_track_aurocs, track_auroc_figure

    def report(aurocs):
        return {
            "features": [
                {"id": name, "positives": p, "auroc": a, "auroc_ci": None if a is None else ci}
                for (name, p), a, ci in zip(
                    (("CTCF", 5), ("ATAC", 0)), aurocs, ([0.6, 0.9], None), strict=True
                )
            ]
        }

    reports = {"dnabird": report([0.75, None]), "kmer_logreg": report([0.65, None])}
    figure = track_auroc_figure(reports, "Tracks")
    (ax,) = figure.axes
    assert ax.get_title() == "Tracks"
    assert ax.get_xlabel() == "test AUROC (whiskers: 95% bootstrap CI)"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["CTCF\n(5 test positives)", "ATAC\n(0 test positives)"]
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == [0.65, 0.75]  # a bar per defined AUROC, none for the undefined track
    assert [t.get_text() for t in ax.texts] == ["undefined", "undefined"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["dnabird", "kmer_logreg", "chance (0.5)"]
    assert plot_track_aurocs(reports, tmp_path / "t.png", "T").read_bytes()[:8] == PNG_SIGNATURE


def test_metric_bars_picture_prints_each_value(tmp_path: Path) -> None:
    from dnabird.plots import metric_bars_figure, plot_metric_bars

    reports = {
        "model": {
            "metrics": {"f1": 0.8, "auroc": 0.9},
            "ci95": {"f1": [0.7, 0.85], "auroc": [0.8, 0.95]},
        },
        "baseline": {
            "metrics": {"f1": 0.6, "auroc": 0.7},
            "ci95": {"f1": [0.5, 0.7], "auroc": [0.6, 0.8]},
        },
    }
    figure = metric_bars_figure(reports, ("f1", "auroc"), "Test split")
    (ax,) = figure.axes
    assert ax.get_title() == "Test split"
    assert ax.get_ylabel() == "test value (whiskers: 95% bootstrap CI)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["F1", "AUROC"]
    assert sorted(round(p.get_height(), 3) for p in ax.patches) == [0.6, 0.7, 0.8, 0.9]
    assert sorted(t.get_text() for t in ax.texts) == ["0.600", "0.700", "0.800", "0.900"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["model", "baseline"]
    path = plot_metric_bars(reports, ("f1",), tmp_path / "bars.png", "T")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


# ------------------------------------------------------------------- a real browser
def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="Chromium not installed (apt-get install chromium)"
)
def test_chromium_draws_every_embedded_picture(tmp_path: Path) -> None:
    """The page opens from a file with nothing beside it, both pictures decode to their
    sizes and are drawn: the screenshot holds many pixels of each picture's colour."""
    from PIL import Image

    folder = tmp_path / "run"
    _, page = write_report(folder, "Browser check", "Two pictures.", _sections(folder))
    alone = tmp_path / "alone" / "report.html"  # without the PNG files beside it
    alone.parent.mkdir()
    shutil.copy(page, alone)
    # a copy that records, once loaded, the size each picture decoded to
    probe = tmp_path / "alone" / "probe.html"
    probe.write_text(page.read_text().replace("</body>", SIZES_SCRIPT + "</body>"))
    dom = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile1"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', dom.stdout)) == 2
    assert re.search(r'data-sizes="([^"]*)"', dom.stdout).group(1) == "400x200 300x300"
    shot = tmp_path / "shot.png"
    run = _chromium(
        f"--screenshot={shot}",
        "--window-size=1200,3000",
        "--hide-scrollbars",
        alone.as_uri(),
        profile=tmp_path / "profile2",
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)  # [H, W, 3]

    def count(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= 12).sum())

    assert count(RED) > 0.8 * 400 * 200  # drawn at its size (the page is wide enough)
    assert count(BLUE) > 0.8 * 300 * 300
    assert count((255, 255, 255)) < pixels.shape[0] * pixels.shape[1]  # not blank
