"""Seeded fuzz of the annotation readers over the official files that data.synthetic writes.

Each mutated file must either raise AnnotationError naming the file, or read to exactly the
reference records of the clean file, except the records of the lines (JSON entries, pickle
rows) the mutation touched; those may differ but must still obey the module's rules. Never
another exception, never fewer or more records.

Mutations: a byte changed to a random one, a line (entry, row) repeated elsewhere, a double
quote inserted, one field replaced with an absurd value (huge, negative, NaN, infinite, Unicode
digits, underscores, path-climbing ids, wrong types), and, for pickles, damaged bytes.
"""

import csv
import io
import json
import math
import os
import pickle
import random
import re

import numpy as np
import pytest

from data.annotations import (EPIC_MAX_FRAME, MAX_VIDEO_SECONDS, AnnotationError, CharadesEgoVideo, EpicSegment,
                              KineticsClip, SSv2Video, kinetics_csv_class_names, read_charades_ego,
                              read_class_names, read_epic_segments, read_kinetics_csv, read_kinetics_list,
                              read_ssv2_labels, read_ssv2_split)
from data.synthetic import make_charades_ego, make_epic55, make_epic100, make_kinetics, make_ssv2

MUTATIONS = 240
ABSURD_TEXT = ["1e9", "1000000000", "99999999999999999999", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "1e999",
               "1_000", "\u0661\u0662", "\uff13", "0x10", "3.5", "", " ", "00:61:00", "00:00:60.50", "99:99:99",
               "-00:00:01", "../x", "/abs", "a/b", "..", "x\x00y", "\u2028"]
ABSURD_VALUES = [None, float("nan"), float("inf"), -1, 10**12, 2.5, True, "", "../x", [1], {"a": 1}, b"x",
                 "\u0661\u0662", "1_000", np.int64(7), np.float64(3.0), np.str_("P01"), (1, 2), 10**400]
ID_TEXT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


# ----------------------------------------------------------------------------- what an accepted record obeys


def assert_sane(record, num_classes=None):
    """The rules of data/annotations.py, checked on a record a reader accepted."""
    if isinstance(record, KineticsClip):
        assert record.video_id and ".." not in record.path.split(os.sep)
        assert 0 <= record.label < num_classes
    elif isinstance(record, CharadesEgoVideo):
        assert ID_TEXT.fullmatch(record.video_id)
        assert 0 <= record.length <= MAX_VIDEO_SECONDS
        for action in record.actions:
            assert 0 <= action.label < 157
            assert 0 <= action.start <= MAX_VIDEO_SECONDS and 0 <= action.end <= MAX_VIDEO_SECONDS
    elif isinstance(record, EpicSegment):
        assert all(ID_TEXT.fullmatch(x) for x in (record.segment_id, record.participant_id, record.video_id))
        assert record.video_id.startswith(record.participant_id + "_")
        assert 1 <= record.start_frame <= record.stop_frame <= EPIC_MAX_FRAME
        assert 0 <= record.start_timestamp <= record.stop_timestamp <= MAX_VIDEO_SECONDS
        assert math.isfinite(record.start_timestamp) and math.isfinite(record.stop_timestamp)
        assert isinstance(record.narration, str)
    elif isinstance(record, SSv2Video):
        assert re.fullmatch(r"[0-9]+", record.video_id)
    else:
        raise AssertionError(f"unexpected record {record!r}")


def check(read, path, reference, touched: set[int], num_classes=None) -> str:
    """Read a mutated file: an AnnotationError naming it, or the reference records except at the
    touched record indices. Returns "rejected" or "accepted"."""
    try:
        records = read(path)
    except AnnotationError as e:
        assert os.path.basename(path) in str(e)
        return "rejected"
    assert len(records) == len(reference), f"{path}: {len(records)} records, expected {len(reference)}"
    for k, (got, want) in enumerate(zip(records, reference)):
        if k not in touched:
            assert got == want, f"{path}: record {k} changed by a mutation elsewhere ({touched})"
        assert_sane(got, num_classes)
    return "accepted"


# ----------------------------------------------------------------------------- mutations


def line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos)  # 0-based physical line


