"""Official annotation readers: hand-written files in each released format, their parsed
records, and the errors for malformed lines and unknown classes."""

import json
import pickle

import pytest

from data.annotations import (AnnotationError, kinetics_csv_class_names, read_charades_ego,
                              read_class_names, read_epic_segments, read_epic_tail_classes,
                              read_epic_unseen_participants, read_kinetics_csv, read_kinetics_list,
                              read_ssv2_labels, read_ssv2_split)


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
              "1924,P01_11_0,P01,P01_11,01:02:03.851,01:02:03.50,01:02:04.00,100,130\n")
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


def test_epic_dataframe_pickle_without_pandas_is_a_clear_error(tmp_path):
    try:
        import pandas  # noqa: F401
        pytest.skip("pandas is installed: DataFrame pickles are readable")
    except ImportError:
        pass
    # protocol-0 opcodes for "an object of class pandas.core.frame.DataFrame"
    (tmp_path / "EPIC_100_validation.pkl").write_bytes(b"cpandas.core.frame\nDataFrame\n)\x81.")
    with pytest.raises(AnnotationError, match="EPIC_100_validation.pkl: is a pandas DataFrame pickle"):
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
