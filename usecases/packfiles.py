"""The inspection pack written as files: an Excel workbook (a sheet per part), a PDF a person reads (a page per
round), CSV files Norwegian Excel opens (`;`, UTF-8 with a BOM) and JSON. Every form shows names, question texts
and Oslo times, never internal keys.

The tabular parts are defined once (`tables`) and written by the XLSX and CSV writers; the PDF lays the same tables
out and adds a page per round. `progress(done, total, what)` is called as the parts are written."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hms import i18n
from hms.i18n import t
from usecases.inspection import Pack

FORMATS = ("xlsx", "pdf", "csv", "json")
FONTS = Path(__file__).resolve().parent / "fonts"
Progress = Callable[[int, int, str], None]
Cell = str | int | dt.date | dt.datetime | None


@dataclasses.dataclass(frozen=True)
class Table:
    """One part of the pack as rows: its name (a sheet, a CSV file), headers and column widths (characters)."""

    key: str
    title: str
    headers: tuple[str, ...]
    widths: tuple[int, ...]
    rows: list[tuple[Cell, ...]]


def _no_progress(_done: int, _total: int, _what: str) -> None:
    return None


def _yes(pack: Pack, flag: bool) -> str:
    return t(pack.locale, "pack.yes" if flag else "pack.no")


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    """Oslo wall-clock time without the zone (Excel has no time zones; the header says Oslo time)."""
    return moment.replace(tzinfo=None) if moment else None


def tables(pack: Pack) -> list[Table]:
    """The pack's tabular parts, in order: index, plan against done, rounds, measures, history, responsibilities."""
    lo = pack.locale

    def h(*keys: str) -> tuple[str, ...]:
        return tuple(t(lo, f"pack.col.{k}") for k in keys)

    rounds_rows: list[tuple[Cell, ...]] = []
    for r in pack.rounds:
        who = ", ".join(f"{p.name} ({p.role})" for p in r.participants)
        for a in r.answers or ():
            rounds_rows.append((r.task, r.scope, r.deadline, r.done_by, _naive(r.done_at), who, _naive(r.meeting),
                                a.question, a.answer, a.comment))
        if not r.answers:
            rounds_rows.append((r.task, r.scope, r.deadline, r.done_by, _naive(r.done_at), who, _naive(r.meeting),
                                None, None, None))
    return [
        Table("index", t(lo, "pack.index"), h("point", "requirement", "where"), (8, 45, 100),
              [(f"§ 5-{e.point}", e.requirement, e.where) for e in pack.index]),
        Table("plan", t(lo, "pack.sheet.plan"),
              h("task", "scope", "window", "deadline", "status", "done_by", "done_at", "registered",
                "registered_by"), (34, 30, 12, 12, 26, 22, 18, 12, 22),
              [(p.task, p.scope, p.window_start, p.deadline, t(lo, f"pack.plan.{p.status}"), p.done_by,
                _naive(p.done_at), _yes(pack, p.registered_by is not None), p.registered_by) for p in pack.plan]),
        Table("rounds", t(lo, "pack.sheet.rounds"),
              h("task", "scope", "deadline", "done_by", "done_at", "participants", "meeting", "question", "answer",
                "comment"), (24, 24, 12, 22, 18, 40, 18, 60, 14, 40), rounds_rows),
        Table("measures", t(lo, "pack.sheet.measures"),
              h("measure", "source", "description", "section", "owner", "deadline", "status", "created",
                "created_by", "round", "cim", "ea", "evidence"), (9, 24, 50, 26, 22, 12, 10, 18, 22, 40, 14, 14, 40),
              [(x.number, x.source, x.description, x.section, x.owner, x.deadline, x.status, _naive(x.created_at),
                x.created_by, x.round, x.cim_ref, x.ea_ticket, "; ".join(x.evidence)) for x in pack.measures]),
        Table("history", t(lo, "pack.sheet.history"), h("measure", "when", "who", "what"), (9, 18, 24, 80),
              [(x.number, _naive(e.at), e.who, e.what) for x in pack.measures for e in x.history]),
        Table("responsibilities", t(lo, "pack.sheet.responsibilities"), h("role", "scope", "name", "email", "title"),
              (34, 30, 24, 32, 30),
              [(r.role, r.scope, r.name, r.email, r.title) for r in pack.responsibilities]),
    ]


