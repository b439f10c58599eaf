"""Spreadsheets in and out of the import: read a CSV or XLSX file into rows of cells, and write
the template and the file of rows with errors. No Django models here: the rules a row must pass
are the services' (``plans.services.imports``).

Files as people have them: CSV in UTF-8 (with or without a byte-order mark) or Windows-1252,
with ``,``, ``;`` or tab between cells (the delimiter is the one that makes the most known
column names of the header line); XLSX read with openpyxl in read-only mode, using the values
Excel saved with the file for formulas (a formula without a saved value is refused: its cell is
reported, see ``Sheet.formulas_without_value``). Empty rows, and columns whose header is not one
of ours, are ignored; header names are matched case-insensitively through ``HEADER_ALIASES``.
"""

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time

#: Refused above this size: a day of a large depot is a few hundred kB.
MAX_FILE_BYTES = 5 * 1024 * 1024
#: Refused when an .xlsx unpacks to more than this: 10,000 rows of plans are a few MB of XML.
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
#: Refused above this many rows with content (the header aside).
MAX_ROWS = 10_000

#: The template's columns, in order, as its header writes them.
TEMPLATE_HEADERS = {
    "site": "site",
    "vehicle": "vehicle",
    "start": "start",
    "end": "end",
    "expected_range_km": "expected range km",
    "average_consumption": "average consumption",
    "expected_charge_kwh": "expected charge kWh",
    "note": "note",
}
#: Every header a column is known by, normalised (lower case, words only). Add another
#: language's names here and nowhere else.
HEADER_ALIASES = {
    "site": ("site", "location", "location id", "mint location id", "locationid", "depot"),
    "vehicle": ("vehicle", "bus", "fleet number", "vehicle name"),
    "start": ("start", "start site time", "start local", "scheduled start", "arrival"),
    "end": ("end", "end site time", "end local", "scheduled end", "departure"),
    "expected_range_km": ("expected range km", "expected range", "range km", "range"),
    "average_consumption": (
        "average consumption",
        "average consumption kwh 100 km",
        "consumption",
        "consumption kwh 100 km",
    ),
    "expected_charge_kwh": ("expected charge kwh", "expected charge", "charge kwh", "charge"),
    "note": ("note", "note to mint", "status", "comment"),
}
#: Columns without which a sheet is not the template.
REQUIRED_COLUMNS = ("site", "start", "end")
_ALIAS_TO_COLUMN = {alias: column for column, names in HEADER_ALIASES.items() for alias in names}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OLE_MARK = "EncryptionInfo".encode("utf-16-le")
_DELIMITERS = (";", ",", "\t")

#: A cell as read: text (CSV, XLSX text cells), a number or a datetime (XLSX), or nothing.
Cell = str | int | float | datetime | date | time | None


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message says why, for the dispatcher."""


@dataclass
class Sheet:
    """A file's header and rows, before any rule is applied."""

    file_format: str
    #: The header cells as written in the file (for messages and the errors file).
    headers: list[str]
    #: Our column → its index in each row.
    columns: dict[str, int]
    #: (row number in the file as a spreadsheet numbers it, cells), empty rows left out.
    rows: list[tuple[int, list[Cell]]]
    delimiter: str = ""
    encoding: str = ""
    #: Headers of columns that are not ours, ignored.
    ignored: list[str] = field(default_factory=list)
    #: (row number, column) of formula cells the file holds no saved value for.
    formulas_without_value: set[tuple[int, str]] = field(default_factory=set)
    #: How many cells were formulas whose saved values were used.
    formulas_used: int = 0


def normalise_header(text: object) -> str:
    """``"Expected range (km)"`` → ``"expected range km"``: what ``HEADER_ALIASES`` holds."""
    return " ".join(re.findall(r"\w+", str(text or "").lower()))


def too_large(size: int) -> str:
    return (
        f"The file is {size / 1024 / 1024:.1f} MB; at most {MAX_FILE_BYTES // 1024 // 1024} MB "
        f"can be imported. Split it into smaller files."
    )


