"""A :class:`~reports.document.Report` as a PDF (reportlab): a cover page, then each section with its
key figures, charts (reportlab's own graphics) and tables that break across pages under a repeated
header row; every page after the cover carries the report, scope and period at the top and
"Page N of M" at the bottom.

Text is set in DejaVu Sans (Debian's ``fonts-dejavu-core``), which covers any device name people
type (accents, Cyrillic, Greek, box drawing), where the PDF base fonts cover Latin-1 only.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Line, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as RLTable

from netpulse.errors import ConfigError
from reports.document import Chart, Definitions, KeyFigures, Report, Table, Text, fmt

__all__ = ["FONT_DIRS", "RenderedPdf", "render_pdf"]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"))
FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"

INK = colors.HexColor("#1b2733")
MUTED = colors.HexColor("#5f6b7a")
ACCENT = colors.HexColor("#1f4e79")
RULE = colors.HexColor("#c9d1db")
STRIPE = colors.HexColor("#f3f6f9")
BREACH_BG = colors.HexColor("#fde4e1")
BAD = colors.HexColor("#b3261e")
SERIES = [colors.HexColor(c) for c in ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                       "#17becf", "#7f7f7f")]
SEVERITY = {"critical": colors.HexColor("#c62828"), "warning": colors.HexColor("#f9a825"),
            "info": colors.HexColor("#1e88e5")}

PAGE = A4
MARGIN = 16 * mm
WIDTH = PAGE[0] - 2 * MARGIN
_NUMERIC = {"count", "pct", "pct2", "target", "pp", "device_h", "duration", "ms", "minutes", "number"}


def _register_fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(regular)))
            pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
            pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)
            return
    raise ConfigError("reports need the DejaVu Sans font (DejaVuSans.ttf and DejaVuSans-Bold.ttf) in "
                      f"{FONT_DIRS[0]}; on Debian: apt-get install fonts-dejavu-core")


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, textColor=INK)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9),
        "cell_r": ParagraphStyle("cell_r", parent=base, fontSize=7.5, leading=9, alignment=TA_RIGHT),
        "head": ParagraphStyle("head", parent=base, fontName=BOLD, fontSize=7.5, leading=9, textColor=colors.white),
        "head_r": ParagraphStyle("head_r", parent=base, fontName=BOLD, fontSize=7.5, leading=9,
                                 textColor=colors.white, alignment=TA_RIGHT),
        "h1": ParagraphStyle("h1", parent=base, fontName=BOLD, fontSize=16, leading=20, spaceBefore=2,
                             spaceAfter=8, textColor=ACCENT, keepWithNext=True),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=11, leading=14, spaceBefore=10,
                             spaceAfter=4, keepWithNext=True),
        "cover_title": ParagraphStyle("cover_title", parent=base, fontName=BOLD, fontSize=28, leading=34,
                                      textColor=ACCENT),
        "cover_big": ParagraphStyle("cover_big", parent=base, fontSize=15, leading=20),
        "cover_label": ParagraphStyle("cover_label", parent=base, fontSize=8.5, leading=11, textColor=MUTED),
        "fig_label": ParagraphStyle("fig_label", parent=base, fontSize=7.5, leading=9, textColor=MUTED),
        "fig_value": ParagraphStyle("fig_value", parent=base, fontName=BOLD, fontSize=14, leading=17),
        "fig_bad": ParagraphStyle("fig_bad", parent=base, fontName=BOLD, fontSize=14, leading=17, textColor=BAD),
        "term": ParagraphStyle("term", parent=base, fontName=BOLD, fontSize=8.5, leading=11),
        "def": ParagraphStyle("def", parent=base, fontSize=8.5, leading=11),
    }


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    content: bytes
    pages: int


class _NumberedCanvas(pdfcanvas.Canvas):
    """Draws the running header and "Page N of M" once the page count is known (at save)."""

    report: Report | None = None
    pages = 0  # set at save

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        type(self).pages = total
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            if number > 1:
                self._decorate(number, total)
            super().showPage()
        super().save()

    def _decorate(self, number: int, total: int) -> None:
        report = self.report
        assert report is not None
        top = PAGE[1] - MARGIN + 6 * mm
        self.setFont(BOLD, 8)
        self.setFillColor(ACCENT)
        self.drawString(MARGIN, top, f"NetPulse · {report.title}")
        self.setFont(FONT, 8)
        self.setFillColor(MUTED)
        self.drawRightString(PAGE[0] - MARGIN, top, f"{report.scope.label} · {report.period.label}")
        self.setStrokeColor(RULE)
        self.setLineWidth(0.5)
        self.line(MARGIN, top - 2.5 * mm, PAGE[0] - MARGIN, top - 2.5 * mm)
        bottom = MARGIN - 8 * mm
        self.line(MARGIN, bottom + 4 * mm, PAGE[0] - MARGIN, bottom + 4 * mm)
        generated = report.generated_at.astimezone(report.zone)
        self.drawString(MARGIN, bottom, f"{report.organization} · generated {generated:%Y-%m-%d %H:%M} "
                                        f"{report.period.tz}")
        self.drawRightString(PAGE[0] - MARGIN, bottom, f"Page {number} of {total}")


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


# --- blocks ----------------------------------------------------------------------------------------------
def _cover(report: Report, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    period = report.period
    zone = period.zone
    generated = report.generated_at.astimezone(zone)
    start, end = period.local(period.start), period.local(period.end)
    rows = [("Organization", report.organization), ("Scope", report.scope.label),
            ("Period", period.label),
            ("From", f"{start:%A %d %B %Y, %H:%M}"), ("To (not included)", f"{end:%A %d %B %Y, %H:%M}"),
            ("Time zone", period.zone_label), ("Generated", f"{generated:%Y-%m-%d %H:%M} {period.tz}")]
    info = RLTable([[_p(k, st["cover_label"]), _p(v, st["cover_big"])] for k, v in rows],
                   colWidths=[38 * mm, WIDTH - 38 * mm])
    info.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "BASELINE"), ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
                              ("LINEBELOW", (0, 0), (-1, -2), 0.4, RULE)]))
    contents = [_p(f"{i}. {s.title}", st["body"]) for i, s in enumerate(report.sections, start=1)]
    return [Spacer(1, 40 * mm), _p("NetPulse", st["cover_label"]), Spacer(1, 3 * mm),
            _p(report.title, st["cover_title"]), Spacer(1, 14 * mm), info, Spacer(1, 14 * mm),
            _p("Contents", st["h2"]), *contents]


def _key_figures(block: KeyFigures, report: Report, st: dict[str, ParagraphStyle]) -> Flowable:
    per_row = 4
    cells = []
    for f in block.items:
        cells.append([_p(f.label, st["fig_label"]),
                      _p(fmt(f.value, f.kind, report.zone), st["fig_bad" if f.bad else "fig_value"]),
                      _p(f.note, st["small"]) if f.note else Spacer(1, 1)])
    while len(cells) % per_row:
        cells.append([Spacer(1, 1)])
    grid = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    table = RLTable(grid, colWidths=[WIDTH / per_row] * per_row)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (-1, -1), 0.5, RULE),
        ("INNERGRID", (0, 0), (-1, -1), 0.5, RULE), ("BACKGROUND", (0, 0), (-1, -1), STRIPE),
        ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return table


def _widths(headers: Sequence[str], cells: Sequence[Sequence[str]], wraps: Sequence[bool]) -> list[float]:
    """Column widths that fit the page: columns that do not wrap (numbers, times) get their widest cell;
    text columns share the rest in proportion to their widest cell, never narrower than their header's
    longest word. Headers wrap at spaces only."""
    pad = 7.0
    sample = cells[:400]
    head = [max(pdfmetrics.stringWidth(w, BOLD, 7.5) for w in h.split() or [""]) + pad for h in headers]
    natural = [max([pdfmetrics.stringWidth(str(row[i]), FONT, 7.5) + pad for row in sample] + [head[i]])
               for i in range(len(headers))]
    fixed = sum(n for n, w in zip(natural, wraps, strict=True) if not w)
    flexible = [n if w else 0.0 for n, w in zip(natural, wraps, strict=True)]
    room = WIDTH - fixed
    if sum(flexible) <= room or not any(wraps):
        spare = (WIDTH - sum(natural)) / len(natural)
        return [n + spare for n in natural]
    floors = [max(head[i], 50.0) if wraps[i] else 0.0 for i in range(len(headers))]
    share = [max(floors[i], room * flexible[i] / sum(flexible)) if wraps[i] else natural[i]
             for i in range(len(headers))]
    excess = sum(share) - WIDTH
    if excess > 0:  # the floors took more than the room: take it back from the widest text column
        widest = max(range(len(share)), key=lambda i: share[i] if wraps[i] else -1.0)
        share[widest] -= excess
    return share


def _table(block: Table, report: Report, st: dict[str, ParagraphStyle], section_title: str = "") -> list[Flowable]:
    out: list[Flowable] = [] if block.title == section_title else [_p(block.title, st["h2"])]
    if block.note:
        out.append(_p(block.note, st["small"]))
        out.append(Spacer(1, 2 * mm))
    if not block.rows:
        out.append(_p(block.empty, st["body"]))
        return [KeepTogether(out)]
    shown = list(range(len(block.rows)))
    if block.pdf_limit is not None and len(shown) > block.pdf_limit:
        shown = sorted((block.pdf_rows or shown)[: block.pdf_limit])
        out.insert(len(out) - 1 if block.note else len(out),
                   _p(f"{len(shown):,} of {len(block.rows):,} shown; the CSV of this report lists them all.",
                      st["small"]))
    rows = [block.rows[i] for i in shown]
    flagged = {j for j, i in enumerate(shown) if i in block.flagged}
    numeric = [c.kind in _NUMERIC for c in block.columns]
    wraps = [c.kind == "text" for c in block.columns]
    header = [_p(c.title, st["head_r" if num else "head"]) for c, num in zip(block.columns, numeric, strict=True)]
    zone = report.zone
    texts = [[fmt(v, c.kind, zone) for v, c in zip(row, block.columns, strict=True)] for row in rows]
    widths = _widths([c.title for c in block.columns], texts, wraps)
    # Text goes in paragraphs, so long device names wrap inside their column; numbers stay plain strings
    # (a paragraph per cell would cost a thousand-device table seconds). Short text needs no paragraph.
    body = [[_p(t, st["cell"]) if wrap and pdfmetrics.stringWidth(t, FONT, 7.5) + 7 > width else t
             for t, wrap, width in zip(row, wraps, widths, strict=True)] for row in texts]
    table = RLTable([header, *body], colWidths=widths, repeatRows=1)
    style: list[tuple[Any, ...]] = [
        ("FONT", (0, 1), (-1, -1), FONT, 7.5), ("TEXTCOLOR", (0, 1), (-1, -1), INK),
        ("BACKGROUND", (0, 0), (-1, 0), ACCENT), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i, num in enumerate(numeric) if num]
    style += [("BACKGROUND", (0, i + 1), (-1, i + 1), STRIPE) for i in range(1, len(rows), 2)]
    style += [("BACKGROUND", (0, i + 1), (-1, i + 1), BREACH_BG) for i in sorted(flagged)]
    table.setStyle(TableStyle(style))
    return [*out, table]


def _axis_labels(axis: Any, size: float = 6.5) -> None:
    axis.labels.fontName = FONT
    axis.labels.fontSize = size
    axis.labels.fillColor = MUTED
    axis.strokeColor = RULE


def _value_axis(axis: Any, values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    known = [v for v in values if v is not None]
    low = lo if lo is not None else min([0.0, *known])
    high = hi if hi is not None else max([*known, 1.0]) * 1.1
    if high <= low:
        high = low + 1.0
    axis.valueMin, axis.valueMax = low, high
    span = high - low
    raw = span / 5
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 10 ** -len(str(int(1 / raw)))
    axis.valueStep = max(magnitude * round(raw / magnitude) or magnitude, 1e-9)
    if known and all(float(v).is_integer() for v in known) and low == 0:  # counts: whole steps
        axis.valueStep = max(1.0, round(axis.valueStep))
    _axis_labels(axis)
    axis.visibleGrid = True
    axis.gridStrokeColor = STRIPE
    return low, high


def _chart(block: Chart, st: dict[str, ParagraphStyle]) -> list[Flowable]:
    height = 62 * mm if block.kind != "hbars" else max(40 * mm, (len(block.labels) * 5.5 + 14) * mm / 1.6)
    drawing = Drawing(WIDTH, height)
    values = [v for _, vals in block.series for v in vals if v is not None]
    lo, hi = block.value_range
    if block.kind == "hbars":
        chart: Any = HorizontalBarChart()
        chart.x, chart.y, chart.width, chart.height = 62 * mm, 8 * mm, WIDTH - 72 * mm, height - 12 * mm
        chart.data = [[v if v is not None else 0.0 for v in vals] for _, vals in block.series]
        chart.categoryAxis.categoryNames = [_short(label, 34) for label in block.labels]
        chart.categoryAxis.reverseDirection = True
        low, high = _value_axis(chart.valueAxis, values, lo if lo is not None else 0.0, hi)
        chart.barLabelFormat = "%.2f"
        chart.barLabels.fontName, chart.barLabels.fontSize = FONT, 6.5
        chart.barLabels.boxAnchor = "w"
        chart.barLabels.dx = 3
    elif block.kind == "bars":
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 14 * mm, 12 * mm, WIDTH - 20 * mm, height - 20 * mm
        chart.data = [[v if v is not None else (lo or 0.0) for v in vals] for _, vals in block.series]
        many = len(block.labels) > 16
        step = max(1, len(block.labels) // 16)
        chart.categoryAxis.categoryNames = [lab if i % step == 0 else "" for i, lab in enumerate(block.labels)]
        chart.categoryAxis.visibleTicks = len(block.labels) <= 40
        if many:
            chart.categoryAxis.labels.angle = 45
            chart.categoryAxis.labels.boxAnchor = "ne"
        low, high = _value_axis(chart.valueAxis, values, lo, hi)
        chart.groupSpacing = 2
    else:
        chart = HorizontalLineChart()
        chart.x, chart.y, chart.width, chart.height = 14 * mm, 12 * mm, WIDTH - 20 * mm, height - 20 * mm
        chart.data = [[v for v in vals] for _, vals in block.series]
        chart.categoryAxis.categoryNames = list(block.labels)
        chart.categoryAxis.visibleTicks = len(block.labels) <= 40  # a comb of ticks says nothing
        chart.joinedLines = 1
        low, high = _value_axis(chart.valueAxis, values, lo, hi)
    _axis_labels(chart.categoryAxis, 6.5)
    for i in range(len(block.series)):
        color = SEVERITY.get(block.series[i][0], SERIES[i % len(SERIES)])
        if block.kind == "lines":
            chart.lines[i].strokeColor = color
            chart.lines[i].strokeWidth = 1.2
        else:
            chart.bars[i].fillColor = color
            chart.bars[i].strokeColor = None
    drawing.add(chart)
    if block.reference is not None and low <= block.reference[1] <= high:
        name, value = block.reference
        if block.kind == "hbars":
            x = chart.x + (value - low) / (high - low) * chart.width
            drawing.add(Line(x, chart.y, x, chart.y + chart.height, strokeColor=BAD, strokeDashArray=[3, 2]))
            drawing.add(String(x + 2, chart.y + chart.height + 2, f"{name} {value:g}", fontName=FONT, fontSize=6.5,
                               fillColor=BAD))
        else:
            y = chart.y + (value - low) / (high - low) * chart.height
            drawing.add(Line(chart.x, y, chart.x + chart.width, y, strokeColor=BAD, strokeDashArray=[3, 2]))
            drawing.add(String(chart.x + chart.width - 2, y + 2, f"{name} {value:g}", fontName=FONT, fontSize=6.5,
                               fillColor=BAD, textAnchor="end"))
    if len(block.series) > 1:
        legend = Legend()
        legend.x, legend.y = chart.x, height - 2
        legend.alignment = "right"
        legend.fontName, legend.fontSize = FONT, 6.5
        legend.columnMaximum = 1
        legend.deltax = 70
        legend.dxTextSpace = 3
        legend.colorNamePairs = [(SEVERITY.get(n, SERIES[i % len(SERIES)]), _short(n, 18))
                                 for i, (n, _) in enumerate(block.series)]
        drawing.add(legend)
    out: list[Flowable] = [_p(block.title, st["h2"])]
    if block.note:
        out.append(_p(block.note, st["small"]))
    return [KeepTogether([*out, drawing])]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _definitions(block: Definitions, st: dict[str, ParagraphStyle]) -> Flowable:
    rows = [[_p(term, st["term"]), _p(text, st["def"])] for term, text in block.items]
    table = RLTable(rows, colWidths=[38 * mm, WIDTH - 38 * mm])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return table


def render_pdf(report: Report) -> RenderedPdf:
    """The report as PDF bytes, with its page count."""
    _register_fonts()
    st = _styles()
    buffer = io.BytesIO()
    doc = BaseDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 4 * mm,
                          bottomMargin=MARGIN, title=f"{report.title}: {report.scope.label}, {report.period.label}",
                          author="NetPulse", subject=report.organization, creator="NetPulse")
    frame = Frame(MARGIN, MARGIN, WIDTH, PAGE[1] - 2 * MARGIN - 4 * mm, id="body", leftPadding=0, rightPadding=0,
                  topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate("cover", [frame]), PageTemplate("body", [frame])])
    story: list[Flowable] = [*_cover(report, st), NextPageTemplate("body"), PageBreak()]
    for index, section in enumerate(report.sections):
        if section.new_page and index > 0:
            story.append(PageBreak())
        else:
            story.append(CondPageBreak(60 * mm))
        story.append(_p(section.title, st["h1"]))
        for block in section.blocks:
            if isinstance(block, KeyFigures):
                story.append(_key_figures(block, report, st))
            elif isinstance(block, Table):
                if block.in_pdf:
                    story.extend(_table(block, report, st, section.title))
            elif isinstance(block, Chart):
                story.extend(_chart(block, st))
            elif isinstance(block, Text):
                story.append(Paragraph(block.text, st["body"]))
            elif isinstance(block, Definitions):
                story.append(_definitions(block, st))
            story.append(Spacer(1, 4 * mm))

    class Canvas(_NumberedCanvas):
        pass

    Canvas.report = report
    doc.build(story, canvasmaker=Canvas)
    return RenderedPdf(buffer.getvalue(), Canvas.pages)
