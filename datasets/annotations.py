"""Reading annotation files: a malformed one ends in one line naming the file and the row.

Every family reads its annotation files through :func:`parse_rows`: the rows of a text, csv or
JSON file, each turned into an item by the family's ``parse``. Any mistake is an
:class:`core.errors.AnnotationError` with one line (docs/bad-input.md, "Annotations")::

    <file>:<line>: <what is wrong> (expected <format>)            text and csv files
    <file>:<line>:<column>: invalid JSON: <why> (expected <format>)
    <file>: entry <n>: <what is wrong> (expected <format>)        entries of a JSON list / object

Files are UTF-8 (a byte-order mark is ignored); an empty file, or one without rows, is an error.
"""
import csv
import io
import json
import pathlib

from core.errors import AnnotationError

# what a family's ``parse`` raises for a bad row (int('x'), row['missing'], entry[0] of a number, ...)
ROW_ERRORS = (ValueError, KeyError, TypeError, IndexError)
FORMS = ('names', 'lines', 'csv', 'header-csv', 'json', 'json-object')
JSON_TYPES = {dict: 'object', list: 'list', str: 'string', int: 'number', float: 'number', bool: 'boolean',
              type(None): 'null'}


def fail(path, where, what, expects):
    """Raise the one-line error; ``where`` is a line number or a text such as ``'entry 3'``."""
    at = f':{where}' if isinstance(where, int) else f': {where}'
    raise AnnotationError(f'{path}{at}: {what} (expected {expects})')


def integer(value, what):
    """``value`` (an int or a string of one) as an int; else a ValueError naming ``what``."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f'{what} {value!r} is not an integer')


def read_text(path, expects):
    """The text of ``path``: UTF-8 (byte-order mark ignored), not empty."""
    data = pathlib.Path(path).read_bytes()
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        fail(path, data.count(b'\n', 0, e.start) + 1, f'not UTF-8 text (byte {data[e.start]:#04x})', expects)
    if not text.strip():
        fail(path, 1, 'empty file', expects)
    return text


def _json(path, text, expects, want):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg} (expected {expects})') from None
    if not isinstance(doc, want):
        fail(path, 1, wrong_type(doc, want), expects)
    return doc


def wrong_type(value, want):
    """``'a JSON string, not an object'``."""
    return f'a JSON {JSON_TYPES[type(value)]}, not {"an" if want is dict else "a"} {JSON_TYPES[want]}'


def _rows(path, text, expects, form, sep, header, comment):
    """``(where, fields)`` of each row of the file (blank lines and rows skipped)."""
    if form in ('json', 'json-object'):
        doc = _json(path, text, expects, dict if form == 'json-object' else list)
        yield from ((f'entry {i}', e) for i, e in enumerate(doc.items() if form == 'json-object' else doc, 1))
        return
    if form in ('names', 'lines'):
        for n, line in enumerate(io.StringIO(text, newline=None), 1):
            line = line.split(comment, 1)[0] if comment else line
            if line.strip():
                yield n, (line.strip() if form == 'names' else line.split(sep))
        return
    reader = csv.reader(io.StringIO(text, newline=''), delimiter=sep or ',')
    names = None
    try:
        for row in reader:
            if not row:
                continue
            if form == 'csv':
                yield reader.line_num, row
            elif names is None:  # header-csv: the first row names the columns
                names = [c.strip() for c in row]
                missing = [c for c in header if c not in names]
                if missing:
                    fail(path, reader.line_num, f'the header {",".join(names)} lacks {",".join(missing)}', expects)
            elif len(row) != len(names):
                fail(path, reader.line_num, f'{len(row)} columns, the header has {len(names)}', expects)
            else:
                yield reader.line_num, dict(zip(names, row))
    except csv.Error as e:
        fail(path, reader.line_num, f'not valid csv: {e}', expects)


def parse_rows(path, parse, expects, *, form='lines', sep=None, columns=None, header=(), kind=None,
               comment=None):
    """Parse the rows of an annotation file; a bad row ends in one line naming file and row.

    Args:
        path: the file.
        parse: ``parse(fields) -> item`` for one row; ``None`` leaves the row out. A
            ``ValueError`` (its message says what is wrong), ``KeyError`` (a missing key),
            ``TypeError`` or ``IndexError`` marks the row as malformed.
        expects: the expected format, in a few words (error messages).
        form: ``'names'`` (each non-blank line, stripped), ``'lines'`` (each non-blank line split
            on ``sep``, default whitespace), ``'csv'`` (csv rows, delimiter ``sep``),
            ``'header-csv'`` (a header row naming at least the columns ``header``, then a dict per
            row), ``'json'`` (each entry of a JSON list) or ``'json-object'`` (each ``(key,
            value)`` of a JSON object).
        columns: ``(fewest, most)`` fields a row of ``lines`` / ``csv`` may have.
        kind: the type each JSON entry must have (e.g. ``dict``).
        comment: in ``names`` / ``lines``, the text from this character on is ignored.
    Returns:
        the list of items (at least one row is required).
    Raises:
        AnnotationError: ``<file>:<line>: <what> (expected <expects>)`` (``: entry <n>:`` for JSON).
    """
    if form not in FORMS:
        raise ValueError(f'form must be one of {FORMS}, got {form!r}')
    items, n_rows = [], 0
    for where, fields in _rows(path, read_text(path, expects), expects, form, sep, header, comment):
        n_rows += 1
        if columns and not columns[0] <= len(fields) <= columns[1]:
            few = len(fields) < columns[0]
            fail(path, where, f'{"too few" if few else "too many"} columns ({len(fields)}, '
                 f'{"needs" if few else "at most"} {columns[0] if few else columns[1]})', expects)
        if kind is not None and not isinstance(fields, kind):
            fail(path, where, wrong_type(fields, kind), expects)
        try:
            item = parse(fields)
        except ROW_ERRORS as e:
            what = f'missing {e.args[0]!r}' if isinstance(e, KeyError) and e.args else str(e)
            fail(path, where, what, expects)
        if item is not None:
            items.append(item)
    if not n_rows:
        fail(path, 1, {'json': 'an empty list', 'json-object': 'an empty object',
                       'header-csv': 'a header and no rows'}.get(form, 'no entries'), expects)
    return items
