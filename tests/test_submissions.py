"""Submission writers/readers (data/submissions.py) and the restricted unpickler (data/safe_pickle.py)."""

import collections
import io
import json
import os
import pickle

import numpy as np
import pytest
import torch

from data.safe_pickle import CorruptPickleError, UnsafePickleError, safe_load
from data.submissions import SubmissionError, read_charades_submission, read_epic55_submission, \
    read_epic100_submission, read_scores_text, read_topk_submission, softmax, top_action_pairs, \
    write_charades_submission, write_epic55_submission, write_epic100_submission, write_topk_submission


# ----------------------------------------------------------------------------- safe_pickle


class _RunsShell:
    """Unpickling this would call os.system (creating `marker`)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_safe_load_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"verb_output": _RunsShell(marker)}))
    with pytest.raises(UnsafePickleError) as e:
        safe_load(path, "EPIC-100 submission")
    message = str(e.value)
    assert str(path) in message and "EPIC-100 submission" in message
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux
    assert not marker.exists()


def test_safe_load_refuses_builtin_functions(tmp_path):
    # GLOBAL builtins.eval, then call it on a string: only builtin *types* are allowed
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(X\x0b\x00\x00\x00print('hi')tR.")
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        safe_load(path, "scores")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_load_reads_numpy_and_plain_containers(tmp_path, protocol):
    content = {"f32": np.arange(6, dtype=np.float32).reshape(2, 3), "i64": np.array([1, -2], np.int64),
               "ids": np.array(["P01_1", "P01_22"]), "scalar": np.float64(2.5), "n": np.int32(7),
               "plain": [1, 2.5, "x", b"\x00\xff", None, True, (1, 2), {3, 4}, frozenset({5})],
               "ordered": collections.OrderedDict(a=1), "fortran": np.asfortranarray(np.eye(3))}
    path = tmp_path / f"ok{protocol}.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = safe_load(path, "scores")
    assert loaded.keys() == content.keys()
    for key in ("f32", "i64", "ids", "fortran"):
        assert loaded[key].dtype == content[key].dtype and np.array_equal(loaded[key], content[key])
    assert loaded["scalar"] == 2.5 and type(loaded["scalar"]) is np.float64 and loaded["n"] == 7
    assert loaded["plain"] == content["plain"] and loaded["ordered"] == content["ordered"]
    with open(path, "rb") as f:  # a file object works too
        assert safe_load(f, "scores")["plain"] == content["plain"]


def test_safe_load_reports_truncated_and_garbage_files(tmp_path):
    data = pickle.dumps({"x": np.zeros((4, 4))})
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptPickleError, match=rf"{truncated}: scores is not a readable pickle"):
        safe_load(truncated, "scores")
    garbage = tmp_path / "junk.pkl"
    garbage.write_bytes(b"\x93not a pickle at all")
    with pytest.raises(CorruptPickleError, match=str(garbage)):
        safe_load(garbage, "scores")
    with pytest.raises(CorruptPickleError, match="not found"):
        safe_load(tmp_path / "absent.pkl", "scores")
    # _codecs.encode is allowed only in the form protocol 2 writes bytes with (latin1)
    rot13 = tmp_path / "rot13.pkl"
    rot13.write_bytes(b"c_codecs\nencode\n(X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13tR.")
    with pytest.raises(CorruptPickleError, match="latin1"):
        safe_load(rot13, "scores")
    assert safe_load(io.BytesIO(pickle.dumps(b"\x01\x02", protocol=2)), "scores") == b"\x01\x02"


# ----------------------------------------------------------------------------- text format


def test_charades_text_round_trip_is_exact_and_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["ABC12EGO", "XYZ99EGO", "QQQ01"]
    scores = rng.normal(size=(3, 157))
    scores[0, 0] = 1e-300  # extremes survive too
    scores[1, 1] = -123456789.125
    path = tmp_path / "sub.txt"
    write_charades_submission(path, ids, scores)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split(" ")) == 158 for line in lines)
    assert [line.split(" ")[0] for line in lines] == ids
    read_ids, read_scores = read_charades_submission(path)
    assert read_ids == ids and read_scores.dtype == np.float64
    assert np.array_equal(read_scores, scores)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # the temporary file is gone


def test_text_reader_accepts_tabs_and_blank_lines(tmp_path):
    path = tmp_path / "tabs.txt"
    path.write_text("A\t" + "\t".join(["0.5"] * 157) + "\t\n\n\nB " + " ".join(["1"] * 157) + "\n")
    ids, scores = read_charades_submission(path)
    assert ids == ["A", "B"] and scores.shape == (2, 157) and scores[0, 3] == 0.5


def test_text_reader_errors_name_file_line_and_ids(tmp_path):
    good = " ".join(["0.1"] * 157)
    path = tmp_path / "bad.txt"
    path.write_text("\n".join([f"A {good}", "B " + " ".join(["0.1"] * 156), f"C {good[:-3]}nan",
                               f"D {good[:-3]}inf", f"A {good}", f"E {good[:-3]}abc"]) + "\n")
    with pytest.raises(SubmissionError) as e:
        read_charades_submission(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ")
    assert f"'B' ({path}:2: 156 scores, expected 157)" in message
    assert f"'C' ({path}:3)" in message and f"'D' ({path}:4)" in message  # NaN and inf
    assert "NaN or inf" in message
    assert f"'A' ({path}:5, first at line 1)" in message and "duplicate id" in message
    assert f"'E' ({path}:6)" in message and "non-numeric" in message


def test_text_reader_lists_first_ids_and_count(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"V{i} 0.1 0.2\n" for i in range(8)))
    with pytest.raises(SubmissionError, match=r"8 line\(s\) with the wrong number of scores: 'V0' .*'V4' "
                                              r"\(.*\) and 3 more"):
        read_charades_submission(path)
    ids, scores = read_topk_submission(path)  # K from the first line
    assert ids == [f"V{i}" for i in range(8)] and scores.shape == (8, 2)
    with pytest.raises(SubmissionError, match="expected 3"):
        read_topk_submission(path, num_classes=3)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(SubmissionError, match="no submission lines"):
        read_scores_text(empty)
    with pytest.raises(SubmissionError, match="not found"):
        read_scores_text(tmp_path / "absent.txt")


def test_topk_round_trip_and_writer_validation(tmp_path):
    scores = np.random.default_rng(1).random((5, 174)).astype(np.float32)
    ids = [str(1000 + i) for i in range(5)]
    path = tmp_path / "ssv2.txt"
    write_topk_submission(path, ids, scores)
    read_ids, read_scores = read_topk_submission(path, 174)
    assert read_ids == ids and np.array_equal(read_scores, scores.astype(np.float64))
    before = path.read_bytes()
    bad = scores.copy()
    bad[2, 7] = np.nan
    with pytest.raises(SubmissionError, match=r"NaN or inf scores: '1002'"):
        write_topk_submission(path, ids, bad)
    with pytest.raises(SubmissionError, match=r"duplicate id\(s\): '1000'"):
        write_topk_submission(path, ["1000"] * 5, scores)
    with pytest.raises(SubmissionError, match="whitespace"):
        write_topk_submission(path, ["a b", "c", "d", "e", "f"], scores)
    with pytest.raises(SubmissionError, match=r"shape \[5, 157\]"):
        write_charades_submission(path, ids, scores)
    assert path.read_bytes() == before  # a refused write leaves the old file


# ----------------------------------------------------------------------------- EPIC-100


def _epic100_logits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 97)).astype(np.float32), rng.normal(size=(n, 300)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_epic100_round_trip(tmp_path, suffix):
    verb, noun = _epic100_logits(4)
    ids = ["P01_11_0", "P01_11_1", "P03_01_0", "P03_01_1"]
    path = tmp_path / ("sub" + suffix)
    write_epic100_submission(path, ids, torch.from_numpy(verb) if suffix == ".pt" else verb, noun)
    read_ids, read_verb, read_noun = read_epic100_submission(path)
    assert read_ids == ids and np.array_equal(read_verb, verb) and np.array_equal(read_noun, noun)
    raw = torch.load(path, weights_only=True) if suffix == ".pt" else safe_load(path, "x")
    assert set(raw) == {"verb_output", "noun_output", "narration_id"} and raw["narration_id"] == ids


def test_epic100_reads_official_list_format_and_numpy_in_pt(tmp_path):
    verb, noun = _epic100_logits(3, seed=2)
    ids = ["a", "b", "c"]
    listed = tmp_path / "list.pt"  # the release's list format, numpy rows inside a torch.save file
    torch.save([{"verb_output": verb[i], "noun_output": noun[i], "narration_id": ids[i]} for i in range(3)], listed)
    read_ids, read_verb, read_noun = read_epic100_submission(listed)
    assert read_ids == ids and np.array_equal(read_verb, verb) and np.array_equal(read_noun, noun)
    as_dict = tmp_path / "dict.pkl"  # the release's dict format, narration ids as a numpy str array
    with open(as_dict, "wb") as f:
        pickle.dump({"verb_output": verb, "noun_output": noun, "narration_id": np.array(ids)}, f)
    assert read_epic100_submission(as_dict)[0] == ids


class _NotAllowed:
    pass


def test_epic100_bad_inputs_name_file_and_ids(tmp_path):
    verb, noun = _epic100_logits(3)
    path = tmp_path / "sub.pkl"
    with open(path, "wb") as f:
        pickle.dump({"verb_output": verb[:, :96], "noun_output": noun, "narration_id": ["a", "b", "c"]}, f)
    with pytest.raises(SubmissionError, match=rf"{path}: verb_output should have shape \[3, 97\].*got \[3, 96\]"):
        read_epic100_submission(path)
    verb[1, 5] = np.inf
    with open(path, "wb") as f:
        pickle.dump({"verb_output": verb, "noun_output": noun, "narration_id": ["a", "b", "a"]}, f)
    with pytest.raises(SubmissionError) as e:
        read_epic100_submission(path)
    assert "duplicate id(s): 'a'" in str(e.value) and "NaN or inf verb_output: 'b'" in str(e.value)
    with open(path, "wb") as f:
        pickle.dump({"verb": verb}, f)
    with pytest.raises(SubmissionError, match="expected a dict with keys verb_output, noun_output, narration_id"):
        read_epic100_submission(path)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"verb_output": _NotAllowed(), "noun_output": noun, "narration_id": ["a"]}, unsafe)
    with pytest.raises(SubmissionError, match=rf"{unsafe}: EPIC-100 submission cannot be loaded with "
                                              rf"torch.load\(weights_only=True\).*_NotAllowed"):
        read_epic100_submission(unsafe)
    with pytest.raises(SubmissionError, match=r"\.pt \(torch.save\) or \.pkl"):
        write_epic100_submission(tmp_path / "sub.npz", ["a"], verb[:1], noun[:1])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(SubmissionError, match=str(corrupt)):
        read_epic100_submission(corrupt)


# ----------------------------------------------------------------------------- EPIC-55 and action pairs


def _brute_force_pairs(p_verb, p_noun, top_n):
    """All V x N products by descending product; equal products by the verb's rank, then the
    noun's (a class's rank: by descending probability, equal probabilities by index): a plain sort."""
    verb_rank = {v: r for r, v in enumerate(sorted(range(len(p_verb)), key=lambda v: (-p_verb[v], v)))}
    noun_rank = {n: r for r, n in enumerate(sorted(range(len(p_noun)), key=lambda n: (-p_noun[n], n)))}
    pairs = [(-(p_verb[v] * p_noun[n]), verb_rank[v], noun_rank[n], v, n)
             for v in range(len(p_verb)) for n in range(len(p_noun))]
    pairs.sort()
    return [(v, n) for *_, v, n in pairs[:top_n]]


def test_top_action_pairs_matches_brute_force_including_ties():
    rng = np.random.default_rng(3)
    p_verb = softmax(rng.normal(size=(6, 125)) * 2)
    p_noun = softmax(rng.normal(size=(6, 352)) * 2)
    # a row of exact ties: dyadic probabilities, so equal products are equal in floating point
    p_verb[5] = 0.0
    p_verb[5, [3, 7]] = 0.5
    p_noun[5] = 0.0
    p_noun[5, [0, 9, 200, 351]] = 0.25
    verbs, nouns, scores = top_action_pairs(p_verb, p_noun, 100)
    assert verbs.shape == nouns.shape == scores.shape == (6, 100)
    for row in range(6):
        assert list(zip(verbs[row].tolist(), nouns[row].tolist())) == _brute_force_pairs(p_verb[row], p_noun[row], 100)
        assert np.allclose(scores[row], p_verb[row, verbs[row]] * p_noun[row, nouns[row]], rtol=0, atol=0)
    # the tied row: verbs rank 3, 7, then 0, 1, 2, ... (probability 0, by index); nouns 0, 9, 200,
    # 351, then 1, 2, ... So 8 pairs of 0.125 in (verb, noun) order, then the zero products of
    # verb 3 with the zero-probability nouns 1, 2, ...
    assert list(zip(verbs[5, :10].tolist(), nouns[5, :10].tolist())) == [
        (3, 0), (3, 9), (3, 200), (3, 351), (7, 0), (7, 9), (7, 200), (7, 351), (3, 1), (3, 2)]
    # fewer classes than pairs wanted: every pair, in order
    v, n, _ = top_action_pairs(np.array([[0.2, 0.8]]), np.array([[0.1, 0.3, 0.6]]), 100)
    assert list(zip(v[0].tolist(), n[0].tolist())) == [(1, 2), (1, 1), (0, 2), (1, 0), (0, 1), (0, 0)]


def test_epic55_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    verb, noun = rng.normal(size=(3, 125)) * 3, rng.normal(size=(3, 352)) * 3
    uids = [1924, 1925, 2000]
    path = tmp_path / "seen.json"
    write_epic55_submission(path, uids, verb, noun)
    raw = json.loads(path.read_text())
    assert raw["version"] == "0.1" and raw["challenge"] == "action_recognition"
    assert list(raw["results"]) == ["1924", "1925", "2000"]
    entry = raw["results"]["1925"]
    assert list(entry["verb"]) == [str(c) for c in range(125)] and len(entry["noun"]) == 352
    assert len(entry["action"]) == 100 and all("," in k for k in entry["action"])
    read_uids, read_verb, read_noun, actions = read_epic55_submission(path)
    assert read_uids == ["1924", "1925", "2000"]
    assert np.array_equal(read_verb, softmax(verb)) and np.array_equal(read_noun, softmax(noun))
    for row in range(3):  # the stored action entries are the top 100 products of the probabilities
        expected = _brute_force_pairs(softmax(verb)[row], softmax(noun)[row], 100)
        ranked = sorted(actions[row], key=lambda pair: (-actions[row][pair], pair))
        assert ranked == expected


def _epic55_json(tmp_path, mutate, name="bad.json"):
    rng = np.random.default_rng(5)
    path = tmp_path / name
    write_epic55_submission(path, ["1", "2", "3"], rng.normal(size=(3, 125)), rng.normal(size=(3, 352)))
    content = json.loads(path.read_text())
    mutate(content)
    path.write_text(json.dumps(content))
    return path


def test_epic55_reader_errors_name_file_and_uids(tmp_path):
    def drop_classes(c):
        del c["results"]["2"]["verb"]["124"]
        c["results"]["3"]["noun"]["352"] = 0.1
        c["results"]["1"]["action"].popitem()
    path = _epic55_json(tmp_path, drop_classes)
    with pytest.raises(SubmissionError) as e:
        read_epic55_submission(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ")
    assert "whose \"verb\" lacks some of the classes 0..124: '2' (e.g. 124)" in message
    assert "whose \"noun\" has keys outside 0..351: '3' ('352')" in message
    assert "whose \"action\" does not have exactly 100 entries: '1'" in message

    def bad_version(c):
        c["version"] = "0.2"
    with pytest.raises(SubmissionError, match=r"\"version\" should be '0.1', got '0.2'"):
        read_epic55_submission(_epic55_json(tmp_path, bad_version))

    def anticipation(c):
        c["challenge"] = "action_anticipation"
    with pytest.raises(SubmissionError, match="\"challenge\" should be 'action_recognition'"):
        read_epic55_submission(_epic55_json(tmp_path, anticipation))

    def nan_and_bad_key(c):
        c["results"]["1"]["noun"]["7"] = float("nan")
        action = c["results"]["2"]["action"]
        action["130,1"] = action.pop(next(iter(action)))
    with pytest.raises(SubmissionError) as e:
        read_epic55_submission(_epic55_json(tmp_path, nan_and_bad_key))
    assert "non-numeric, NaN or inf scores: '1'" in str(e.value)
    assert "keys that are not \"v,n\" with v < 125 and n < 352, or names a pair twice: '2'" in str(e.value)


def test_epic55_reader_refuses_repeated_uids_and_bad_json(tmp_path):
    path = _epic55_json(tmp_path, lambda c: None)
    text = path.read_text()
    entry = json.dumps(json.loads(text)["results"]["1"])
    path.write_text(text.replace('"results": {', '"results": {"2": ' + entry + ", ", 1))
    with pytest.raises(SubmissionError, match=r"1 key\(s\) repeated within a JSON object .*: '2'"):
        read_epic55_submission(path)
    path.write_text('{"version": "0.1",\n "results": {')
    with pytest.raises(SubmissionError, match=rf"{path}:2: invalid JSON"):
        read_epic55_submission(path)


def test_epic55_entries_without_action_are_accepted(tmp_path):
    def no_action(c):
        del c["results"]["3"]["action"]
    _, verb, _, actions = read_epic55_submission(_epic55_json(tmp_path, no_action))
    assert actions[2] is None and len(actions[0]) == 100 and verb.shape == (3, 125)


def test_a_binary_file_given_as_text_submission_is_named(tmp_path):
    from data.submissions import SubmissionError, read_charades_submission
    path = tmp_path / "sub.pkl"
    path.write_bytes(b"\x80\x05\x95" + bytes(range(256)))
    with pytest.raises(SubmissionError, match=r"sub\.pkl:1: not UTF-8 text"):
        read_charades_submission(path)
