"""Official annotation readers: hand-written files in each released format, their parsed
records, and the errors for malformed lines and unknown classes."""

import json
import pickle

import pytest

from data.annotations import (AnnotationError, check_class_count, kinetics_csv_class_names,
                              read_charades_ego, read_class_names, read_epic_segments,
                              read_epic_tail_classes, read_epic_unseen_participants, read_kinetics_csv,
                              read_kinetics_list, read_ssv2_labels, read_ssv2_split)


def write(path, text):
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- Kinetics


def test_kinetics_list_paths_labels_and_spaces(tmp_path):
    f = write(tmp_path / "train.csv", "a/x.mp4 3\n\nb/my video.webm 0\n")
    clips = read_kinetics_list(f, video_root="/data", num_classes=4)
    assert [(c.path, c.label, c.video_id) for c in clips] == [
        ("/data/a/x.mp4", 3, "x"), ("/data/b/my video.webm", 0, "my video")]


def test_kinetics_list_malformed_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "train.csv", "a.mp4 1\nb.mp4 one\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2: expected `<video path> <integer label>`"):
        read_kinetics_list(f)


def test_kinetics_list_lists_every_out_of_range_label(tmp_path):
    f = write(tmp_path / "val.csv", "a.mp4 1\nb.mp4 7\nc.mp4 9\nd.mp4 7\n")
    with pytest.raises(AnnotationError) as e:
        read_kinetics_list(f, num_classes=4)
    msg = str(e.value)
    assert "2 unknown" in msg and "'7' (first at line 2)" in msg and "'9' (first at line 3)" in msg


KINETICS_CSV = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    '"passing American football (in game)",abc,14,24,train,0\n'
    "abseiling,def,0,10,train,0\n"
    "abseiling,ghi,5,15,train,0\n"
)


def test_kinetics_csv_class_map_and_file_resolution(tmp_path):
    f = write(tmp_path / "train.csv", KINETICS_CSV)
    names = kinetics_csv_class_names(f)
    assert names == ["abseiling", "passing American football (in game)"]
    root = tmp_path / "videos"
    # one clip directly under the root (webm), one under <split>/<label>/, one missing
    (root / "train" / "passing American football (in game)").mkdir(parents=True)
    (root / "train" / "passing American football (in game)" / "abc_000014_000024.mp4").write_bytes(b"x")
    (root / "def_000000_000010.webm").write_bytes(b"x")
    clips = read_kinetics_csv(f, str(root), names)
    assert [(c.video_id, c.label) for c in clips] == [
        ("abc_000014_000024", 1), ("def_000000_000010", 0), ("ghi_000005_000015", 0)]
    assert clips[0].path == str(root / "train" / "passing American football (in game)" / "abc_000014_000024.mp4")
    assert clips[1].path == str(root / "def_000000_000010.webm")
    assert clips[2].path == str(root / "ghi_000005_000015.mp4")  # first candidate: load reports it


def test_kinetics_csv_lists_all_unknown_class_names(tmp_path):
    f = write(tmp_path / "val.csv", KINETICS_CSV + "juggling,jjj,0,10,val,0\nzumba,zzz,0,10,val,0\n")
    with pytest.raises(AnnotationError) as e:
        read_kinetics_csv(f, str(tmp_path), ["abseiling"])
    msg = str(e.value)
    assert "3 unknown class name(s)" in msg
    for name, line in [("juggling", 5), ("zumba", 6), ("passing American football (in game)", 2)]:
        assert f"{name!r} (first at line {line})" in msg


def test_kinetics_csv_bad_time_and_missing_column(tmp_path):
    f = write(tmp_path / "a.csv", "label,youtube_id,time_start,time_end,split\nabseiling,x,zero,10,train\n")
    with pytest.raises(AnnotationError, match=r"a\.csv:2: column 'time_start' should be an integer"):
        read_kinetics_csv(f, str(tmp_path), ["abseiling"])
    g = write(tmp_path / "b.csv", "label,youtube_id,time_start,split\nabseiling,x,0,train\n")
    with pytest.raises(AnnotationError, match=r"b\.csv:1: header lacks column\(s\) time_end"):
        read_kinetics_csv(g, str(tmp_path), ["abseiling"])


def test_class_names_text_and_json(tmp_path):
    assert read_class_names(write(tmp_path / "c.txt", "b\na\n\n")) == ["b", "a"]
    assert read_class_names(write(tmp_path / "c.json", json.dumps({"x": 1, "y": 0}))) == ["y", "x"]
    with pytest.raises(AnnotationError, match="indices must be 0..1"):
        read_class_names(write(tmp_path / "d.json", json.dumps({"x": 2, "y": 0})))


# ----------------------------------------------------------------------------- Charades-Ego

# As released: Charades' columns (with `objects`) plus egocentric and charades_video, 13 in all.
CHARADES_HEADER = ("id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,"
                   "length,egocentric,charades_video\n")


