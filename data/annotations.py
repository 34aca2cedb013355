"""Readers for the official annotation files of Kinetics-400, Charades-Ego, EPIC-Kitchens-55/100
and Something-Something v2, exactly as the datasets release them (SPEC section 5).

Every reader returns plain frozen dataclasses and knows nothing about decoding or sampling.
Malformed input raises `AnnotationError` naming the file, the line (or JSON entry / pickle row)
and what was expected; class names or ids that are not in the label space are collected over
the whole file and reported together, so a bad file is fixed in one pass, not one error at a
time. Annotation files are untrusted input: nothing in them is accepted in silence.

Validation rules, shared by every reader:

* Text is UTF-8; a leading byte-order mark (as spreadsheet tools write) is dropped. Bytes that
  are not UTF-8 are an error naming their line.
* CSV files are parsed strictly (`csv` strict mode: a quote inside a quoted field must be
  doubled, a quoted field must be closed before the end of the file), a field longer than the
  csv module's field limit is an error naming its row, and every row has the header's number
  of fields. A stray double quote at the start of a field makes the csv module read on to the
  next quote, joining the following lines into one field and dropping their rows; the rule
  that catches this is: **a field may hold a line break only in the columns of the format that
  are free text spanning lines** (Charades-Ego `script`, `objects`, `descriptions`); a line
  break anywhere else is an error naming the lines it joins. (A stray quote inside a Charades
  free-text field can in principle still join lines without breaking any rule, but only when
  the next quote in the file closes a field at the same column; strict mode rejects every
  other case.) Lines that are empty, or hold nothing but commas, are skipped.
* Numbers are written in ASCII: integers `[+-]?[0-9]+` (at most 18 digits), decimals
  `[+-]?digits[.digits][e[+-]digits]`. Python's int()/float() would also take Unicode digits
  ('١٢'), underscores ('1_000'), 'nan' and 'inf'; the readers do not. Values from a `.pkl`
  table are taken by type: int (not bool) and integral floats for integers, finite int/float
  for decimals, str parsed as text.
* Ids (Kinetics youtube_id and split, Charades id, EPIC narration_id / participant_id /
  video_id) are non-empty strings of ASCII letters, digits, `_`, `-` and `.`, not starting with
  `.`: an id never holds a path separator or climbs out of the data root (`..`). EPIC-55 uid and
  SSv2 ids are ASCII digits (a `.pkl` / JSON may store them as ints). EPIC video ids begin with
  their participant id and `_`, narration ids with their video id and `_`, as the frame-folder
  layout and the released files have them. Kinetics list paths may hold sub-folders
  (`train/abseiling/x.mp4`) but, with a video_root, neither an absolute path nor a `..`
  component, and a path holding a video file name followed by whitespace
  (`a/x.mp4 1b/y.mp4`) is two lines run together. Class names are printable, non-empty and
  hold no path separator (Kinetics uses them as folder names).
* A JSON object never repeats a key (json would keep the last in silence).
* Each id is listed once per file (Kinetics video id / clip, Charades id, EPIC narration_id or
  uid, SSv2 id); a repeat is an error naming both lines, and saying so when the two lines give
  the id different labels.
* Times and lengths are finite, >= 0 and at most MAX_VIDEO_SECONDS (24 h). Kinetics CSV:
  0 <= time_start < time_end. Charades-Ego: `length` and action times as above; a reversed
  action span (start > end, present in the released files) is kept and reads as [min, max].
  EPIC: timestamps `HH:MM:SS.fff` with minutes and seconds below 60, start <= stop;
  1 <= start_frame <= stop_frame <= EPIC_MAX_FRAME (24 h at 60 fps), a segment at most
  EPIC_MAX_SEGMENT_FRAMES (2 h at 60 fps) long; and the timestamps must agree with the frame
  numbers at one of the frame-folder rates (`frame_rates`, by default EPIC_FRAME_RATES: 60 fps
  for most EPIC-100 videos and all of EPIC-55, 50 fps for some EPIC-100 videos): for one rate r,
  both |timestamp - (frame - 1) / r| <= 1 s + 0.5 % of the timestamp. The relative part absorbs
  59.94 vs 60 fps drift over an hour-long video; a timestamp that fits neither rate is a
  contradiction, not rounding.
* Labelled files are labelled throughout: an EPIC file with verb_class/noun_class also has a
  narration column; an SSv2 split either has a "template" in every entry or in none
  (`require_labels=True` demands one in every entry); "label" and "template" are strings.
* `.pkl` tables are unpickled by a restricted unpickler that rebuilds only plain containers,
  str/int/float/bool/None and numpy arrays, dtypes and scalars; any other global is refused by
  name. The official EPIC `.pkl` files are pandas DataFrames, which need pandas' own code:
  read the CSV of the same name, or pass `trusted=True` (plain pickle.load, which runs whatever
  code the file names, and needs pandas installed).
* `check_class_count` compares a class map's size with a model's class count; give
  `kinetics_csv_class_names` a `num_classes` to catch a misspelt class in a training CSV, which
  would otherwise become a class of its own and shift every later class index.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass

from data.safe_pickle import UnsafePickleError, safe_load

CHARADES_NUM_CLASSES = 157
CHARADES_FPS = 24  # the official JPEG frame folders are extracted at 24 fps
EPIC100_NUM_VERBS, EPIC100_NUM_NOUNS = 97, 300
EPIC55_NUM_VERBS, EPIC55_NUM_NOUNS = 125, 352
SSV2_NUM_CLASSES = 174
KINETICS_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")

MAX_VIDEO_SECONDS = 24 * 3600  # no annotated video is longer than a day
EPIC_FRAME_RATES = (60.0, 50.0)  # rates of the released EPIC frame folders
EPIC_MAX_FRAME = MAX_VIDEO_SECONDS * 60
EPIC_MAX_SEGMENT_FRAMES = 2 * 3600 * 60  # a two-hour action segment at 60 fps
EPIC_TIMESTAMP_TOLERANCE_S, EPIC_TIMESTAMP_TOLERANCE_RELATIVE = 1.0, 0.005


class AnnotationError(ValueError):
    """An annotation file is malformed or names classes outside the label space."""


def _where(path: str | os.PathLike, index: int | None = None, unit: str = "line") -> str:
    """`file:line`, or `file: entry N` for a JSON entry."""
    if index is None:
        return os.fspath(path)
    return f"{os.fspath(path)}:{index}" if unit == "line" else f"{os.fspath(path)}: {unit} {index}"


def _unknown_classes_error(path, unknown: list[tuple[str, int]], known_hint: str,
                           unit: str = "line") -> AnnotationError:
    """One error listing every unknown class once, as `name (first at line N)`."""
    first_lines: dict[str, int] = {}
    for name, line in unknown:
        first_lines.setdefault(name, line)
    names = sorted(first_lines)
    listed = ", ".join(f"{name!r} (first at {unit} {first_lines[name]})" for name in names)
    return AnnotationError(f"{os.fspath(path)}: {len(names)} unknown class name(s), expected "
                           f"{known_hint}: {listed}")


def check_class_count(names: Sequence[str], num_classes: int, where: str) -> None:
    """Raise if a class map (`names`, read from `where`) does not have the model's
    `num_classes` classes: a misspelt or missing class would shift every later index."""
    if len(names) != num_classes:
        raise AnnotationError(f"{where}: the class map has {len(names)} classes but the model has "
                              f"{num_classes}")


# ----------------------------------------------------------------------------- shared validators

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ID_TEXT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_DIGITS_TEXT = re.compile(r"[0-9]{1,18}")
_TIMESTAMP_TEXT = re.compile(r"([0-9]{1,2}):([0-5][0-9]):([0-5][0-9](?:\.[0-9]*)?)")


def _shown(value) -> str:
    """A value as an error message shows it: its repr, cut to 80 characters."""
    try:
        text = repr(value)
    except RecursionError:  # a pickle can nest containers deeper than repr recurses
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _as_int(at: str, column: str, value) -> int:
    """An integer written in ASCII digits, or (from a pickle) an int or integral float."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return int(number)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise AnnotationError(f"{at}: column {column!r} should be an integer in ASCII digits, got "
                          f"{_shown(value)}")