def mutate_lines(data: bytes, rng: random.Random, first_data_line: int, kind: str, absurd_field):
    """(mutated bytes, touched 0-based record indices) for a file of one record per line."""
    lines = data.split(b"\n")[:-1]  # the files end with a newline
    records = len(lines) - first_data_line
    if kind == "byte":
        pos = rng.randrange(len(data))
        new = bytes([rng.choice([b for b in range(256) if b != data[pos]])])
        line = line_of(data, pos)
        return data[:pos] + new + data[pos + 1:], {line - first_data_line, line + 1 - first_data_line}
    if kind == "quote":
        pos = rng.randrange(len(data))
        return data[:pos] + b'"' + data[pos:], {line_of(data, pos) - first_data_line}
    row = rng.randrange(first_data_line, len(lines))
    if kind == "repeat":
        lines.insert(rng.randrange(first_data_line, len(lines) + 1), lines[row])
        return b"\n".join(lines) + b"\n", set(range(records))  # must be rejected: one record too many
    lines[row] = absurd_field(lines[row].decode(), rng).encode()
    return b"\n".join(lines) + b"\n", {row - first_data_line}


def absurd_csv_field(line: str, rng: random.Random) -> str:
    fields = next(csv.reader([line]))
    fields[rng.randrange(len(fields))] = rng.choice(ABSURD_TEXT)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def absurd_list_field(line: str, rng: random.Random) -> str:
    path, label = line.rsplit(" ", 1)
    return f"{path} {rng.choice(ABSURD_TEXT)}" if rng.random() < 0.5 else f"{rng.choice(ABSURD_TEXT)} {label}"


def mutate_json(entries: list, rng: random.Random, kind: str):
    """(mutated text, touched entry indices) for a JSON list written as json.dump writes it."""
    texts = [json.dumps(e) for e in entries]
    text = "[" + ", ".join(texts) + "]"
    if kind in ("byte", "quote"):
        data = text.encode()
        pos = rng.randrange(len(data))
        insert = b'"' if kind == "quote" else bytes([rng.choice([b for b in range(256) if b != data[pos]])])
        data = data[:pos] + insert + data[pos + (kind == "byte"):]
        ends = np.cumsum([len(t.encode()) + 2 for t in texts])  # each entry and its ", " (or "[" first)
        entry = int(np.searchsorted(ends, pos, side="right"))
        return data, {entry - 1, entry, entry + 1}
    entries = [dict(e) for e in entries]
    k = rng.randrange(len(entries))
    if kind == "repeat":
        entries.insert(rng.randrange(len(entries) + 1), entries[k])
        return json.dumps(entries).encode(), set(range(len(entries)))
    key = rng.choice(["id", "id", "template", "label", "placeholders"])
    if rng.random() < 0.2:
        entries[k].pop(key, None)
    else:
        entries[k][key] = rng.choice(ABSURD_TEXT + [v for v in ABSURD_VALUES if not isinstance(v, (bytes, tuple))
                                                    and not isinstance(v, np.generic) and v != 10**400])
    return json.dumps(entries).encode(), {k}


def mutate_pickle(rows: list, rng: random.Random, kind: str):
    rows = [dict(r) for r in rows]
    k = rng.randrange(len(rows))
    if kind == "repeat":
        rows.insert(rng.randrange(len(rows) + 1), rows[k])
        return pickle.dumps(rows), set(range(len(rows)))
    if kind in ("byte", "quote"):  # damaged bytes: which row they hit is unknown, at most one
        data = bytearray(pickle.dumps(rows))
        for _ in range(rng.randint(1, 3) if kind == "byte" else 1):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), None
    column = rng.choice(list(rows[k]))
    if rng.random() < 0.1:
        del rows[k][column]
    else:
        rows[k][column] = rng.choice(ABSURD_VALUES + ABSURD_TEXT)
    return pickle.dumps(rows), {k}