def sheet_read(*, name: str, data: bytes) -> Sheet:
    """Read an uploaded file. Raises ``ImportFileError`` with a plain reason."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(too_large(len(data)))
    if not data.strip():
        raise ImportFileError("The file is empty.")
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_OLE_MARK in data:
            raise ImportFileError(
                "The workbook is protected by a password, so it cannot be read. Save a copy "
                "without the password (File → Info → Protect Workbook) and upload that."
            )
        raise ImportFileError(
            "This is an old Excel file (.xls). Save it as an Excel workbook (.xlsx) or as CSV "
            "and upload that."
        )
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data)
    if name.lower().endswith((".xlsx", ".xlsm")):
        raise ImportFileError("The file is not a readable Excel workbook (.xlsx).")
    return _read_csv(data)


def _columns(header: list[Cell]) -> tuple[dict[str, int], list[str]]:
    """Our columns by index and the headers that are none of ours. The first of two columns
    with the same meaning wins."""
    columns: dict[str, int] = {}
    ignored = []
    for index, cell in enumerate(header):
        column = _ALIAS_TO_COLUMN.get(normalise_header(cell))
        if column and column not in columns:
            columns[column] = index
        elif str(cell or "").strip():
            ignored.append(str(cell).strip())
    return columns, ignored


def _require_template(columns: dict[str, int], headers: list[str]) -> None:
    missing = [TEMPLATE_HEADERS[c] for c in REQUIRED_COLUMNS if c not in columns]
    if "expected_range_km" not in columns and "expected_charge_kwh" not in columns:
        missing.append("expected range km or expected charge kWh")
    if missing:
        found = ", ".join(h for h in headers if h.strip()) or "nothing"
        raise ImportFileError(
            f"This sheet is not the import template: the column(s) {', '.join(missing)} are "
            f"missing (its first row has {found}). Download the template and copy your rows "
            f"into it."
        )


def _is_empty(cells: list[Cell]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _with_content(
    rows: list[tuple[int, list[Cell]]], columns: dict[str, int]
) -> list[tuple[int, list[Cell]]]:
    """Rows with something in one of our columns (a remark beside the table is no row)."""
    indexes = list(columns.values())
    return [
        (number, cells)
        for number, cells in rows
        if not _is_empty([cells[i] for i in indexes if i < len(cells)])
    ]


def _too_many_rows() -> ImportFileError:
    return ImportFileError(
        f"The file has more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} can be imported at "
        f"once. Split it into smaller files."
    )


# CSV -----------------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "UTF-8 with BOM", data[3:]
    else:
        encoding = "UTF-8"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text, encoding = data.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            raise ImportFileError(
                "The file cannot be read as text (neither UTF-8 nor Windows-1252). Save it as "
                "CSV (UTF-8) or as an Excel workbook and upload it again."
            ) from None
    if "\x00" in text:
        raise ImportFileError(
            "The file cannot be read: it is neither CSV text nor an Excel workbook (.xlsx)."
        )
    return text, encoding


def _read_csv(data: bytes) -> Sheet:
    text, encoding = _decode(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    best = max(
        _DELIMITERS,
        key=lambda d: (len(_columns(next(csv.reader([first], delimiter=d)))[0]), first.count(d)),
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=best)
    header: list[Cell] | None = None
    number = 0
    rows: list[tuple[int, list[Cell]]] = []
    try:
        for cells in reader:
            number += 1
            if _is_empty(cells):
                continue
            if header is None:
                header = cells
                continue
            if len(rows) == MAX_ROWS:
                raise _too_many_rows()
            rows.append((number, cells))
    except csv.Error as exc:
        raise ImportFileError(f"Row {number + 1} cannot be read as CSV: {exc}.") from None
    headers = [str(h).strip() for h in header or []]
    columns, ignored = _columns(headers)
    _require_template(columns, headers)
    rows = _with_content(rows, columns)
    return Sheet("csv", headers, columns, rows, delimiter=best, encoding=encoding, ignored=ignored)


# XLSX ----------------------------------------------------------------------------------------


def _has_formulas(data: bytes) -> bool:
    """Whether any worksheet holds a formula (``<f>`` elements), read from the zip directly so
    the common file without one is parsed once. Refuses a workbook that unpacks to far more
    than a sheet of plans can be (a "zip bomb")."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
            raise ImportFileError(
                f"The workbook unpacks to more than {MAX_UNPACKED_BYTES // 1024 // 1024} MB, "
                f"far more than {MAX_ROWS:,} rows of plans. Save only the sheet of plans."
            )
        for entry in archive.namelist():
            if entry.startswith("xl/worksheets/") and entry.endswith(".xml"):
                with archive.open(entry) as part:
                    tail = b""
                    while chunk := part.read(1 << 20):
                        window = tail + chunk
                        if b"<f>" in window or b"<f " in window:
                            return True
                        tail = window[-2:]
    return False