def test_charades_ego_quoted_fields_actions_and_pairs(tmp_path):
    f = write(tmp_path / "CharadesEgo_v1_train.csv", CHARADES_HEADER +
              'AB12,S1,Kitchen,7,6,Yes,"A person opens a door, then sits.",door;chair,"One, two\nthree",'
              '"c092 11.90 21.20;c147 0.00 12.60",30.5,No,XYZ9\n'
              'AB12EGO,S1,Kitchen,7,6,Yes,"A person opens a door, then sits.",door;chair,desc,c000 1.0 2.0,'
              '29.0,Yes,XYZ9\n'
              "CD34EGO,S2,Hall,,,,script,,desc,,12,Yes,QQ11\n")
    videos = read_charades_ego(f)
    assert [v.video_id for v in videos] == ["AB12", "AB12EGO", "CD34EGO"]
    a, b, c = videos
    assert a.script == "A person opens a door, then sits."
    assert [(x.label, x.start, x.end) for x in a.actions] == [(92, 11.9, 21.2), (147, 0.0, 12.6)]
    assert not a.first_person and b.first_person and c.first_person
    assert a.pair_id == b.pair_id == "AB12" and c.pair_id == "CD34"
    assert c.actions == () and a.length == 30.5


def test_charades_ego_malformed_action_line_number_after_multiline_field(tmp_path):
    # the first data row spans lines 2-3 (quoted newline), so the bad row is line 4
    f = write(tmp_path / "CharadesEgo_v1_test.csv", CHARADES_HEADER +
              'AB12,S1,K,,,,s,o,"two\nlines",c001 1 2,10,No,X\n'
              "CD34,S1,K,,,,s,o,d,c001 1.0,10,No,X\n")
    with pytest.raises(AnnotationError, match=r"CharadesEgo_v1_test\.csv:4: action 'c001 1.0'"):
        read_charades_ego(f)


def test_charades_ego_lists_all_unknown_classes(tmp_path):
    f = write(tmp_path / "c.csv", CHARADES_HEADER +
              "A,S,K,,,,s,o,d,c157 1 2;c001 0 1,10,No,X\n"
              "B,S,K,,,,s,o,d,x12 1 2,10,No,X\n")
    with pytest.raises(AnnotationError) as e:
        read_charades_ego(f)
    assert "2 unknown" in str(e.value) and "'c157' (first at line 2)" in str(e.value)
    assert "'x12' (first at line 3)" in str(e.value) and "c000..c156" in str(e.value)


def test_charades_ego_wrong_field_count(tmp_path):
    f = write(tmp_path / "c.csv", CHARADES_HEADER + "A,S,K,,,,s,o,d,,10,No\n")
    with pytest.raises(AnnotationError, match=r"c\.csv:2: expected 13 comma-separated fields"):
        read_charades_ego(f)


# ----------------------------------------------------------------------------- EPIC

EPIC100_HEADER = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
                  "stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,"
                  "all_nouns,all_noun_classes\n")
EPIC100_ROWS = (
    "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,['door'],[3]\n"
    "P01_01_1,P01,P01_01,00:00:02.629,00:00:04.37,00:00:06.17,262,370,\"turn on light, then\",turn-on,6,"
    "light,114,['light'],[114]\n"
)


def test_epic100_csv_segments(tmp_path):
    f = write(tmp_path / "EPIC_100_train.csv", EPIC100_HEADER + EPIC100_ROWS)
    segs = read_epic_segments(f, num_verbs=97, num_nouns=300)
    s0, s1 = segs
    assert (s0.segment_id, s0.participant_id, s0.video_id) == ("P01_01_0", "P01", "P01_01")
    assert (s0.start_frame, s0.stop_frame, s0.verb_class, s0.noun_class) == (8, 202, 3, 3)
    assert s0.start_timestamp == pytest.approx(0.14) and s0.stop_timestamp == pytest.approx(3.37)
    assert s1.narration == "turn on light, then" and s1.noun_class == 114


def test_epic100_test_timestamps_have_no_labels(tmp_path):
    f = write(tmp_path / "EPIC_100_test_timestamps.csv",
              "uid,narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
              "start_frame,stop_frame\n"
              "1924,P01_11_0,P01,P01_11,01:02:03.851,01:02:03.50,01:02:04.00,223411,223441\n")
    (s,) = read_epic_segments(f, 97, 300)
    assert (s.segment_id, s.verb_class, s.noun_class) == ("P01_11_0", -1, -1)  # narration_id, not uid
    assert s.start_timestamp == pytest.approx(3723.5)


