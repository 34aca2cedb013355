"""Readers for the official annotation files of Kinetics-400, Charades-Ego, EPIC-Kitchens-55/100
and Something-Something v2, exactly as the datasets release them (SPEC section 5).

Every reader returns plain frozen dataclasses and knows nothing about decoding or sampling.
Malformed input raises `AnnotationError` naming the file, the line (or JSON entry / pickle row)
and what was expected; class names or ids that are not in the label space are collected over
the whole file and reported together, so a bad file is fixed in one pass, not one error at a
time.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass

CHARADES_NUM_CLASSES = 157
CHARADES_FPS = 24  # the official JPEG frame folders are extracted at 24 fps
EPIC100_NUM_VERBS, EPIC100_NUM_NOUNS = 97, 300
EPIC55_NUM_VERBS, EPIC55_NUM_NOUNS = 125, 352
SSV2_NUM_CLASSES = 174
KINETICS_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv")


class AnnotationError(ValueError):
    """An annotation file is malformed or names classes outside the label space."""


def _where(path: str | os.PathLike, line: int | None = None) -> str:
    return f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)


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


def _read_csv(path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of a CSV with a header, checking field counts.

    The csv module handles quoted fields holding commas or newlines; the line number reported
    is that of the row's last physical line (the one the csv reader has just consumed).
    """
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: annotation file not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = []
        for fields in reader:
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != len(header):
                raise AnnotationError(f"{_where(path, reader.line_num)}: expected {len(header)} "
                                      f"comma-separated fields ({', '.join(header)}), got "
                                      f"{len(fields)}")
            rows.append((reader.line_num, dict(zip(header, fields))))
    return header, rows