def _as_float(at: str, column: str, value) -> float:
    """A finite number written in ASCII (no 'nan', 'inf', '1_0'), or an int/float from a pickle."""
    number = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise AnnotationError(f"{at}: column {column!r} should be a finite number in ASCII, got "
                              f"{_shown(value)}")
    return number


def _in_range(at: str, column: str, value, low, high, unit: str = ""):
    if not low <= value <= high:
        raise AnnotationError(f"{at}: column {column!r} should be in [{low}, {high}]{unit}, got {value}")
    return value


def _as_seconds(at: str, column: str, value) -> float:
    """A time or length in seconds: finite, in [0, MAX_VIDEO_SECONDS]."""
    return _in_range(at, column, _as_float(at, column, value), 0, MAX_VIDEO_SECONDS, " seconds")


def _as_id(at: str, column: str, value) -> str:
    """A non-empty id of ASCII letters, digits, `_`, `-`, `.`, not starting with `.`."""
    if isinstance(value, str) and _ID_TEXT.fullmatch(value.strip()):
        return value.strip()
    raise AnnotationError(f"{at}: column {column!r} should be an id of ASCII letters, digits, '_', "
                          f"'-' and '.' (not starting with '.'), got {_shown(value)}")


def _as_digit_id(at: str, column: str, value) -> str:
    """An id of ASCII digits (EPIC-55 uid, SSv2 id); a pickle or JSON may store it as an int."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return str(int(value))
    if isinstance(value, str) and _DIGITS_TEXT.fullmatch(value.strip()):
        return value.strip()
    raise AnnotationError(f"{at}: {column} should be a non-empty string of ASCII digits (or a "
                          f"non-negative integer), got {_shown(value)}")


def _as_class_name(at: str, column: str, value) -> str:
    """A class name: printable, non-empty, no path separator, not `.` or `..` (Kinetics uses
    class names as folder names)."""
    name = value.strip() if isinstance(value, str) else None
    if not name or not name.isprintable() or "/" in name or "\\" in name or name in (".", ".."):
        raise AnnotationError(f"{at}: column {column!r} should be a printable class name without "
                              f"path separators, got {_shown(value)}")
    return name


def _as_text(at: str, column: str, value) -> str:
    """Free text (EPIC narration, Charades script): any string."""
    if not isinstance(value, str):
        raise AnnotationError(f"{at}: column {column!r} should be text, got {_shown(value)}")
    return value


def _no_repeat(path, seen: dict, what: str, key, index: int, label=None, unit: str = "line") -> None:
    """Remember where `key` was first listed; listing it again is an error naming both places,
    and the two labels when they disagree."""
    if key not in seen:
        seen[key] = (index, label)
        return
    first, first_label = seen[key]
    at = _where(path, index, unit)
    if label != first_label:
        raise AnnotationError(f"{at}: {what} {key!r} has conflicting labels: {first_label} at {unit} "
                              f"{first}, {label} at {unit} {index}")
    raise AnnotationError(f"{at}: {what} {key!r} is listed twice, first at {unit} {first}")


# ----------------------------------------------------------------------------- text, CSV, JSON


def _read_text(path, what: str = "annotation file") -> str:
    """A file's text as UTF-8 (a leading BOM dropped); bytes that are not UTF-8 name their line."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: {what} not found")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise AnnotationError(f"{_where(path, line)}: bytes are not UTF-8 ({e.reason} at byte "
                              f"{e.start} of the file)") from None