def cover_lines(pack: Pack) -> list[tuple[str, str]]:
    """The cover: unit, period, section, generated when and by whom."""
    lo = pack.locale
    return [(t(lo, "pack.unit"), pack.unit),
            (t(lo, "pack.period"), i18n.format_period(pack.start, pack.end, lo)),
            (t(lo, "pack.section"), pack.section or t(lo, "pack.all_sections")),
            (t(lo, "pack.generated"), f"{i18n.format_date(pack.generated_at.date(), lo)} "
                                      f"{pack.generated_at:%H:%M}"),
            (t(lo, "pack.generated_by"), pack.generated_by)]


def _text(value: Cell, locale: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return f"{value:%d.%m.%Y %H:%M}"
    if isinstance(value, dt.date):
        return f"{value:%d.%m.%Y}"
    return str(value)


# -- the writers ---------------------------------------------------------------------------------------------


def csv_paths(out: Path) -> list[Path]:
    """The CSV files of a pack written to `out`: the plan against done there, the other parts beside it."""
    keys = ("plan", "rounds", "measures", "history", "responsibilities", "index")
    return [out if k == "plan" else out.with_name(f"{out.stem}-{k}{out.suffix or '.csv'}") for k in keys]


def outputs(out: Path, fmt: str) -> list[Path]:
    """Every file an export to `out` writes (to refuse overwriting any of them)."""
    return csv_paths(out) if fmt == "csv" else [out]


def write(pack: Pack, fmt: str, out: Path, progress: Progress = _no_progress) -> list[Path]:
    """Write the pack to `out` in one of FORMATS; returns the files written."""
    if fmt == "xlsx":
        write_xlsx(pack, out, progress)
    elif fmt == "pdf":
        write_pdf(pack, out, progress)
    elif fmt == "csv":
        return write_csv(pack, out, progress)
    elif fmt == "json":
        write_json(pack, out)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return [out]


def write_csv(pack: Pack, out: Path, progress: Progress = _no_progress) -> list[Path]:
    """A CSV file per part, `;`-separated, UTF-8 with a BOM (Norwegian Excel's list separator and encoding)."""
    parts = {tb.key: tb for tb in tables(pack)}
    paths = csv_paths(out)
    for n, (path, key) in enumerate(zip(paths, ("plan", "rounds", "measures", "history", "responsibilities",
                                                "index"), strict=True)):
        tb = parts[key]
        with path.open("w", newline="", encoding="utf-8-sig") as f:
            writer = csv.writer(f, delimiter=";")
            writer.writerow(tb.headers)
            writer.writerows([_text(c, pack.locale) for c in row] for row in tb.rows)
        progress(n + 1, len(paths), tb.title)
    return paths


def write_xlsx(pack: Pack, out: Path, progress: Progress = _no_progress) -> None:
    """A workbook: the cover with the § 5 index, then a sheet per part, header frozen, dates as Excel dates."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    cover = wb.active
    assert cover is not None
    cover.title = t(pack.locale, "pack.sheet.cover")
    cover.append([t(pack.locale, "pack.title")])
    cover["A1"].font = Font(bold=True, size=14)
    for label, value in cover_lines(pack):
        cover.append([label, value])
    cover.append([])
    parts = tables(pack)
    index, rest = parts[0], parts[1:]
    cover.append([index.title])
    cover.cell(cover.max_row, 1).font = Font(bold=True)
    cover.append(list(index.headers))
    for row in index.rows:
        cover.append(list(row))
    for col, width in zip("ABC", (22, 50, 100), strict=True):
        cover.column_dimensions[col].width = width
    for row in cover.iter_rows():
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for n, tb in enumerate(rest):
        ws = wb.create_sheet(tb.title[:31])
        ws.append(list(tb.headers))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in tb.rows:
            ws.append(list(row))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
        for i, width in enumerate(tb.widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, dt.datetime):
                    cell.number_format = "DD.MM.YYYY HH:MM"
                elif isinstance(cell.value, dt.date):
                    cell.number_format = "DD.MM.YYYY"
        progress(n + 1, len(rest), tb.title)
    wb.save(out)


def write_json(pack: Pack, out: Path) -> None:
    """The raw record (as before: rounds, answers, findings, measures with who and when) and the pack's parts."""
    def plain(value: Any) -> Any:
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    parts = {k: [dataclasses.asdict(x) for x in getattr(pack, k)]
             for k in ("plan", "rounds", "measures", "responsibilities", "index")}
    body = {**pack.records, "pack": {"locale": pack.locale, "unit": pack.unit, "section": pack.section,
                                     "generated_at": pack.generated_at, "generated_by": pack.generated_by, **parts}}
    out.write_text(json.dumps(body, ensure_ascii=False, indent=2, default=plain) + "\n", encoding="utf-8")


def write_pdf(pack: Pack, out: Path, progress: Progress = _no_progress) -> None:
    """A PDF for a person: the cover and index, the plan against done, a page per round, the measures with their
    history, and the responsibilities. DejaVu Sans is embedded, so æ, ø, å and dashes render everywhere."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    lo = pack.locale
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(t(lo, "pack.title"))
    pdf.set_author(pack.generated_by)
    head = FontFace(emphasis="BOLD", fill_color=(225, 230, 240))

    def heading(text: str, size: int = 14) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("DejaVu", "", 8)

    def table(headers: tuple[str, ...], rows: list[tuple[Cell, ...]], widths: tuple[int, ...]) -> None:
        pdf.set_font("DejaVu", "", 8)
        with pdf.table(col_widths=widths, headings_style=head, line_height=4.5, text_align="LEFT",
                       repeat_headings=1) as tb:
            tb.row(list(headers))
            for row in rows:
                tb.row([_text(c, lo) for c in row])

    parts = {tb.key: tb for tb in tables(pack)}
    steps = 4 + len(pack.rounds)
    pdf.add_page()
    heading(t(lo, "pack.title"), 18)
    pdf.set_font("DejaVu", "", 11)
    for label, value in cover_lines(pack):
        pdf.cell(50, 7, label)
        pdf.cell(0, 7, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    heading(parts["index"].title, 12)
    table(parts["index"].headers, parts["index"].rows, parts["index"].widths)
    progress(1, steps, parts["index"].title)

    for n, key in enumerate(("plan", "measures", "responsibilities")):
        tb = parts[key]
        pdf.add_page()
        heading(tb.title)
        if key == "measures":
            table(tb.headers[:12], [row[:12] for row in tb.rows], tb.widths[:12])
            history = parts["history"]
            pdf.ln(4)
            heading(history.title, 12)
            table(history.headers, history.rows, history.widths)
        else:
            table(tb.headers, tb.rows, tb.widths)
        progress(2 + n, steps, tb.title)
        if key == "plan":
            _pdf_rounds(pdf, pack, heading, table, progress, steps)
    pdf.output(str(out))


def _pdf_rounds(pdf: Any, pack: Pack, heading: Callable[..., None], table: Callable[..., None],
                progress: Progress, steps: int) -> None:
    """A page per round: who did it when, who took part, and every item with its answer and comment."""
    lo = pack.locale
    if not pack.rounds:
        pdf.add_page()
        heading(t(lo, "pack.sheet.rounds"))
        pdf.multi_cell(0, 6, t(lo, "pack.no_rounds"))
    for n, r in enumerate(pack.rounds):
        pdf.add_page()
        heading(t(lo, "pack.round.page", task=r.task, scope=r.scope))
        pdf.set_font("DejaVu", "", 10)
        lines = [f"{t(lo, 'pack.col.deadline')}: {i18n.format_date(r.deadline, lo)}"]
        if r.done_at:
            lines.append(t(lo, "pack.round.done", who=r.done_by or "", when=_text(r.done_at, lo)))
        if r.registered_by:
            lines.append(f"{t(lo, 'pack.col.registered_by')}: {r.registered_by}")
        if r.meeting:
            lines.append(f"{t(lo, 'pack.col.meeting')}: {_text(r.meeting, lo)}")
        for p in r.participants:
            state = (t(lo, "pack.participant.confirmed", when=_text(p.confirmed_at, lo)) if p.confirmed_at
                     else t(lo, "pack.participant.waiting"))
            lines.append(f"{t(lo, 'pack.col.participants')}: {p.name} ({p.role}) – {state}")
        for line in lines:
            pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        if r.answers:
            table(tuple(t(lo, f"pack.col.{k}") for k in ("question", "answer", "comment")),
                  [(a.question, a.answer, a.comment) for a in r.answers], (140, 30, 100))
        progress(5 + n, steps, r.task)


# -- the sections' annual reports for LAMU -------------------------------------------------------------------

REPORT_FORMATS = ("xlsx", "pdf")


def _report_status(report: dict[str, Any], locale: str) -> str:
    """"Levert av … når" or "Ikke levert (frist …)": what the overview and each section's page say."""
    if not report["submitted"]:
        return t(locale, "lamu.not_submitted", due=i18n.format_date(dt.date.fromisoformat(report["due"]), locale))
    at = dt.datetime.fromisoformat(report["submitted_at"])
    return t(locale, "lamu.submitted", who=report["submitted_by_name"],
             when=f"{i18n.format_date(at.date(), locale)} {at:%H:%M}")


def _report_overview(found: dict[str, Any], locale: str) -> tuple[tuple[str, ...], list[tuple[Cell, ...]]]:
    headers = tuple(t(locale, f"lamu.col.{k}") for k in ("section", "leader", "due", "status"))
    return headers, [(r["section_name"], r.get("leader_name") or r.get("leader"), dt.date.fromisoformat(r["due"]),
                      _report_status(r, locale)) for r in found["reports"]]


def write_reports(found: dict[str, Any], fmt: str, out: Path, generated_at: dt.datetime, locale: str) -> None:
    """Every section's annual report on a year (`AnnualReports.reports_for_year`) as one document for LAMU: an
    overview of who has submitted and who has not (with the deadline), then a sheet (XLSX) or a page (PDF) per
    section with each part of the report as submitted."""
    if fmt == "xlsx":
        _reports_xlsx(found, out, generated_at, locale)
    elif fmt == "pdf":
        _reports_pdf(found, out, generated_at, locale)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _sheet_title(name: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the workbook."""
    base = "".join("-" if c in "[]:*?/\\" else c for c in name)[:31] or "-"
    title, n = base, 2
    while title.lower() in taken:
        title = f"{base[:28]} {n}"
        n += 1
    taken.add(title.lower())
    return title


def _reports_xlsx(found: dict[str, Any], out: Path, generated_at: dt.datetime, locale: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    taken: set[str] = set()
    ws.title = _sheet_title(t(locale, "lamu.overview"), taken)
    ws.append([t(locale, "lamu.title", year=found["year"])])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([t(locale, "lamu.subtitle", when=f"{i18n.format_date(generated_at.date(), locale)} "
                                                f"{generated_at:%H:%M}")])
    ws.append([])
    headers, rows = _report_overview(found, locale)
    ws.append(list(headers))
    for cell in ws[4]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(list(row))
        ws.cell(ws.max_row, 3).number_format = "DD.MM.YYYY"
    if not rows:
        ws.append([t(locale, "lamu.none", year=found["year"])])
    ws.freeze_panes = "A5"
    for col, width in zip("ABCD", (36, 26, 12, 50), strict=True):
        ws.column_dimensions[col].width = width
    for report in found["reports"]:
        sheet = wb.create_sheet(_sheet_title(report["section_name"], taken))
        sheet.append([t(locale, "report.title", year=found["year"], section=report["section_name"])])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append([_report_status(report, locale)])
        sheet.append([])
        sheet.append([t(locale, "lamu.col.part"), t(locale, "lamu.col.text")])
        for cell in sheet[4]:
            cell.font = Font(bold=True)
        for part in report.get("parts", []):
            sheet.append([part["label"], part["text"]])
        sheet.freeze_panes = "A5"
        sheet.column_dimensions["A"].width = 40
        sheet.column_dimensions["B"].width = 100
        for row in sheet.iter_rows(min_row=5):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.save(out)


def _reports_pdf(found: dict[str, Any], out: Path, generated_at: dt.datetime, locale: str) -> None:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="portrait", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    title = t(locale, "lamu.title", year=found["year"])
    pdf.set_title(title)

    def heading(text: str, size: int) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    pdf.add_page()
    heading(title, 18)
    pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(0, 6, t(locale, "lamu.subtitle", when=f"{i18n.format_date(generated_at.date(), locale)} "
                                                         f"{generated_at:%H:%M}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    headers, rows = _report_overview(found, locale)
    if rows:
        with pdf.table(col_widths=(55, 40, 25, 70), headings_style=FontFace(emphasis="BOLD",
                       fill_color=(225, 230, 240)), line_height=5, text_align="LEFT") as tb:
            tb.row(list(headers))
            for row in rows:
                tb.row([_text(c, locale) for c in row])
    else:
        pdf.multi_cell(0, 6, t(locale, "lamu.none", year=found["year"]))
    for report in found["reports"]:
        pdf.add_page()
        heading(t(locale, "report.title", year=found["year"], section=report["section_name"]), 14)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, _report_status(report, locale), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        for part in report.get("parts", []):
            pdf.set_font("DejaVu", "B", 11)
            pdf.multi_cell(0, 6, part["label"], new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("DejaVu", "", 10)
            pdf.multi_cell(0, 5.5, part["text"] or "–", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(out))