# ----------------------------------------------------------------------------- the official files


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    k = make_kinetics(str(root / "kinetics"), num_classes=3, videos_per_class=2, val_videos_per_class=1,
                      size=(16, 16), num_frames=4)
    c = make_charades_ego(str(root / "charades"), train_pairs=3, test_pairs=1, size=(16, 16), num_frames=24)
    e = make_epic100(str(root / "epic100"), size=(16, 16), segment_frames=2, gap_frames=1)
    e55 = make_epic55(str(root / "epic55"), size=(16, 16), segment_frames=2, gap_frames=1)
    s = make_ssv2(str(root / "ssv2"), videos_per_class=1, val_videos_per_class=1, test_videos=3, size=(16, 16),
                  num_frames=4)
    class_names = read_class_names(k["classnames"])
    labels = read_ssv2_labels(s["json"]["labels"])
    with open(e["csv"]["train"], newline="") as f:
        epic_rows = [{**row, **{c: int(row[c]) for c in ("start_frame", "stop_frame", "verb_class", "noun_class")}}
                     for row in csv.DictReader(f)]
    pkl = root / "EPIC_100_train.pkl"
    pkl.write_bytes(pickle.dumps(epic_rows))
    read_epic100 = lambda p: read_epic_segments(p, 97, 300)  # noqa: E731
    return {
        # name: (clean file, reader, first data line, field mutator or format, class count)
        "kinetics_list": (k["lists"]["train"], lambda p: read_kinetics_list(p, k["video_root"], 3), 0,
                          absurd_list_field, 3),
        "kinetics_csv": (k["official_csv"]["train"], lambda p: read_kinetics_csv(p, k["video_root"], class_names),
                         1, absurd_csv_field, 3),
        "charades": (c["csv"]["train"], read_charades_ego, 1, absurd_csv_field, None),
        "epic100": (e["csv"]["train"], read_epic100, 1, absurd_csv_field, None),
        "epic100_test": (e["csv"]["test"], read_epic100, 1, absurd_csv_field, None),
        "epic55": (e55["csv"]["train"], lambda p: read_epic_segments(p, 125, 352), 1, absurd_csv_field, None),
        "epic55_test": (e55["csv"]["s1"], lambda p: read_epic_segments(p, 125, 352), 1, absurd_csv_field, None),
        "ssv2_train": (s["json"]["train"], lambda p: read_ssv2_split(p, labels), None, "json", None),
        "ssv2_test": (s["json"]["test"], lambda p: read_ssv2_split(p, labels), None, "json", None),
        "epic100_pkl": (str(pkl), read_epic100, None, "pickle", None),
    }


def test_clean_files_read_and_pickle_matches_csv(official):
    for name, (path, read, *_) in official.items():
        assert len(read(path)) >= 2, name
    assert read_epic_segments(official["epic100_pkl"][0], 97, 300) == \
        read_epic_segments(official["epic100"][0], 97, 300)


def test_mutated_official_files_are_read_exactly_or_rejected(official, tmp_path):
    rng = random.Random(20210617)
    names = sorted(official)
    outcomes = {}
    for i in range(MUTATIONS):
        name = names[i % len(names)]
        path, read, first_data_line, form, num_classes = official[name]
        kind = rng.choice(["byte", "byte", "repeat", "quote", "field", "field"])
        reference = read(path)
        with open(path, "rb") as f:
            data = f.read()
        if form == "json":
            mutated, touched = mutate_json(json.loads(data), rng, kind)
        elif form == "pickle":
            mutated, touched = mutate_pickle(pickle.loads(data), rng, kind)
        else:
            mutated, touched = mutate_lines(data, rng, first_data_line, kind, form)
        target = tmp_path / f"{i:03d}_{os.path.basename(path)}"
        target.write_bytes(mutated)
        if touched is None:  # damaged pickle bytes: at most one row may differ
            try:
                records = read(target)
            except AnnotationError as e:
                assert target.name in str(e)
                outcome = "rejected"
            else:
                assert len(records) == len(reference)
                assert sum(a != b for a, b in zip(records, reference)) <= 1
                for record in records:
                    assert_sane(record)
                outcome = "accepted"
        else:
            outcome = check(read, target, reference, touched, num_classes)
        if kind == "repeat":
            assert outcome == "rejected", f"{target}: a repeated line was accepted"
        if name == "kinetics_csv":  # the class map read from the mutated CSV itself
            try:
                assert kinetics_csv_class_names(target, num_classes=3) == kinetics_csv_class_names(path)
            except AnnotationError as e:
                assert target.name in str(e)
        outcomes[(name, kind, outcome)] = outcomes.get((name, kind, outcome), 0) + 1
    # the fuzz exercises both outcomes, for every file
    for name in names:
        assert any(n == name and o == "rejected" for n, _, o in outcomes), name
    assert sum(v for (_, _, o), v in outcomes.items() if o == "accepted") >= 10