def _worksheet(workbook):
    names = {ws.title.lower(): ws for ws in workbook.worksheets}
    if "plans" in names:
        return names["plans"]
    return next((ws for ws in workbook.worksheets if ws.title.lower() != "instructions"), None)


def _read_xlsx(data: bytes) -> Sheet:
    from openpyxl import load_workbook

    try:
        formulas = _has_formulas(data)
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ImportFileError:
        raise
    except Exception:  # openpyxl raises many kinds for a zip that is not a workbook
        raise ImportFileError(
            "The file is not a readable Excel workbook (.xlsx). Open it in Excel, save it "
            "again as .xlsx or CSV, and upload that."
        ) from None
    try:
        worksheet = _worksheet(workbook)
        if worksheet is None:
            raise ImportFileError("The workbook has no sheet of plans.")
        header: list[Cell] | None = None
        rows: list[tuple[int, list[Cell]]] = []
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = list(values)
            if _is_empty(cells):
                continue
            if header is None:
                header = cells
                continue
            if len(rows) == MAX_ROWS:
                raise _too_many_rows()
            rows.append((number, cells))
        title = worksheet.title
    finally:
        workbook.close()
    headers = [str(h).strip() if h is not None else "" for h in header or []]
    columns, ignored = _columns(headers)
    _require_template(columns, headers)
    sheet = Sheet("xlsx", headers, columns, _with_content(rows, columns), ignored=ignored)
    if formulas:
        _note_formulas(data, title, sheet)
    return sheet


def _note_formulas(data: bytes, title: str, sheet: Sheet) -> None:
    """Read the sheet's formulas (a second pass, only for a file that has any): a formula cell
    whose saved value is empty is refused; the others' saved values are used."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        values = {number: cells for number, cells in sheet.rows}
        names = {index: column for column, index in sheet.columns.items()}
        for number, row in enumerate(workbook[title].iter_rows(values_only=True), start=1):
            saved = values.get(number)
            if saved is None:
                continue
            for index, column in names.items():
                if index < len(row) and isinstance(row[index], str) and row[index][:1] == "=":
                    if index >= len(saved) or saved[index] in (None, ""):
                        sheet.formulas_without_value.add((number, column))
                    else:
                        sheet.formulas_used += 1
    finally:
        workbook.close()


# Writing -------------------------------------------------------------------------------------

INSTRUCTIONS = (
    "How to fill in the Plans sheet",
    "",
    "One row per plan: a vehicle's stay at a site and what it needs.",
    "site: the site's MINT location ID (e.g. BE-BRU-01) or its name as the portal shows it.",
    "vehicle: its fleet number or name (optional).",
    "start, end: on the site's clock, as 2026-03-14 18:30, 14.03.2026 18:30 or "
    "14/03/2026 18:30 (or Excel date cells). A day/month date that could be read both "
    "ways (03/04/2026) is refused unless another date in the file settles the order.",
    "expected range km (with average consumption in kWh/100 km, optional) OR expected "
    "charge kWh: exactly one of the two. Decimals with a point or a comma.",
    "note: optional, sent to MINT as its status text (one line, up to 200 characters).",
    "",
    "A row matches a plan already in the portal by vehicle, site and start day: uploading a "
    "corrected file changes those plans instead of adding new ones.",
    "Formulas: the values Excel saved with the file are used; a formula without a saved "
    "value is refused (open and save the file in Excel).",
    "Nothing is saved until you confirm the preview.",
)


def template_csv() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(TEMPLATE_HEADERS.values())
    return buffer.getvalue().encode("utf-8-sig")


def template_xlsx() -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    plans = workbook.create_sheet("Plans")
    plans.append(list(TEMPLATE_HEADERS.values()))
    instructions = workbook.create_sheet("Instructions")
    for line in INSTRUCTIONS:
        instructions.append([line])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rows_csv(headers: list[str], rows: list[list[str]], *, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter or ",")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def rows_xlsx(headers: list[str], rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Plans")
    sheet.append(headers)
    for row in rows:
        cells = []
        for value in row:
            # Text stays text: openpyxl would store "=…" as a formula.
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