def test_epic_pickles_match_csv(tmp_path):
    csv_segs = read_epic_segments(write(tmp_path / "a.csv", EPIC100_HEADER + EPIC100_ROWS), 97, 300)
    rows = [{"narration_id": s.segment_id, "participant_id": s.participant_id, "video_id": s.video_id,
             "start_timestamp": ts, "stop_timestamp": te, "start_frame": s.start_frame,
             "stop_frame": s.stop_frame, "narration": s.narration, "verb_class": s.verb_class,
             "noun_class": s.noun_class}
            for s, ts, te in zip(csv_segs, ["00:00:00.14", "00:00:04.37"], ["00:00:03.37", "00:00:06.17"])]
    (tmp_path / "rows.pkl").write_bytes(pickle.dumps(rows))
    (tmp_path / "cols.pkl").write_bytes(pickle.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    assert read_epic_segments(tmp_path / "rows.pkl", 97, 300) == csv_segs
    assert read_epic_segments(tmp_path / "cols.pkl", 97, 300) == csv_segs


def test_epic_dataframe_pickle_is_a_clear_error(tmp_path):
    # protocol-0 opcodes for "an object of class pandas.core.frame.DataFrame"; refused by the
    # restricted unpickler whether or not pandas is installed
    (tmp_path / "EPIC_100_validation.pkl").write_bytes(b"cpandas.core.frame\nDataFrame\n)\x81.")
    with pytest.raises(AnnotationError, match=r"EPIC_100_validation\.pkl: is a pandas DataFrame pickle "
                                              r".*read the CSV file of the same name, or pass trusted=True"):
        read_epic_segments(tmp_path / "EPIC_100_validation.pkl", 97, 300)


def test_epic_lists_all_out_of_range_classes(tmp_path):
    rows = EPIC100_ROWS.replace(",6,light,114,", ",97,light,300,")
    f = write(tmp_path / "EPIC_100_validation.csv", EPIC100_HEADER + rows)
    with pytest.raises(AnnotationError) as e:
        read_epic_segments(f, 97, 300)
    assert "'verb_class 97' (first at line 3)" in str(e.value)
    assert "'noun_class 300' (first at line 3)" in str(e.value)


def test_epic_bad_frame_and_timestamp_lines(tmp_path):
    f = write(tmp_path / "x.csv", EPIC100_HEADER + EPIC100_ROWS.replace(",262,370,", ",262,200,"))
    with pytest.raises(AnnotationError, match=r"x\.csv:3: expected 1 <= start_frame <= stop_frame"):
        read_epic_segments(f, 97, 300)
    g = write(tmp_path / "y.csv", EPIC100_HEADER + EPIC100_ROWS.replace("00:00:04.37", "4.37"))
    with pytest.raises(AnnotationError, match=r"y\.csv:3: column 'start_timestamp' should be a timestamp"):
        read_epic_segments(g, 97, 300)


def test_epic55_uid_labels_and_test_split(tmp_path):
    f = write(tmp_path / "EPIC_train_action_labels.csv",
              "uid,participant_id,video_id,narration,start_timestamp,stop_timestamp,start_frame,"
              "stop_frame,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
              "7,P01,P01_01,open fridge,00:00:01.00,00:00:02.50,61,150,open,2,fridge,12,['fridge'],[12]\n")
    (s,) = read_epic_segments(f, 125, 352)
    assert (s.segment_id, s.verb_class, s.noun_class, s.start_frame) == ("7", 2, 12, 61)
    g = write(tmp_path / "EPIC_test_s2_timestamps.csv",
              "uid,participant_id,video_id,start_timestamp,stop_timestamp,start_frame,stop_frame\n"
              "9000,P09,P09_07,00:00:10.00,00:00:11.00,601,660\n")
    (t,) = read_epic_segments(g, 125, 352)
    assert (t.segment_id, t.verb_class, t.stop_frame) == ("9000", -1, 660)


def test_epic_unseen_and_tail_files(tmp_path):
    assert read_epic_unseen_participants(write(tmp_path / "u.csv", "participant_id\nP18\nP32\n")) == {"P18", "P32"}
    assert read_epic_tail_classes(write(tmp_path / "tv.csv", "verb\n10\n12\n")) == {10, 12}
    assert read_epic_tail_classes(write(tmp_path / "tn.csv", "noun\n56\n")) == {56}
    with pytest.raises(AnnotationError, match=r"tx\.csv:3: column 'verb' should be an integer"):
        read_epic_tail_classes(write(tmp_path / "tx.csv", "verb\n10\nten\n"))


# ----------------------------------------------------------------------------- SSv2


def test_ssv2_labels_and_templates(tmp_path):
    labels = read_ssv2_labels(write(tmp_path / "labels.json", json.dumps(
        {"Pushing something from left to right": "1", "Putting something on a surface": "0"})))
    assert labels == {"Putting something on a surface": 0, "Pushing something from left to right": 1}
    split = write(tmp_path / "train.json", json.dumps([
        {"id": "78687", "label": "pushing cup from left to right",
         "template": "Pushing [something] from left to right", "placeholders": ["cup"]},
        {"id": "42326", "label": "putting pen on a surface",
         "template": "Putting [something] on a surface", "placeholders": ["pen"]}]))
    assert [(v.video_id, v.label) for v in read_ssv2_split(split, labels)] == [("78687", 1), ("42326", 0)]
    test = write(tmp_path / "test.json", json.dumps([{"id": "1"}, {"id": "2"}]))
    assert [(v.video_id, v.label) for v in read_ssv2_split(test, labels)] == [("1", -1), ("2", -1)]


def test_ssv2_errors(tmp_path):
    labels = {"Putting something on a surface": 0}
    split = write(tmp_path / "v.json", json.dumps([
        {"id": "1", "template": "Tearing [something]"}, {"id": "2", "template": "Folding [something]"},
        {"id": "3", "template": "Tearing [something]"}]))
    with pytest.raises(AnnotationError) as e:
        read_ssv2_split(split, labels)
    assert "2 unknown class name(s)" in str(e.value) and "'Folding something' (first at entry 1)" in str(e.value)
    assert "'Tearing something' (first at entry 0)" in str(e.value)
    bad = write(tmp_path / "b.json", '[\n  {"id": "1"},\n  {"id": 2,}\n]')
    with pytest.raises(AnnotationError, match=r"b\.json:3: invalid JSON"):
        read_ssv2_split(bad, labels)
    no_id = write(tmp_path / "n.json", json.dumps([{"id": "1"}, {"template": "x"}]))
    with pytest.raises(AnnotationError, match=r"n\.json: entry 1 should be an object with an \"id\""):
        read_ssv2_split(no_id, labels)


# ----------------------------------------------------------------------------- validation rules
# One hand-made malformed file per rule of the module docstring; each error names the file and
# the line (or JSON entry / pickle row).

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"
EPIC55_HEADER = ("uid,participant_id,video_id,narration,start_timestamp,stop_timestamp,start_frame,"
                 "stop_frame,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")
EPIC55_ROW = "7,P01,P01_01,open fridge,00:00:01.00,00:00:02.50,61,150,open,2,fridge,12,['fridge'],[12]\n"


def epic100_row(**changes):
    """The first EPIC100_ROWS line with some columns replaced."""
    fields = dict(zip(EPIC100_HEADER.strip().split(","), EPIC100_ROWS.splitlines()[0].split(",")))
    fields.update(changes)
    return ",".join(fields.values()) + "\n"


def read_kinetics_train_csv(path):
    return read_kinetics_csv(path, "/videos", ["abseiling", "passing American football (in game)"])


def read_epic100(path):
    return read_epic_segments(path, 97, 300)


READERS = {"list": lambda p: read_kinetics_list(p, "/videos", 4), "kinetics_csv": read_kinetics_train_csv,
           "charades": read_charades_ego, "epic": read_epic100}


@pytest.mark.parametrize("kind, good, bad_line", [
    ("list", b"a/x.mp4 1\n", b"b/caf\xe9.mp4 2\n"),
    ("kinetics_csv", KINETICS_HEADER.encode(), b"abseiling,d\xffef,0,10,train,0\n"),
    ("epic", EPIC100_HEADER.encode(), epic100_row(narration="open d\x00oor").encode().replace(b"\x00", b"\xc3")),
])
def test_bytes_that_are_not_utf8_name_their_line(tmp_path, kind, good, bad_line):
    f = tmp_path / "bad.csv"
    f.write_bytes(good + bad_line)
    with pytest.raises(AnnotationError, match=r"bad\.csv:2: bytes are not UTF-8"):
        READERS[kind](f)


def test_json_and_class_names_not_utf8_name_their_line(tmp_path):
    (tmp_path / "s.json").write_bytes(b'[\n{"id": "1"},\n{"id": "2\xff"}\n]')
    with pytest.raises(AnnotationError, match=r"s\.json:3: bytes are not UTF-8"):
        read_ssv2_split(tmp_path / "s.json", {})
    (tmp_path / "names.txt").write_bytes(b"abseiling\n\xfe\n")
    with pytest.raises(AnnotationError, match=r"names\.txt:2: bytes are not UTF-8"):
        read_class_names(tmp_path / "names.txt")


def test_utf8_bom_is_dropped(tmp_path):
    bom = "\ufeff"
    assert read_kinetics_list(write(tmp_path / "l.csv", bom + "a/x.mp4 1\n"), "/v")[0].path == "/v/a/x.mp4"
    (clip,) = read_kinetics_csv(write(tmp_path / "k.csv", bom + KINETICS_HEADER + "abseiling,def,0,10,train,0\n"),
                                "/v", ["abseiling"])
    assert clip.video_id == "def_000000_000010"
    assert read_class_names(write(tmp_path / "n.txt", bom + "b\na\n")) == ["b", "a"]
    assert read_ssv2_split(write(tmp_path / "s.json", bom + '[{"id": "5"}]'), {})[0].video_id == "5"
    (s,) = read_epic100(write(tmp_path / "e.csv", bom + EPIC100_HEADER + epic100_row()))
    assert s.segment_id == "P01_01_0"


def test_field_over_the_csv_limit_names_its_line(tmp_path):
    f = write(tmp_path / "big.csv", KINETICS_HEADER + "abseiling,def,0,10,train,0\n"
              + "abseiling,ghi,0,10,train," + "0" * 200_000 + "\n")
    with pytest.raises(AnnotationError, match=r"big\.csv:3: malformed CSV .*field larger than field limit"):
        read_kinetics_train_csv(f)


def test_stray_quote_that_would_swallow_rows_is_an_error(tmp_path):
    # the quote opened on line 3 runs to the quoted label of line 5: the csv module alone
    # would read lines 3-5 as one row and drop two clips
    f = write(tmp_path / "q.csv", KINETICS_HEADER + "abseiling,def,0,10,train,0\n"
              '"abseiling,ghi,5,15,train,0\nabseiling,jkl,5,15,train,0\n'
              '"passing American football (in game)",mno,1,11,train,0\n')
    with pytest.raises(AnnotationError, match=r"q\.csv:3: malformed CSV"):
        read_kinetics_train_csv(f)
    # a quote pair that strict CSV accepts but that joins lines outside a free-text column
    g = write(tmp_path / "j.csv", KINETICS_HEADER + '"abseiling,def,0,10,train,0\nabseiling,ghi,0,10,train,0\n'
              '",jkl,0,10,train,0\n')
    with pytest.raises(AnnotationError, match=r"j\.csv:2: column 'label' spans lines 2-4"):
        read_kinetics_train_csv(g)
    h = write(tmp_path / "e.csv", EPIC100_HEADER + epic100_row(narration='"open\ndoor"'))
    with pytest.raises(AnnotationError, match=r"e\.csv:2: column 'narration' spans lines 2-3"):
        read_epic100(h)
    # an unclosed quote runs to the end of the file
    u = write(tmp_path / "u.csv", EPIC100_HEADER + epic100_row(narration='"open door'))
    with pytest.raises(AnnotationError, match=r"u\.csv:2: malformed CSV"):
        read_epic100(u)


def test_list_lines_run_together_are_an_error(tmp_path):
    f = write(tmp_path / "l.csv", "a/x.mp4 1\nb/y.mp4 2c/z.mp4 3\n")
    with pytest.raises(AnnotationError, match=r"l\.csv:2: video path .* holds a second video file name"):
        read_kinetics_list(f)


def test_repeated_ids_name_both_lines(tmp_path):
    same = write(tmp_path / "l.csv", "a/x.mp4 1\nb/y.mp4 2\nc/x.mp4 1\n")
    with pytest.raises(AnnotationError, match=r"l\.csv:3: video id 'x' is listed twice, first at line 1"):
        read_kinetics_list(same)
    conflict = write(tmp_path / "m.csv", "a/x.mp4 1\nb/y.mp4 2\na/x.mp4 3\n")
    with pytest.raises(AnnotationError, match=r"m\.csv:3: video id 'x' has conflicting labels: label 1 at "
                                              r"line 1, label 3 at line 3"):
        read_kinetics_list(conflict)
    k = write(tmp_path / "k.csv", KINETICS_CSV + '"passing American football (in game)",def,0,10,train,0\n')
    with pytest.raises(AnnotationError, match=r"k\.csv:5: clip 'def_000000_000010' has conflicting labels: "
                                              r"'abseiling' at line 3"):
        read_kinetics_train_csv(k)
    c = write(tmp_path / "c.csv", CHARADES_HEADER + "AB12,S,K,,,,s,o,d,c001 1 2,10,No,X\n"
              "CD34,S,K,,,,s,o,d,,10,No,X\nAB12,S,K,,,,s,o,d,c001 1 2,10,No,X\n")
    with pytest.raises(AnnotationError, match=r"c\.csv:4: video id 'AB12' is listed twice, first at line 2"):
        read_charades_ego(c)
    e = write(tmp_path / "e.csv", EPIC100_HEADER + EPIC100_ROWS + epic100_row(verb_class="5"))
    with pytest.raises(AnnotationError, match=r"e\.csv:4: narration_id 'P01_01_0' has conflicting labels: "
                                              r"verb_class 3, noun_class 3 at line 2, verb_class 5"):
        read_epic100(e)
    e55 = write(tmp_path / "e55.csv", EPIC55_HEADER + EPIC55_ROW + EPIC55_ROW)
    with pytest.raises(AnnotationError, match=r"e55\.csv:3: uid '7' is listed twice, first at line 2"):
        read_epic_segments(e55, 125, 352)
    s = write(tmp_path / "s.json", json.dumps([{"id": "1"}, {"id": "2"}, {"id": 1}]))
    with pytest.raises(AnnotationError, match=r"s\.json: entry 2: id '1' is listed twice, first at entry 0"):
        read_ssv2_split(s, {})
    n = write(tmp_path / "names.txt", "a\nb\na\n")
    with pytest.raises(AnnotationError, match=r"names\.txt:3: class name 'a' is listed twice"):
        read_class_names(n)


@pytest.mark.parametrize("changes, message", [
    ({"stop_frame": "1000000000"}, r"expected 1 <= start_frame <= stop_frame <= 5184000"),
    ({"start_frame": "0"}, r"expected 1 <= start_frame"),
    ({"start_frame": "-8"}, r"expected 1 <= start_frame"),
    ({"stop_frame": "1e9"}, r"column 'stop_frame' should be an integer in ASCII digits, got '1e9'"),
    ({"stop_frame": "2_02"}, r"column 'stop_frame' should be an integer"),
    ({"start_frame": "\u0668"}, r"column 'start_frame' should be an integer"),  # Arabic-Indic 8
    ({"verb_class": "nan"}, r"column 'verb_class' should be an integer"),
    ({"start_timestamp": "00:61:00"}, r"column 'start_timestamp' should be a timestamp HH:MM:SS.fff"),
    ({"stop_timestamp": "00:00:60.00"}, r"column 'stop_timestamp' should be a timestamp"),
    ({"stop_timestamp": "00:00:0\u0663.37"}, r"column 'stop_timestamp' should be a timestamp"),
    ({"start_timestamp": "00:00:05.00"}, r"expected start_timestamp <= stop_timestamp"),
    ({"stop_timestamp": "00:10:00.00"}, r"start/stop_timestamp 0.14-600.00 s contradict start/stop_frame 8-202"),
])
def test_epic_numbers_times_and_frames(tmp_path, changes, message):
    f = write(tmp_path / "EPIC_100_train.csv", EPIC100_HEADER + EPIC100_ROWS + epic100_row(**changes))
    with pytest.raises(AnnotationError, match=r"EPIC_100_train\.csv:4: " + message):
        read_epic100(f)


def test_epic_long_segment_and_frame_rates(tmp_path):
    # a three-hour segment: frames and times agree at 60 fps, but no action lasts that long
    long = epic100_row(stop_timestamp="03:00:00.00", stop_frame=str(3 * 3600 * 60 + 1))
    with pytest.raises(AnnotationError, match=r"x\.csv:2: segment of 647994 frames, longer than 432000"):
        read_epic100(write(tmp_path / "x.csv", EPIC100_HEADER + long))
    # frames at 50 fps (some EPIC-100 videos) agree with the times; 24 fps ones only when asked
    at_50 = epic100_row(start_timestamp="00:10:00.00", stop_timestamp="00:10:02.00", start_frame="30001",
                        stop_frame="30101")
    assert read_epic100(write(tmp_path / "y.csv", EPIC100_HEADER + at_50))[0].start_frame == 30001
    at_24 = epic100_row(start_timestamp="00:10:00.00", stop_timestamp="00:10:02.00", start_frame="14401",
                        stop_frame="14449")
    with pytest.raises(AnnotationError, match=r"z\.csv:2: .*contradict.*240\.00-240\.80 s at 60 fps"):
        read_epic100(write(tmp_path / "z.csv", EPIC100_HEADER + at_24))
    (s,) = read_epic_segments(tmp_path / "z.csv", 97, 300, frame_rates=(24,))
    assert (s.start_frame, s.stop_timestamp) == (14401, 602.0)


@pytest.mark.parametrize("changes, message", [
    ({"video_id": "../P01_01"}, r"column 'video_id' should be an id of ASCII letters"),
    ({"video_id": "P01/01"}, r"column 'video_id' should be an id"),
    ({"participant_id": ""}, r"column 'participant_id' should be an id"),
    ({"video_id": "P02_01", "narration_id": "P02_01_0"}, r"video_id 'P02_01' should begin with its "
                                                         r"participant_id 'P01'"),
    ({"narration_id": "P01_02_0"}, r"narration_id 'P01_02_0' should begin with its video_id 'P01_01'"),
])
def test_epic_ids(tmp_path, changes, message):
    f = write(tmp_path / "EPIC_100_validation.csv", EPIC100_HEADER + epic100_row(**changes))
    with pytest.raises(AnnotationError, match=r"EPIC_100_validation\.csv:2: " + message):
        read_epic100(f)


def test_epic_labelled_file_needs_narration_and_uids_are_digits(tmp_path):
    header = EPIC100_HEADER.replace("narration,", "text,")
    with pytest.raises(AnnotationError, match=r"n\.csv:1: header lacks column\(s\) narration"):
        read_epic100(write(tmp_path / "n.csv", header + epic100_row()))
    with pytest.raises(AnnotationError, match=r"u\.csv:2: uid should be a non-empty string of ASCII digits"):
        read_epic_segments(write(tmp_path / "u.csv", EPIC55_HEADER + "x7" + EPIC55_ROW[1:]), 125, 352)


@pytest.mark.parametrize("row, message", [
    ("abseiling,def,-5,5,train,0", r"expected 0 <= time_start < time_end"),
    ("abseiling,def,10,10,train,0", r"expected 0 <= time_start < time_end"),
    ("abseiling,def,20,10,train,0", r"expected 0 <= time_start < time_end"),
    ("abseiling,def,0,1_000,train,0", r"column 'time_end' should be an integer"),
    ("abseiling,def,\u0661,10,train,0", r"column 'time_start' should be an integer"),
    ("abseiling,,0,10,train,0", r"column 'youtube_id' should be an id"),
    ("abseiling,../../etc,0,10,train,0", r"column 'youtube_id' should be an id"),
    ("abseiling,def,0,10,../train,0", r"column 'split' should be an id"),
    ("../abseiling,def,0,10,train,0", r"column 'label' should be a printable class name without path "
                                      r"separators"),
])
def test_kinetics_csv_times_and_ids(tmp_path, row, message):
    f = write(tmp_path / "train.csv", KINETICS_CSV + row + "\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:5: " + message):
        read_kinetics_train_csv(f)


@pytest.mark.parametrize("line, message", [
    ("../x.mp4 1", r"video path '\.\./x\.mp4' should be printable and, under a video_root, relative"),
    ("a/../../x.mp4 1", r"video path .* relative without '\.\.' components"),
    ("/abs/x.mp4 1", r"video path '/abs/x\.mp4'"),
    ("a/x\x07.mp4 1", r"video path .* should be printable"),
    ("a/y.mp4 \u0663", r"expected `<video path> <integer label>`"),
    ("a/y.mp4 1_0", r"expected `<video path> <integer label>`"),
    ("a/ 1", r"video path 'a/' names no file"),
])
def test_kinetics_list_paths_and_labels(tmp_path, line, message):
    f = write(tmp_path / "train.csv", "a/x.mp4 1\n" + line + "\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2: " + message):
        read_kinetics_list(f, video_root="/videos")


def test_kinetics_list_without_root_keeps_absolute_and_parent_paths(tmp_path):
    f = write(tmp_path / "train.csv", "/data/k/x.mp4 1\n../k/y.mp4 0\n")
    assert [c.path for c in read_kinetics_list(f)] == ["/data/k/x.mp4", "../k/y.mp4"]


@pytest.mark.parametrize("fields, message", [
    ("A,S,K,,,,s,o,d,c001 1 2,-3,No,X", r"column 'length' should be in \[0, 86400\] seconds, got -3.0"),
    ("A,S,K,,,,s,o,d,c001 1 2,nan,No,X", r"column 'length' should be a finite number in ASCII, got 'nan'"),
    ("A,S,K,,,,s,o,d,c001 1 2,inf,No,X", r"column 'length' should be a finite number"),
    ("A,S,K,,,,s,o,d,c001 1 2,1e9,No,X", r"column 'length' should be in \[0, 86400\] seconds"),
    ("A,S,K,,,,s,o,d,c001 1 2,1e999,No,X", r"column 'length' should be a finite number"),
    ("A,S,K,,,,s,o,d,c001 -1 2,10,No,X", r"column 'actions \(c001 -1 2\)' should be in \[0, 86400\]"),
    ("A,S,K,,,,s,o,d,c001 nan 2,10,No,X", r"action 'c001 nan 2' has non-numeric times"),
    ("A,S,K,,,,s,o,d,c001 1 inf,10,No,X", r"action 'c001 1 inf' has non-numeric times"),
    ("A,S,K,,,,s,o,d,c001 \u0661 2,10,No,X", r"action 'c001 \u0661 2' has non-numeric times"),
    ("A/B,S,K,,,,s,o,d,,10,No,X", r"column 'id' should be an id"),
    (",S,K,,,,s,o,d,,10,No,X", r"column 'id' should be an id"),
])
def test_charades_lengths_times_and_ids(tmp_path, fields, message):
    f = write(tmp_path / "CharadesEgo_v1_train.csv",
              CHARADES_HEADER + "Z9,S,K,,,,s,o,d,,10,No,X\n" + fields + "\n")
    with pytest.raises(AnnotationError, match=r"CharadesEgo_v1_train\.csv:3: " + message):
        read_charades_ego(f)


def test_charades_reversed_span_is_kept(tmp_path):
    f = write(tmp_path / "c.csv", CHARADES_HEADER + "A,S,K,,,,s,o,d,c001 5.0 2.0,10,No,X\n")
    (action,) = read_charades_ego(f)[0].actions
    assert (action.start, action.end) == (5.0, 2.0)
    assert action.overlaps(3.0, 4.0) and not action.overlaps(5.5, 6.0)


def test_class_count_checks(tmp_path):
    with pytest.raises(AnnotationError, match=r"names\.txt: the class map has 2 classes but the model has 3"):
        check_class_count(["a", "b"], 3, "names.txt")
    check_class_count(["a", "b"], 2, "names.txt")
    misspelt = write(tmp_path / "train.csv", KINETICS_CSV + "abseilng,jjj,0,10,train,0\n")
    with pytest.raises(AnnotationError, match=r"train\.csv \(fewest rows: 'abseilng' \(1 row\(s\), first at "
                                              r".*train\.csv:5\).*\): the class map has 3 classes but the "
                                              r"model has 2"):
        kinetics_csv_class_names(misspelt, num_classes=2)
    assert kinetics_csv_class_names(write(tmp_path / "ok.csv", KINETICS_CSV), num_classes=2) == [
        "abseiling", "passing American football (in game)"]


SSV2_LABELS = {"Putting something on a surface": 0}
SSV2_ENTRY = {"id": "1", "label": "putting pen on a surface", "template": "Putting [something] on a surface",
              "placeholders": ["pen"]}


@pytest.mark.parametrize("bad, message", [
    ({"id": ""}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"id": "../7"}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"id": "\u0661\u0662"}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"id": 2.5}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"id": True}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"id": None}, r"\"id\" should be a non-empty string of ASCII digits"),
    ({"label": 3}, r"\"label\" should be a string, got 3"),
    ({"template": ["Putting [something] on a surface"]}, r"\"template\" should be a string"),
    ({"placeholders": "pen"}, r"\"placeholders\" should be a list of strings"),
])
def test_ssv2_entry_types(tmp_path, bad, message):
    f = write(tmp_path / "train.json", json.dumps([SSV2_ENTRY, {**SSV2_ENTRY, "id": "2", **bad}]))
    with pytest.raises(AnnotationError, match=r"train\.json: entry 1: " + message):
        read_ssv2_split(f, SSV2_LABELS)