def _read_csv(path, multiline: Sequence[str] = ()) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of a CSV with a header, parsed strictly (module docstring).

    Only the `multiline` columns may hold line breaks. The line number reported for a row is
    that of its last physical line (the one the csv reader has just consumed).
    """
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    header, rows, first_line = None, [], 1
    try:
        for fields in reader:
            at = _where(path, reader.line_num)
            if header is None:
                header = [h.strip() for h in fields]
                _check_line_breaks(path, first_line, reader.line_num, zip(header, fields), ())
                repeated = sorted({h for h in header if header.count(h) > 1})
                if repeated:
                    raise AnnotationError(f"{at}: header repeats column(s) {', '.join(repeated)}")
            elif fields and any(x.strip() for x in fields):
                if len(fields) != len(header):
                    raise AnnotationError(f"{at}: expected {len(header)} comma-separated fields "
                                          f"({', '.join(header)}), got {len(fields)}")
                _check_line_breaks(path, first_line, reader.line_num, zip(header, fields), multiline)
                rows.append((reader.line_num, dict(zip(header, fields))))
            first_line = reader.line_num + 1
    except csv.Error as e:
        raise AnnotationError(f"{_where(path, first_line)}: malformed CSV in the row starting on this "
                              f"line ({e}, at line {reader.line_num}); look for an unbalanced double "
                              f"quote") from None
    return header or [], rows


def _check_line_breaks(path, first_line: int, last_line: int, named_fields, multiline) -> None:
    for column, value in named_fields:
        if column not in multiline and ("\n" in value or "\r" in value):
            raise AnnotationError(f"{_where(path, first_line)}: column {column!r} spans lines "
                                  f"{first_line}-{last_line}, which the format never does; a stray "
                                  f"double quote has probably joined those lines into one field")


def _require_columns(path, header: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise AnnotationError(f"{_where(path, 1)}: header lacks column(s) {', '.join(missing)}; "
                              f"expected {', '.join(required)} (got {', '.join(header) or 'nothing'})")


def _csv_rows(path, required: Sequence[str], multiline: Sequence[str] = ()) -> list[tuple[int, dict[str, str]]]:
    header, rows = _read_csv(path, multiline)
    _require_columns(path, header, required)
    return rows


def _load_json(path, what: str = "annotation file"):
    """Parsed JSON; a key repeated inside one object is an error (json would keep the last)."""
    def unique_keys(pairs):
        keys = [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise AnnotationError(f"{os.fspath(path)}: a JSON object repeats key(s) {repeated}: "
                                  f"{_shown(dict(pairs))}")
        return dict(pairs)

    text = _read_text(path, what)
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{_where(path, e.lineno)}: invalid JSON at column {e.colno} "
                              f"({e.msg})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits
        if isinstance(e, AnnotationError):
            raise
        raise AnnotationError(f"{os.fspath(path)}: unreadable JSON ({e})") from None


# ----------------------------------------------------------------------------- Kinetics-400


@dataclass(frozen=True)
class KineticsClip:
    video_id: str  # file stem, e.g. "abc123XYZ_w_000010_000020"
    path: str      # video file; it may not exist (loading then reports the missing file)
    label: int     # class index


# a video file name followed by whitespace inside a list path: a lost line break joined two lines
_JOINED_LIST_LINES = re.compile(r"\.(?:mp4|webm|mkv|avi|mov)\s", re.IGNORECASE)


def _as_list_path(at: str, text: str, confined: bool) -> str:
    """A list file's video path: printable; with a video root (`confined`), relative and
    without `..` components, so it stays inside the root."""
    parts = re.split(r"[/\\]", text)
    if not text.isprintable() or (confined and (os.path.isabs(text) or text.startswith("\\")
                                                or ".." in parts)):
        raise AnnotationError(f"{at}: video path {_shown(text)} should be printable and, under a "
                              f"video_root, relative without '..' components")
    if _JOINED_LIST_LINES.search(text):
        raise AnnotationError(f"{at}: video path {_shown(text)} holds a second video file name; two "
                              f"list lines have run together")
    return text


def read_kinetics_list(path, video_root: str = "", num_classes: int | None = None) -> list[KineticsClip]:
    """PySlowFast list: one `path label` per line, no header; `label` an integer class index.

    Relative paths are joined to `video_root`. The label is the last whitespace-separated field,
    so paths may contain spaces. Each video id (the file stem) is listed once.
    """
    clips, out_of_range, seen = [], [], {}
    for line_no, line in enumerate(_read_text(path, "list file").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        at = _where(path, line_no)
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not _INT_TEXT.fullmatch(parts[1]):
            raise AnnotationError(f"{at}: expected `<video path> <integer label>`, got {_shown(line)}")
        relative = _as_list_path(at, parts[0], confined=bool(video_root))
        label = int(parts[1])
        stem = os.path.splitext(os.path.basename(relative))[0]
        if not stem:
            raise AnnotationError(f"{at}: video path {_shown(relative)} names no file")
        _no_repeat(path, seen, "video id", stem, line_no, f"label {label}")
        if label < 0 or (num_classes is not None and label >= num_classes):
            out_of_range.append((str(label), line_no))
        clips.append(KineticsClip(video_id=stem, path=os.path.join(video_root, relative), label=label))
    if out_of_range:
        hint = f"labels 0..{num_classes - 1}" if num_classes is not None else "labels >= 0"
        raise _unknown_classes_error(path, out_of_range, hint)
    return clips


def read_class_names(path) -> list[str]:
    """Class names in index order, from a text file (one name per line, index = order) or a
    JSON object `{name: index}` (PySlowFast's `classids.json`)."""
    if os.fspath(path).endswith(".json"):
        mapping = _load_json(path, "class-names file")
        if not isinstance(mapping, dict):
            raise AnnotationError(f"{os.fspath(path)}: expected a JSON object {{class name: index}}")
        for name in mapping:
            _as_class_name(os.fspath(path), "class name", name)
        return _names_from_index_map(path, mapping)
    names, seen = [], {}
    for line_no, line in enumerate(_read_text(path, "class-names file").split("\n"), start=1):
        if line.strip():
            name = _as_class_name(_where(path, line_no), "class name", line)
            _no_repeat(path, seen, "class name", name, line_no)
            names.append(name)
    return names


def _names_from_index_map(path, mapping: dict) -> list[str]:
    """Names in index order from `{name: index}`; indices 0..N-1 (ints or ASCII digit strings),
    each used once."""
    index_of = {name: _as_int(f"{os.fspath(path)}: class {_shown(name)}", "index", value)
                for name, value in mapping.items()}
    if sorted(index_of.values()) != list(range(len(index_of))):
        raise AnnotationError(f"{os.fspath(path)}: class indices must be 0..{len(index_of) - 1}, "
                              f"each used once")
    return sorted(index_of, key=index_of.get)


def kinetics_csv_class_names(*csv_paths, num_classes: int | None = None) -> list[str]:
    """The standard Kinetics label space: the sorted set of names in the official CSV(s).

    With `num_classes`, a label space of another size is an error (`check_class_count`) that
    lists the names with the fewest rows, where a misspelt class shows up.
    """
    rows_of, first_at = {}, {}
    for path in csv_paths:
        for line, row in _csv_rows(path, ("label",)):
            name = _as_class_name(_where(path, line), "label", row["label"])
            rows_of[name] = rows_of.get(name, 0) + 1
            first_at.setdefault(name, _where(path, line))
    names = sorted(rows_of)
    if num_classes is not None and len(names) != num_classes:
        rarest = sorted(names, key=lambda n: (rows_of[n], n))[:5]
        listed = ", ".join(f"{n!r} ({rows_of[n]} row(s), first at {first_at[n]})" for n in rarest)
        check_class_count(names, num_classes, f"{', '.join(map(os.fspath, csv_paths))} (fewest rows: {listed})")
    return names


def kinetics_clip_filename(youtube_id: str, time_start: int, time_end: int) -> str:
    """The usual trimmed-clip name: `<youtube_id>_<start:06d>_<end:06d>` (no extension)."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def read_kinetics_csv(path, video_root: str, class_names: Sequence[str]) -> list[KineticsClip]:
    """Official Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`, header).

    Each row's video is `<youtube_id>_<time_start:06d>_<time_end:06d>` with extension .mp4,
    .webm or .mkv (tried in that order), looked up first directly in `video_root`, then in
    `video_root/<split>/<label>/`, then in `video_root/<split>/<label with spaces as
    underscores>/`. A clip found nowhere keeps the first candidate path
    (`video_root/<name>.mp4`), so loading it reports the missing file. `class_names` gives the
    index of each label (see `kinetics_csv_class_names` / `read_class_names`); labels outside
    it are all listed in one error. Times are whole seconds, 0 <= time_start < time_end <= 24 h;
    each clip is listed once.
    """
    index_of = {name: i for i, name in enumerate(class_names)}
    clips, unknown, seen = [], [], {}
    for line, row in _csv_rows(path, ("label", "youtube_id", "time_start", "time_end", "split")):
        at = _where(path, line)
        label_name = _as_class_name(at, "label", row["label"])
        youtube_id = _as_id(at, "youtube_id", row["youtube_id"])
        start = _as_int(at, "time_start", row["time_start"])
        end = _as_int(at, "time_end", row["time_end"])
        if not 0 <= start < end <= MAX_VIDEO_SECONDS:
            raise AnnotationError(f"{at}: expected 0 <= time_start < time_end <= {MAX_VIDEO_SECONDS} "
                                  f"seconds, got {start}, {end}")
        split = _as_id(at, "split", row["split"])
        name = kinetics_clip_filename(youtube_id, start, end)
        _no_repeat(path, seen, "clip", name, line, repr(label_name))
        if label_name not in index_of:
            unknown.append((label_name, line))
            continue
        folders = [video_root, os.path.join(video_root, split, label_name),
                   os.path.join(video_root, split, label_name.replace(" ", "_"))]
        candidates = [os.path.join(d, name + ext) for d in folders for ext in KINETICS_VIDEO_EXTENSIONS]
        video = next((c for c in candidates if os.path.isfile(c)), candidates[0])
        clips.append(KineticsClip(video_id=name, path=video, label=index_of[label_name]))
    if unknown:
        raise _unknown_classes_error(path, unknown, f"one of the {len(index_of)} given class names")
    return clips


# ----------------------------------------------------------------------------- Charades-Ego

# The columns the reader requires. The released CharadesEgo_v1_*.csv files also carry Charades'
# `objects` column between `script` and `descriptions` (13 columns in all); it is not used.
CHARADES_EGO_COLUMNS = ("id", "subject", "scene", "quality", "relevance", "verified", "script",
                        "descriptions", "actions", "length", "egocentric", "charades_video")
# free-text columns, the only ones whose (quoted) fields may span lines
CHARADES_EGO_MULTILINE_COLUMNS = ("script", "objects", "descriptions")


@dataclass(frozen=True)
class CharadesAction:
    label: int    # 0..156 for c000..c156
    start: float  # seconds
    end: float    # seconds

    def overlaps(self, t0: float, t1: float) -> bool:
        """Whether the action is active anywhere in [t0, t1] (a reversed span reads as [min, max])."""
        lo, hi = min(self.start, self.end), max(self.start, self.end)
        return lo <= t1 and hi >= t0


@dataclass(frozen=True)
class CharadesEgoVideo:
    video_id: str
    subject: str
    scene: str
    script: str
    length: float  # seconds
    charades_video: str
    actions: tuple[CharadesAction, ...]

    @property
    def first_person(self) -> bool:
        return self.video_id.endswith("EGO")

    @property
    def pair_id(self) -> str:
        """The recording both views share: the first-person id is the third-person id + "EGO"."""
        return self.video_id[:-3] if self.first_person else self.video_id


def _parse_charades_actions(at: str, line: int, text: str, unknown: list) -> tuple[CharadesAction, ...]:
    actions = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        fields = item.split()
        if len(fields) != 3:
            raise AnnotationError(f"{at}: action {item!r} should be `cNNN start end`")
        cls, start, end = fields
        if not (_FLOAT_TEXT.fullmatch(start) and _FLOAT_TEXT.fullmatch(end)):
            raise AnnotationError(f"{at}: action {item!r} has non-numeric times, expected `cNNN start "
                                  f"end` in seconds, ASCII digits")
        start_s = _as_seconds(at, f"actions ({item})", start)
        end_s = _as_seconds(at, f"actions ({item})", end)
        match = re.fullmatch(r"c([0-9]{3})", cls)
        if match is None or int(match.group(1)) >= CHARADES_NUM_CLASSES:
            unknown.append((cls, line))
            continue
        actions.append(CharadesAction(int(match.group(1)), start_s, end_s))
    return tuple(actions)