def _require_columns(path, header: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise AnnotationError(f"{_where(path, 1)}: header lacks column(s) {', '.join(missing)}; "
                              f"expected {', '.join(required)} (got {', '.join(header) or 'nothing'})")


def _csv_rows(path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    header, rows = _read_csv(path)
    _require_columns(path, header, required)
    return rows


def _as_int(path, line, column: str, value) -> int:
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise AnnotationError(f"{_where(path, line)}: column {column!r} should be an integer, "
                              f"got {value!r}") from None


def _as_float(path, line, column: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{_where(path, line)}: column {column!r} should be a number, "
                              f"got {value!r}") from None


# ----------------------------------------------------------------------------- Kinetics-400


@dataclass(frozen=True)
class KineticsClip:
    video_id: str  # file stem, e.g. "abc123XYZ_w_000010_000020"
    path: str      # video file; it may not exist (loading then reports the missing file)
    label: int     # class index


def read_kinetics_list(path, video_root: str = "", num_classes: int | None = None) -> list[KineticsClip]:
    """PySlowFast list: one `path label` per line, no header; `label` an integer class index.

    Relative paths are joined to `video_root`. The label is the last whitespace-separated field,
    so paths may contain spaces.
    """
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: list file not found")
    clips, out_of_range = [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
                raise AnnotationError(f"{_where(path, line_no)}: expected `<video path> <integer "
                                      f"label>`, got {line!r}")
            label = int(parts[1])
            if label < 0 or (num_classes is not None and label >= num_classes):
                out_of_range.append((str(label), line_no))
            video = os.path.join(video_root, parts[0])
            stem = os.path.splitext(os.path.basename(parts[0]))[0]
            clips.append(KineticsClip(video_id=stem, path=video, label=label))
    if out_of_range:
        hint = f"labels 0..{num_classes - 1}" if num_classes is not None else "labels >= 0"
        raise _unknown_classes_error(path, out_of_range, hint)
    return clips


def read_class_names(path) -> list[str]:
    """Class names in index order, from a text file (one name per line, index = order) or a
    JSON object `{name: index}` (PySlowFast's `classids.json`)."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: class-names file not found")
    if os.fspath(path).endswith(".json"):
        mapping = _load_json(path)
        if not isinstance(mapping, dict):
            raise AnnotationError(f"{os.fspath(path)}: expected a JSON object {{class name: index}}")
        return _names_from_index_map(path, mapping)
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise AnnotationError(f"{os.fspath(path)}: duplicate class names {dup}")
    return names


def _names_from_index_map(path, mapping: dict) -> list[str]:
    index_of = {}
    for name, value in mapping.items():
        try:
            index_of[name] = int(value)
        except (TypeError, ValueError):
            raise AnnotationError(f"{os.fspath(path)}: class {name!r} has index {value!r}, "
                                  f"expected an integer") from None
    if sorted(index_of.values()) != list(range(len(index_of))):
        raise AnnotationError(f"{os.fspath(path)}: class indices must be 0..{len(index_of) - 1}, "
                              f"each used once")
    return sorted(index_of, key=index_of.get)


def kinetics_csv_class_names(*csv_paths) -> list[str]:
    """The standard Kinetics label space: the sorted set of names in the official CSV(s)."""
    names = set()
    for path in csv_paths:
        names.update(row["label"].strip() for _, row in _csv_rows(path, ("label",)))
    return sorted(names)


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
    index of each label (see `kinetics_csv_class_names` / `read_class_names`).
    """
    index_of = {name: i for i, name in enumerate(class_names)}
    clips, unknown = [], []
    for line, row in _csv_rows(path, ("label", "youtube_id", "time_start", "time_end", "split")):
        label_name = row["label"].strip()
        youtube_id = row["youtube_id"].strip()
        if not youtube_id:
            raise AnnotationError(f"{_where(path, line)}: empty youtube_id")
        start = _as_int(path, line, "time_start", row["time_start"])
        end = _as_int(path, line, "time_end", row["time_end"])
        if label_name not in index_of:
            unknown.append((label_name, line))
            continue
        name = kinetics_clip_filename(youtube_id, start, end)
        split = row["split"].strip()
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


def _parse_charades_actions(path, line, text: str, unknown: list) -> tuple[CharadesAction, ...]:
    actions = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        fields = item.split()
        if len(fields) != 3:
            raise AnnotationError(f"{_where(path, line)}: action {item!r} should be `cNNN start end`")
        cls, start, end = fields
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise AnnotationError(f"{_where(path, line)}: action {item!r} has non-numeric times, "
                                  f"expected `cNNN start end` in seconds") from None
        match = re.fullmatch(r"c(\d{3})", cls)
        if match is None or int(match.group(1)) >= CHARADES_NUM_CLASSES:
            unknown.append((cls, line))
            continue
        actions.append(CharadesAction(int(match.group(1)), start_s, end_s))
    return tuple(actions)


def read_charades_ego(path) -> list[CharadesEgoVideo]:
    """`CharadesEgo_v1_{train,test}.csv`: one row per video (first-person ids end in `EGO`);
    `actions` is `c092 11.90 21.20;c147 0.00 12.60` (class, start s, end s) or empty."""
    videos, unknown = [], []
    for line, row in _csv_rows(path, CHARADES_EGO_COLUMNS):
        video_id = row["id"].strip()
        if not video_id:
            raise AnnotationError(f"{_where(path, line)}: empty video id")
        length = row["length"].strip()
        videos.append(CharadesEgoVideo(
            video_id=video_id, subject=row["subject"].strip(), scene=row["scene"].strip(),
            script=row["script"], length=_as_float(path, line, "length", length) if length else 0.0,
            charades_video=row["charades_video"].strip(),
            actions=_parse_charades_actions(path, line, row["actions"], unknown)))
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
    """`HH:MM:SS.fff` -> seconds."""
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d*)?)", str(text).strip())
    if match is None:
        raise AnnotationError(f"{_where(path, line)}: column {column!r} should be a timestamp "
                              f"HH:MM:SS.fff, got {text!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _load_table_pickle(path) -> list[dict]:
    """Rows of a pickled table: a list of dicts, a dict of equal-length columns, or a pandas
    DataFrame (the official EPIC `.pkl` files are DataFrames indexed by narration_id/uid; those
    need pandas installed, which the project does not require; the CSV files do not).
    Only open pickles from a trusted source: unpickling can run code."""
    try:
        with open(path, "rb") as f:
            table = pickle.load(f)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "pandas":
            raise AnnotationError(f"{os.fspath(path)}: is a pandas DataFrame pickle and pandas is "
                                  f"not installed; install pandas or use the CSV file of the same "
                                  f"name") from None
        raise AnnotationError(f"{os.fspath(path)}: cannot unpickle ({e})") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        raise AnnotationError(f"{os.fspath(path)}: not a readable pickle ({e})") from None
    if hasattr(table, "reset_index") and hasattr(table, "to_dict"):  # a pandas DataFrame
        if table.index.name is not None:
            table = table.reset_index()
        return table.to_dict("records")
    if isinstance(table, list) and all(isinstance(r, dict) for r in table):
        return table
    if isinstance(table, dict) and all(isinstance(c, (list, tuple)) for c in table.values()):
        lengths = {len(c) for c in table.values()}
        if len(lengths) > 1:
            raise AnnotationError(f"{os.fspath(path)}: columns have different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        return [{k: table[k][i] for k in table} for i in range(n)]
    raise AnnotationError(f"{os.fspath(path)}: expected a pickled list of row dicts, dict of "
                          f"columns or pandas DataFrame, got {type(table).__name__}")


def _read_table(path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(columns, [(line/row number, row)]) from a CSV, or from a `.pkl` table (row number =
    position + 2, i.e. the line the row would have in the CSV of the same name)."""
    if not os.fspath(path).endswith(".pkl"):
        return _read_csv(path)
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: annotation file not found")
    rows = _load_table_pickle(path)
    columns = list(rows[0]) if rows else []
    for i, row in enumerate(rows):
        if set(row) != set(columns):
            raise AnnotationError(f"{os.fspath(path)}: row {i} has columns {sorted(row)}, "
                                  f"expected {sorted(columns)} like row 0")
    return columns, [(i + 2, row) for i, row in enumerate(rows)]


def read_epic_segments(path, num_verbs: int, num_nouns: int) -> list[EpicSegment]:
    """EPIC-Kitchens action segments from CSV or `.pkl`.

    EPIC-100: `EPIC_100_{train,validation}` (labelled, id column `narration_id`) and
    `EPIC_100_test_timestamps` (no labels). EPIC-55: `EPIC_train_action_labels` (id `uid`) and
    `EPIC_test_s{1,2}_timestamps` (no labels). Files without `verb_class`/`noun_class` give
    segments with class -1. Class ids outside [0, num_verbs) / [0, num_nouns) are all listed
    in one error.
    """
    header, rows = _read_table(path)
    id_column = "narration_id" if "narration_id" in header else "uid"
    required = [id_column, "participant_id", "video_id", "start_timestamp", "stop_timestamp",
                "start_frame", "stop_frame"]
    labelled = "verb_class" in header or "noun_class" in header
    if labelled:
        required += ["verb_class", "noun_class"]
    _require_columns(path, header, required)
    segments, unknown = [], []
    for line, row in rows:
        start = _as_int(path, line, "start_frame", row["start_frame"])
        stop = _as_int(path, line, "stop_frame", row["stop_frame"])
        if start < 1 or stop < start:
            raise AnnotationError(f"{_where(path, line)}: expected 1 <= start_frame <= stop_frame, "
                                  f"got {start}, {stop}")
        verb = noun = -1
        if labelled:
            verb = _as_int(path, line, "verb_class", row["verb_class"])
            noun = _as_int(path, line, "noun_class", row["noun_class"])
            if not 0 <= verb < num_verbs:
                unknown.append((f"verb_class {verb}", line))
            if not 0 <= noun < num_nouns:
                unknown.append((f"noun_class {noun}", line))
        segments.append(EpicSegment(
            segment_id=str(row[id_column]).strip(), participant_id=str(row["participant_id"]).strip(),
            video_id=str(row["video_id"]).strip(),
            start_timestamp=parse_timestamp(path, line, "start_timestamp", row["start_timestamp"]),
            stop_timestamp=parse_timestamp(path, line, "stop_timestamp", row["stop_timestamp"]),
            start_frame=start, stop_frame=stop, narration=str(row.get("narration", "") or ""),
            verb_class=verb, noun_class=noun))
    if unknown:
        raise _unknown_classes_error(path, unknown, f"verb_class 0..{num_verbs - 1} and noun_class "
                                                    f"0..{num_nouns - 1}")
    return segments


def read_epic_unseen_participants(path) -> set[str]:
    """`EPIC_100_unseen_participant_ids_{validation,test}.csv`: header `participant_id`."""
    return {row["participant_id"].strip() for _, row in _csv_rows(path, ("participant_id",))}


def read_epic_tail_classes(path) -> set[int]:
    """`EPIC_100_tail_verbs.csv` / `EPIC_100_tail_nouns.csv`: one column, header `verb` or `noun`,
    one class id per line."""
    header, rows = _read_csv(path)
    column = "noun" if "noun" in header else "verb"
    _require_columns(path, header, (column,))
    return {_as_int(path, line, column, row[column]) for line, row in rows}


# ----------------------------------------------------------------------------- SSv2


@dataclass(frozen=True)
class SSv2Video:
    video_id: str
    label: int  # -1 in the test list (ids only)


def _load_json(path):
    if not os.path.isfile(path):
        raise AnnotationError(f"{os.fspath(path)}: annotation file not found")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{_where(path, e.lineno)}: invalid JSON at column {e.colno} "
                                  f"({e.msg})") from None


def read_ssv2_labels(path) -> dict[str, int]:
    """`something-something-v2-labels.json`: `{template: "index"}`, indices 0..N-1."""
    mapping = _load_json(path)
    if not isinstance(mapping, dict):
        raise AnnotationError(f"{os.fspath(path)}: expected a JSON object {{template: index}}")
    names = _names_from_index_map(path, mapping)
    return {name: i for i, name in enumerate(names)}


def read_ssv2_split(path, labels: dict[str, int]) -> list[SSv2Video]:
    """`something-something-v2-{train,validation,test}.json`: a list of
    `{"id", "label", "template", "placeholders"}` (test: `{"id"}` only). The class is
    `labels[template without "[" and "]"]`; entries without a template get label -1."""
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise AnnotationError(f"{os.fspath(path)}: expected a JSON list of video entries")
    videos, unknown = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise AnnotationError(f"{os.fspath(path)}: entry {i} should be an object with an "
                                  f"\"id\", got {entry!r:.80}")
        label = -1
        if "template" in entry:
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in labels:
                unknown.append((template, i))
                continue
            label = labels[template]
        videos.append(SSv2Video(video_id=str(entry["id"]), label=label))
    if unknown:
        raise _unknown_classes_error(path, unknown, "a template of the labels file", unit="entry")
    return videos