def test_ssv2_labelled_throughout(tmp_path):
    ids_only = write(tmp_path / "test.json", json.dumps([{"id": "1"}, {"id": 2}]))
    assert [(v.video_id, v.label) for v in read_ssv2_split(ids_only, SSV2_LABELS)] == [("1", -1), ("2", -1)]
    with pytest.raises(AnnotationError, match=r"test\.json: entry 0: has no \"template\".*require_labels=True"):
        read_ssv2_split(ids_only, SSV2_LABELS, require_labels=True)
    mixed = write(tmp_path / "validation.json", json.dumps([SSV2_ENTRY, {"id": "2"}, {"id": "3"}]))
    with pytest.raises(AnnotationError, match=r"validation\.json: entry 1: entry 0 has a \"template\" and "
                                              r"entry 1 has none"):
        read_ssv2_split(mixed, SSV2_LABELS)
    labelled = write(tmp_path / "train.json", json.dumps([SSV2_ENTRY, {**SSV2_ENTRY, "id": 7}]))
    assert [(v.video_id, v.label) for v in read_ssv2_split(labelled, SSV2_LABELS, require_labels=True)] == [
        ("1", 0), ("7", 0)]


def test_ssv2_conflicting_templates_and_repeated_keys(tmp_path):
    labels = {"Putting something on a surface": 0, "Tearing something": 1}
    f = write(tmp_path / "train.json", json.dumps([SSV2_ENTRY, {**SSV2_ENTRY, "template": "Tearing [something]"}]))
    with pytest.raises(AnnotationError, match=r"train\.json: entry 1: id '1' has conflicting labels: "
                                              r"'Putting something on a surface' at entry 0"):
        read_ssv2_split(f, labels)
    g = write(tmp_path / "dup.json", '[{"id": "1", "id": "2"}]')
    with pytest.raises(AnnotationError, match=r"dup\.json: a JSON object repeats key\(s\) \['id'\]"):
        read_ssv2_split(g, labels)