def read_charades_ego(path) -> list[CharadesEgoVideo]:
    """`CharadesEgo_v1_{train,test}.csv`: one row per video (first-person ids end in `EGO`);
    `actions` is `c092 11.90 21.20;c147 0.00 12.60` (class, start s, end s) or empty; an empty
    `length` reads as 0. Each id is listed once."""
    videos, unknown, seen = [], [], {}
    for line, row in _csv_rows(path, CHARADES_EGO_COLUMNS, CHARADES_EGO_MULTILINE_COLUMNS):
        at = _where(path, line)
        video_id = _as_id(at, "id", row["id"])
        _no_repeat(path, seen, "video id", video_id, line, f"actions {row['actions'].strip()!r}")
        length = row["length"].strip()
        videos.append(CharadesEgoVideo(
            video_id=video_id, subject=row["subject"].strip(), scene=row["scene"].strip(),
            script=row["script"], length=_as_seconds(at, "length", length) if length else 0.0,
            charades_video=row["charades_video"].strip(),
            actions=_parse_charades_actions(at, line, row["actions"], unknown)))
    if unknown:
        raise _unknown_classes_error(path, unknown, f"c000..c{CHARADES_NUM_CLASSES - 1:03d}")
    return videos


# ----------------------------------------------------------------------------- EPIC-Kitchens