def test_label_index_maps_take_ascii_integers_only(tmp_path):
    for value in ["\u0661", "1_0", 1.5, True, "nan"]:
        f = write(tmp_path / "labels.json", json.dumps({"A": "0", "B": value}))
        with pytest.raises(AnnotationError, match=r"labels\.json: class 'B': column 'index' should be an integer"):
            read_ssv2_labels(f)
    assert read_ssv2_labels(write(tmp_path / "ok.json", json.dumps({"A": 1, "B": "0"}))) == {"B": 0, "A": 1}


# ----------------------------------------------------------------------------- .pkl tables


def epic_rows():
    return [{"narration_id": "P01_01_0", "participant_id": "P01", "video_id": "P01_01",
             "start_timestamp": "00:00:00.14", "stop_timestamp": "00:00:03.37", "start_frame": 8,
             "stop_frame": 202, "narration": "open door", "verb_class": 3, "noun_class": 3}]


def test_pickle_with_code_is_refused_by_name(tmp_path):
    # protocol-0 opcodes for os.system("echo pwned"): refused before anything runs
    f = tmp_path / "EPIC_100_train.pkl"
    f.write_bytes(b"cos\nsystem\n(S'echo pwned > " + str(tmp_path / "ran").encode() + b"'\ntR.")
    with pytest.raises(AnnotationError, match=r"EPIC_100_train\.pkl: refused to unpickle os\.system"):
        read_epic100(f)
    assert not (tmp_path / "ran").exists()


def test_pickle_globals_and_trusted(tmp_path):
    import fractions
    f = tmp_path / "rows.pkl"
    f.write_bytes(pickle.dumps([{**r, "stop_frame": fractions.Fraction(202)} for r in epic_rows()]))
    with pytest.raises(AnnotationError, match=r"rows\.pkl: refused to unpickle fractions\.Fraction"):
        read_epic100(f)
    (s,) = read_epic_segments(f, 97, 300, trusted=True)
    assert (s.segment_id, s.stop_frame, s.narration) == ("P01_01_0", 202, "open door")


def test_pickle_with_numpy_values_is_read(tmp_path):
    import numpy as np
    rows = epic_rows()
    columns = {k: np.array([r[k] for r in rows]) for k in rows[0]}  # int64 and <U arrays
    (tmp_path / "cols.pkl").write_bytes(pickle.dumps(columns))
    typed = [{**r, "start_frame": np.int64(8), "stop_frame": 202.0, "verb_class": np.int32(3)} for r in rows]
    (tmp_path / "typed.pkl").write_bytes(pickle.dumps(typed, protocol=5))
    expected = read_epic100(write(tmp_path / "a.csv", EPIC100_HEADER + epic100_row()))
    assert read_epic100(tmp_path / "cols.pkl") == expected
    assert read_epic100(tmp_path / "typed.pkl") == expected
    # protocols 0-2 spell array bytes as _codecs.encode(text, "latin1"); numpy 1 names numpy.core
    for protocol in (0, 2):
        (tmp_path / "old.pkl").write_bytes(pickle.dumps(columns, protocol=protocol))
        assert read_epic100(tmp_path / "old.pkl") == expected
    numpy1 = pickle.dumps(columns, protocol=0).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in numpy1
    (tmp_path / "numpy1.pkl").write_bytes(numpy1)
    assert read_epic100(tmp_path / "numpy1.pkl") == expected
    (tmp_path / "codec.pkl").write_bytes(b"c_codecs\nencode\n(Vabc\nVutf-16\ntR.")
    with pytest.raises(AnnotationError, match=r"codec\.pkl: not a readable pickle .*encode\(str, 'latin1'\)"):
        read_epic100(tmp_path / "codec.pkl")