@dataclass(frozen=True)
class EpicSegment:
    segment_id: str       # narration_id (EPIC-100) or uid (EPIC-55)
    participant_id: str
    video_id: str
    start_timestamp: float  # seconds
    stop_timestamp: float
    start_frame: int      # 1-based, inclusive, as the frame_%010d.jpg names
    stop_frame: int
    narration: str        # "" in the unlabelled test files
    verb_class: int       # -1 in the unlabelled test files
    noun_class: int


def parse_timestamp(path, line, column: str, text) -> float:
    """`HH:MM:SS.fff` (ASCII digits, minutes and seconds below 60) -> seconds."""
    match = _TIMESTAMP_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise AnnotationError(f"{_where(path, line)}: column {column!r} should be a timestamp "
                              f"HH:MM:SS.fff (minutes and seconds below 60), got {_shown(text)}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _load_table_pickle(path, trusted: bool = False) -> list[dict]:
    """Rows of a pickled table: a list of dicts, a dict of equal-length columns, or (trusted
    only) a pandas DataFrame; the official EPIC `.pkl` files are DataFrames indexed by
    narration_id/uid. Untrusted files go through data/safe_pickle.py's restricted unpickler
    (numpy arrays and plain containers only); `trusted` uses plain pickle.load, which runs any
    code the file names."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        # from memory: a damaged length field then reads past the end, it allocates nothing
        table = pickle.loads(data) if trusted else safe_load(io.BytesIO(data), "annotation pickle")
    except UnsafePickleError as e:
        if e.refused.split(".")[0] == "pandas":
            raise AnnotationError(f"{os.fspath(path)}: is a pandas DataFrame pickle (it names {e.refused}), "
                                  f"which only pandas' own code can rebuild; read the CSV file of the same "
                                  f"name, or pass trusted=True for a file from a trusted source (unpickling "
                                  f"it runs code; needs pandas)") from None
        raise AnnotationError(f"{os.fspath(path)}: refused to unpickle {e.refused}: an annotation pickle may "
                              f"hold only plain containers, numbers, strings and numpy arrays (pass "
                              f"trusted=True for a file from a trusted source)") from None
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "pandas":
            raise AnnotationError(f"{os.fspath(path)}: is a pandas DataFrame pickle and pandas is "
                                  f"not installed; install pandas or use the CSV file of the same "
                                  f"name") from None
        raise AnnotationError(f"{os.fspath(path)}: cannot unpickle ({e})") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails in many ways, all of them bad input
        raise AnnotationError(f"{os.fspath(path)}: not a readable pickle ({type(e).__name__}: {e})") from None
    if trusted and hasattr(table, "reset_index") and hasattr(table, "to_dict"):  # a pandas DataFrame
        if table.index.name is not None:
            table = table.reset_index()
        table = table.to_dict("records")
    if isinstance(table, dict):  # columns: lists, tuples or 1-d numpy arrays
        columns = {k: c.tolist() if hasattr(c, "tolist") and not isinstance(c, (list, tuple)) else c
                   for k, c in table.items()}
        bad = next((k for k, c in columns.items() if not isinstance(c, (list, tuple))), None)
        if bad is not None:
            raise AnnotationError(f"{os.fspath(path)}: column {_shown(bad)} of the pickled dict of "
                                  f"columns should be a list, tuple or 1-d array, got "
                                  f"{type(table[bad]).__name__}")
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise AnnotationError(f"{os.fspath(path)}: columns have different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        table = [{k: columns[k][i] for k in columns} for i in range(n)]
    if not (isinstance(table, list) and all(isinstance(r, dict) for r in table)):
        raise AnnotationError(f"{os.fspath(path)}: expected a pickled list of row dicts, dict of "
                              f"columns or pandas DataFrame, got {type(table).__name__}")
    for i, row in enumerate(table):
        if not all(isinstance(k, str) for k in row):
            raise AnnotationError(f"{os.fspath(path)}: row {i} has column names that are not strings: "
                                  f"{_shown(list(row))}")
    return table


def _read_table(path, trusted: bool = False) -> tuple[list[str], list[tuple[int, dict]]]:
    """(columns, [(line/row number, row)]) from a CSV, or from a `.pkl` table (row number =
    position + 2, i.e. the line the row would have in the CSV of the same name)."""
    if not os.fspath(path).endswith(".pkl"):
        return _read_csv(path)
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: annotation file not found")
    rows = _load_table_pickle(path, trusted)
    columns = list(rows[0]) if rows else []
    for i, row in enumerate(rows):
        if set(row) != set(columns):
            raise AnnotationError(f"{os.fspath(path)}: row {i} has columns {sorted(row)}, "
                                  f"expected {sorted(columns)} like row 0")
    return columns, [(i + 2, row) for i, row in enumerate(rows)]


def _check_times_match_frames(at: str, times: tuple[float, float], frames: tuple[int, int],
                              frame_rates: Sequence[float]) -> None:
    """The timestamps agree with the frame numbers at one of `frame_rates` (module docstring)."""
    def agrees(t: float, frame: int, rate: float) -> bool:
        return abs(t - (frame - 1) / rate) <= EPIC_TIMESTAMP_TOLERANCE_S + EPIC_TIMESTAMP_TOLERANCE_RELATIVE * t

    if any(all(agrees(t, f, r) for t, f in zip(times, frames)) for r in frame_rates):
        return
    implied = "; ".join(f"{(frames[0] - 1) / r:.2f}-{(frames[1] - 1) / r:.2f} s at {r:g} fps" for r in frame_rates)
    raise AnnotationError(f"{at}: start/stop_timestamp {times[0]:.2f}-{times[1]:.2f} s contradict "
                          f"start/stop_frame {frames[0]}-{frames[1]} ({implied})")


def read_epic_segments(path, num_verbs: int, num_nouns: int, *,
                       frame_rates: Sequence[float] = EPIC_FRAME_RATES,
                       trusted: bool = False) -> list[EpicSegment]:
    """EPIC-Kitchens action segments from CSV or `.pkl`.

    EPIC-100: `EPIC_100_{train,validation}` (labelled, id column `narration_id`) and
    `EPIC_100_test_timestamps` (no labels). EPIC-55: `EPIC_train_action_labels` (id `uid`) and
    `EPIC_test_s{1,2}_timestamps` (no labels). Files without `verb_class`/`noun_class` give
    segments with class -1; labelled files also carry `narration`. Class ids outside
    [0, num_verbs) / [0, num_nouns) are all listed in one error.

    `frame_rates`: the rates at which the timestamps may match the frame numbers (module
    docstring); pass your own for frames extracted at another rate. `trusted=True` reads a
    `.pkl` with plain pickle.load, which runs any code the file names: only for files from a
    trusted source (the official pandas DataFrame pickles need it, and pandas).
    """
    if not frame_rates or not all(isinstance(r, numbers.Real) and math.isfinite(r) and r > 0
                                  for r in frame_rates):
        raise ValueError(f"read_epic_segments: frame_rates should be positive numbers, got {frame_rates!r}")
    header, rows = _read_table(path, trusted)
    id_column = "narration_id" if "narration_id" in header else "uid"
    required = [id_column, "participant_id", "video_id", "start_timestamp", "stop_timestamp",
                "start_frame", "stop_frame"]
    labelled = "verb_class" in header or "noun_class" in header
    if labelled:
        required += ["verb_class", "noun_class", "narration"]
    _require_columns(path, header, required)
    segments, unknown, seen = [], [], {}
    for line, row in rows:
        at = _where(path, line)
        participant = _as_id(at, "participant_id", row["participant_id"])
        video = _as_id(at, "video_id", row["video_id"])
        if not video.startswith(participant + "_"):
            raise AnnotationError(f"{at}: video_id {video!r} should begin with its participant_id "
                                  f"{participant!r} and '_'")
        if id_column == "uid":
            segment_id = _as_digit_id(at, "uid", row["uid"])
        else:
            segment_id = _as_id(at, "narration_id", row["narration_id"])
            if not segment_id.startswith(video + "_"):
                raise AnnotationError(f"{at}: narration_id {segment_id!r} should begin with its "
                                      f"video_id {video!r} and '_'")
        start = _as_int(at, "start_frame", row["start_frame"])
        stop = _as_int(at, "stop_frame", row["stop_frame"])
        if not 1 <= start <= stop <= EPIC_MAX_FRAME:
            raise AnnotationError(f"{at}: expected 1 <= start_frame <= stop_frame <= {EPIC_MAX_FRAME} "
                                  f"(24 h at 60 fps), got {start}, {stop}")
        if stop - start + 1 > EPIC_MAX_SEGMENT_FRAMES:
            raise AnnotationError(f"{at}: segment of {stop - start + 1} frames, longer than "
                                  f"{EPIC_MAX_SEGMENT_FRAMES} (2 h at 60 fps)")
        start_s = parse_timestamp(path, line, "start_timestamp", row["start_timestamp"])
        stop_s = parse_timestamp(path, line, "stop_timestamp", row["stop_timestamp"])
        if not start_s <= stop_s <= MAX_VIDEO_SECONDS:
            raise AnnotationError(f"{at}: expected start_timestamp <= stop_timestamp <= 24 h, got "
                                  f"{start_s:.3f} s, {stop_s:.3f} s")
        _check_times_match_frames(at, (start_s, stop_s), (start, stop), frame_rates)
        verb = noun = -1
        narration = ""
        if labelled:
            verb = _as_int(at, "verb_class", row["verb_class"])
            noun = _as_int(at, "noun_class", row["noun_class"])
            narration = _as_text(at, "narration", row["narration"])
            if not 0 <= verb < num_verbs:
                unknown.append((f"verb_class {verb}", line))
            if not 0 <= noun < num_nouns:
                unknown.append((f"noun_class {noun}", line))
        _no_repeat(path, seen, id_column, segment_id, line, f"verb_class {verb}, noun_class {noun}")
        segments.append(EpicSegment(
            segment_id=segment_id, participant_id=participant, video_id=video,
            start_timestamp=start_s, stop_timestamp=stop_s, start_frame=start, stop_frame=stop,
            narration=narration, verb_class=verb, noun_class=noun))
    if unknown:
        raise _unknown_classes_error(path, unknown, f"verb_class 0..{num_verbs - 1} and noun_class "
                                                    f"0..{num_nouns - 1}")
    return segments


def read_epic_unseen_participants(path) -> set[str]:
    """`EPIC_100_unseen_participant_ids_{validation,test}.csv`: header `participant_id`."""
    return {_as_id(_where(path, line), "participant_id", row["participant_id"])
            for line, row in _csv_rows(path, ("participant_id",))}


def read_epic_tail_classes(path) -> set[int]:
    """`EPIC_100_tail_verbs.csv` / `EPIC_100_tail_nouns.csv`: one column, header `verb` or `noun`,
    one class id (>= 0) per line."""
    header, rows = _read_csv(path)
    column = "noun" if "noun" in header else "verb"
    _require_columns(path, header, (column,))
    return {_in_range(_where(path, line), column, _as_int(_where(path, line), column, row[column]), 0, math.inf)
            for line, row in rows}


# ----------------------------------------------------------------------------- SSv2


@dataclass(frozen=True)
class SSv2Video:
    video_id: str
    label: int  # -1 in the test list (ids only)


def read_ssv2_labels(path) -> dict[str, int]:
    """`something-something-v2-labels.json`: `{template: "index"}`, indices 0..N-1."""
    mapping = _load_json(path)
    if not isinstance(mapping, dict):
        raise AnnotationError(f"{os.fspath(path)}: expected a JSON object {{template: index}}")
    for template in mapping:
        if not template.strip() or not template.isprintable():
            raise AnnotationError(f"{os.fspath(path)}: template {_shown(template)} should be "
                                  f"printable, non-empty text")
    names = _names_from_index_map(path, mapping)
    return {name: i for i, name in enumerate(names)}


def read_ssv2_split(path, labels: dict[str, int], require_labels: bool = False) -> list[SSv2Video]:
    """`something-something-v2-{train,validation,test}.json`: a list of
    `{"id", "label", "template", "placeholders"}` (test: `{"id"}` only). The class is
    `labels[template without "[" and "]"]`; entries without a template get label -1.

    Ids are ASCII digit strings (or ints), each listed once; "label" and "template" are
    strings, "placeholders" a list of strings. A split is labelled throughout or not at all:
    with `require_labels` every entry needs a "template"; without it, a file where some
    entries have one and others not is an error naming the first entry that differs.
    """
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise AnnotationError(f"{os.fspath(path)}: expected a JSON list of video entries")
    videos, unknown, seen, first = [], [], {}, None
    for i, entry in enumerate(entries):
        at = _where(path, i, "entry")
        if not isinstance(entry, dict) or "id" not in entry:
            raise AnnotationError(f"{at} should be an object with an \"id\", got {_shown(entry)}")
        video_id = _as_digit_id(at, "\"id\"", entry["id"])
        has_template = "template" in entry
        if require_labels and not has_template:
            raise AnnotationError(f"{at}: has no \"template\", which every entry of a labelled split "
                                  f"needs (require_labels=True)")
        if first is None:
            first = (i, has_template)
        elif has_template != first[1]:
            have, lack = (i, first[0]) if has_template else (first[0], i)
            raise AnnotationError(f"{at}: entry {have} has a \"template\" and entry {lack} has none; "
                                  f"a split is labelled in every entry or in none")
        for key in ("label", "template"):
            if key in entry and not isinstance(entry[key], str):
                raise AnnotationError(f"{at}: \"{key}\" should be a string, got {_shown(entry[key])}")
        placeholders = entry.get("placeholders", [])
        if not (isinstance(placeholders, list) and all(isinstance(p, str) for p in placeholders)):
            raise AnnotationError(f"{at}: \"placeholders\" should be a list of strings, got "
                                  f"{_shown(placeholders)}")
        template = entry["template"].replace("[", "").replace("]", "") if has_template else None
        _no_repeat(path, seen, "id", video_id, i, repr(template), unit="entry")
        label = -1
        if has_template:
            if template not in labels:
                unknown.append((template, i))
                continue
            label = labels[template]
        videos.append(SSv2Video(video_id=video_id, label=label))
    if unknown:
        raise _unknown_classes_error(path, unknown, "a template of the labels file", unit="entry")
    return videos