@pytest.mark.parametrize("column, value, message", [
    ("stop_frame", 202.5, r"column 'stop_frame' should be an integer in ASCII digits, got 202\.5"),
    ("stop_frame", float("nan"), r"column 'stop_frame' should be an integer"),
    ("stop_frame", True, r"column 'stop_frame' should be an integer"),
    ("stop_frame", 10**12, r"expected 1 <= start_frame <= stop_frame <= 5184000"),
    ("verb_class", None, r"column 'verb_class' should be an integer"),
    ("start_timestamp", 0.14, r"column 'start_timestamp' should be a timestamp"),
    ("narration", float("nan"), r"column 'narration' should be text"),
    ("video_id", 101, r"column 'video_id' should be an id"),
])
def test_pickle_values_by_type(tmp_path, column, value, message):
    rows = epic_rows() * 2
    rows[1] = {**rows[1], "narration_id": "P01_01_1", column: value}
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(rows))
    with pytest.raises(AnnotationError, match=r"t\.pkl:3: " + message):
        read_epic100(tmp_path / "t.pkl")


def test_damaged_pickles(tmp_path):
    data = pickle.dumps(epic_rows())
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(AnnotationError, match=r"cut\.pkl: not a readable pickle"):
        read_epic100(tmp_path / "cut.pkl")
    (tmp_path / "scalar.pkl").write_bytes(pickle.dumps({"narration_id": 5}))
    with pytest.raises(AnnotationError, match=r"scalar\.pkl: column 'narration_id' of the pickled dict"):
        read_epic100(tmp_path / "scalar.pkl")
    (tmp_path / "keys.pkl").write_bytes(pickle.dumps([{1: 2}]))
    with pytest.raises(AnnotationError, match=r"keys\.pkl: row 0 has column names that are not strings"):
        read_epic100(tmp_path / "keys.pkl")
