"""Writers and validating readers of the official submission files (SPEC section 6).

Charades / Charades-Ego (`Charades_v1_classify` input), text, one line per video:
    <video id> <s_0> <s_1> ... <s_156>
scores separated by spaces (the official scorer also accepts tabs; so does the reader). The
same text layout with K scores per line is the project's top-k submission for Kinetics (400)
and Something-Something v2 (174): `<video id> <s_0> ... <s_{K-1}>`, one line per video, K
the same on every line. Blank lines are skipped.

EPIC-Kitchens-100 (C1 action recognition, the `evaluate.py` of epic-kitchens/
C1-Action-Recognition): a dict
    {"verb_output": float [N, 97], "noun_output": float [N, 300], "narration_id": [N ids]}
saved with `torch.save` (`.pt`, tensors) or `pickle` (`.pkl`, numpy arrays). The scorer applies
softmax itself, so store logits or log-probabilities. The reader also takes the official "list
format" ([{"verb_output": [97], "noun_output": [300], "narration_id": id}, ...]) and numpy arrays
inside `.pt` files; it never runs code from the file (`.pt`: weights_only=True with numpy arrays
allowed; `.pkl`: data.safe_pickle).

EPIC-Kitchens-55 (S1/S2 leaderboard JSON, version 0.1):
    {"version": "0.1", "challenge": "action_recognition",
     "results": {uid: {"verb": {"0": s, ..., "124": s}, "noun": {"0": s, ..., "351": s},
                       "action": {"v,n": s, ...exactly 100 entries}}}}
The writer stores softmax probabilities of the given logits and the 100 (verb, noun) pairs of
highest p_v * p_n (`top_action_pairs`). The format's "action" is optional; without it the
leaderboard ranks pairs by softmax(verb) * softmax(noun) of what is given.

Every writer validates its input like the reader and writes atomically (a temporary file in
the same folder, then os.replace). Every reader checks the class counts, NaN/inf and duplicate
ids; a bad file raises SubmissionError naming the file, the problem and the ids (first few and
how many), with line numbers for the text format.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import secrets
from collections.abc import Callable, Sequence

import numpy as np

from data.annotations import CHARADES_NUM_CLASSES, EPIC55_NUM_NOUNS, EPIC55_NUM_VERBS, EPIC100_NUM_NOUNS, \
    EPIC100_NUM_VERBS
from data.safe_pickle import numpy_safe_globals, safe_load

EPIC100_KEYS = ("verb_output", "noun_output", "narration_id")
EPIC55_VERSION = "0.1"
EPIC55_CHALLENGE = "action_recognition"
EPIC_ACTION_TOP_N = 100   # action scores kept per segment, by the EPIC scorers and the EPIC-55 format
ACTION_VERB_MULTIPLIER = 1000  # EPIC action id = verb * 1000 + noun (C1 utils/actions.py)
SHOW_IDS = 5  # ids quoted in an error before "... and N more"


class SubmissionError(ValueError):
    """A submission file (or what a writer is given) breaks its format."""


# ----------------------------------------------------------------------------- shared helpers


def _listing(items: Sequence, show: int = SHOW_IDS) -> str:
    """`a, b, c and 4 more` for the first `show` items."""
    shown = ", ".join(str(x) for x in items[:show])
    return shown + (f" and {len(items) - show} more" if len(items) > show else "")


def _raise_problems(where: str, problems: dict[str, list]) -> None:
    """One SubmissionError for every kind of problem found, each with its count and first ids."""
    found = [(what, items) for what, items in problems.items() if items]
    if found:
        parts = [f"{len(items)} {what}: {_listing(items)}" for what, items in found]
        raise SubmissionError(f"{where}: " + "; ".join(parts))


def _duplicates(ids: Sequence[str]) -> list[str]:
    """Ids that occur more than once, each once, in order of their second occurrence."""
    seen, dup = set(), {}
    for i in ids:
        if i in seen:
            dup.setdefault(i, None)
        seen.add(i)
    return list(dup)


def _check_rows(where: str, ids: Sequence[str], arrays: dict[str, np.ndarray]) -> None:
    """Unique ids, and every row of every array finite."""
    problems = {"duplicate id(s)": [repr(i) for i in _duplicates(ids)]}
    for name, array in arrays.items():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        problems[f"row(s) with NaN or inf {name}"] = [repr(ids[i]) for i in bad]
    _raise_problems(where, problems)


def _as_ids(where: str, name: str, values) -> list[str]:
    """Ids as str; accepts str, numpy str and integers (EPIC-55 uids are numbers)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise SubmissionError(f"{where}: {name} should be a list of ids, got {type(values).__name__}")
    bad = [repr(v)[:40] for v in values if isinstance(v, bool) or not isinstance(v, (str, int, np.integer))]
    if bad:
        raise SubmissionError(f"{where}: {name} should hold string ids, got {len(bad)} other value(s): "
                              f"{_listing(bad)}")
    return [str(v) for v in values]


def _as_matrix(where: str, name: str, value, num_columns: int, num_rows: int | None = None) -> np.ndarray:
    """float64 [N, num_columns] from a numpy array, torch tensor or nested list."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SubmissionError(f"{where}: {name} should be a float array [N, {num_columns}], got "
                              f"{type(value).__name__} that is not numeric or not rectangular") from None
    if matrix.ndim != 2 or matrix.shape[1] != num_columns or (num_rows is not None and matrix.shape[0] != num_rows):
        rows = "N" if num_rows is None else str(num_rows)
        raise SubmissionError(f"{where}: {name} should have shape [{rows}, {num_columns}] (one row per "
                              f"id, {num_columns} classes), got {list(matrix.shape)}")
    return matrix


def _atomic_write(path, write: Callable, binary: bool) -> None:
    """Write through `write(file)` to a temporary file beside `path`, then rename it over `path`,
    so a reader never sees half a file and a failed write leaves the old file intact."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # open(mode "x") rather than mkstemp: the file gets the usual permissions (umask), not 0600
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (max-subtracted, so large logits do not overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def top_action_pairs(verb_probs: np.ndarray, noun_probs: np.ndarray, top_n: int = EPIC_ACTION_TOP_N
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `top_n` (verb, noun) pairs of highest p_v * p_n per row, best first:
    (verbs int64 [N, t], nouns int64 [N, t], scores float64 [N, t]), t = min(top_n, V * Nn).

    Classes are ranked per task by descending probability, equal probabilities by class index;
    equal products go to the pair whose verb ranks higher, then whose noun ranks higher. With
    that order the pair of the a-th verb and b-th noun (1-based) has at least a*b - 1 pairs
    ahead of it (every pair of a verb and a noun ranked no lower), so only pairs with a*b <= t
    can be among the first t: about t*ln(t) candidates per row (482 for t = 100) instead of V*Nn.
    """
    verb_probs, noun_probs = np.asarray(verb_probs, np.float64), np.asarray(noun_probs, np.float64)
    num_verbs, num_nouns = verb_probs.shape[1], noun_probs.shape[1]
    t = min(top_n, num_verbs * num_nouns)
    # candidate (verb rank, noun rank) pairs in lexical order, so a stable sort breaks ties by it
    verb_rank, noun_rank = np.array([(a, b) for a in range(min(t, num_verbs)) for b in range(min(t, num_nouns))
                                     if (a + 1) * (b + 1) <= t], np.int64).T
    verb_order = np.argsort(-verb_probs, axis=1, kind="stable")[:, :min(t, num_verbs)]
    noun_order = np.argsort(-noun_probs, axis=1, kind="stable")[:, :min(t, num_nouns)]
    verbs, nouns = verb_order[:, verb_rank], noun_order[:, noun_rank]
    products = np.take_along_axis(verb_probs, verbs, 1) * np.take_along_axis(noun_probs, nouns, 1)
    best = np.argsort(-products, axis=1, kind="stable")[:, :t]
    return (np.take_along_axis(verbs, best, 1), np.take_along_axis(nouns, best, 1),
            np.take_along_axis(products, best, 1))


# ----------------------------------------------------------------------------- text: Charades, top-k


def write_scores_text(path, ids: Sequence[str], scores, num_classes: int | None = None) -> str:
    """`<id> <s_0> ... <s_{K-1}>` per line (module docstring); floats written exactly (repr).
    Returns the path written (as do all writers)."""
    where = os.fspath(path)
    ids = _as_ids(where, "ids", list(ids))
    scores = _as_matrix(where, "scores", scores, num_classes if num_classes is not None else np.shape(scores)[-1],
                        len(ids))
    spaced = [i for i in ids if not i or re.search(r"\s", i)]
    if spaced:
        raise SubmissionError(f"{where}: {len(spaced)} id(s) empty or containing whitespace, which the "
                              f"text format cannot hold: {_listing([repr(i) for i in spaced])}")
    _check_rows(where, ids, {"scores": scores})

    def write(f):
        for video_id, row in zip(ids, scores.tolist()):
            f.write(video_id + " " + " ".join(map(repr, row)) + "\n")
    _atomic_write(path, write, binary=False)
    return where


def read_scores_text(path, num_classes: int | None = None) -> tuple[list[str], np.ndarray]:
    """(ids, float64 [N, K]) from the text format; K = `num_classes`, or that of the first line
    when None (then every line must have as many)."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise SubmissionError(f"{where}: submission file not found")
    ids, rows = [], []
    problems = {"line(s) with the wrong number of scores": [], "line(s) with non-numeric scores": [],
                "line(s) with NaN or inf scores": [], "duplicate id(s)": []}
    first_line_of: dict[str, int] = {}
    expected = num_classes
    with open(where, "rb") as f:
        raw = f.read()
    for line_no, raw_line in enumerate(raw.splitlines(), start=1):
        try:
            line = raw_line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            raise SubmissionError(f"{where}:{line_no}: not UTF-8 text; expected `<id> <score> ...` per line "
                                  f"(is it a binary .pkl/.pt submission of another format?)") from None
        fields = line.split()
        if not fields:
            continue
        video_id, values = fields[0], fields[1:]
        if expected is None:
            expected = len(values)
        if len(values) != expected:
            problems["line(s) with the wrong number of scores"].append(
                f"{video_id!r} ({where}:{line_no}: {len(values)} scores, expected {expected})")
            continue
        try:
            row = np.array(values, dtype=np.float64)
        except ValueError:
            problems["line(s) with non-numeric scores"].append(f"{video_id!r} ({where}:{line_no})")
            continue
        if not np.isfinite(row).all():
            problems["line(s) with NaN or inf scores"].append(f"{video_id!r} ({where}:{line_no})")
            continue
        if video_id in first_line_of:
            problems["duplicate id(s)"].append(f"{video_id!r} ({where}:{line_no}, first at line "
                                               f"{first_line_of[video_id]})")
            continue
        first_line_of[video_id] = line_no
        ids.append(video_id)
        rows.append(row)
    _raise_problems(where, problems)
    if not ids:
        raise SubmissionError(f"{where}: no submission lines (expected `<id> <score> ...` per line)")
    return ids, np.stack(rows)


def write_charades_submission(path, video_ids: Sequence[str], scores) -> str:
    """Charades(-Ego) classification submission: `<id> s_0 ... s_156` per line."""
    return write_scores_text(path, video_ids, scores, CHARADES_NUM_CLASSES)


def read_charades_submission(path) -> tuple[list[str], np.ndarray]:
    """(video ids, float64 [N, 157]) of a Charades(-Ego) classification submission."""
    return read_scores_text(path, CHARADES_NUM_CLASSES)


def write_topk_submission(path, video_ids: Sequence[str], scores) -> str:
    """Kinetics / SSv2 submission: `<id> s_0 ... s_{K-1}` per line, K = scores.shape[1]."""
    return write_scores_text(path, video_ids, scores)


def read_topk_submission(path, num_classes: int | None = None) -> tuple[list[str], np.ndarray]:
    """(video ids, float64 [N, K]) of a top-k submission; K checked against `num_classes` if given."""
    return read_scores_text(path, num_classes)


# ----------------------------------------------------------------------------- EPIC-Kitchens-100


def write_epic100_submission(path, narration_ids: Sequence[str], verb_output, noun_output,
                             num_verbs: int = EPIC100_NUM_VERBS, num_nouns: int = EPIC100_NUM_NOUNS) -> str:
    """The C1 dict format, float32 as the official README specifies: `.pt` (torch.save, tensors)
    or `.pkl` (pickle, numpy arrays), chosen by the extension. Store logits or log-probs."""
    where = os.fspath(path)
    ids = _as_ids(where, "narration_ids", list(narration_ids))
    verb = _as_matrix(where, "verb_output", verb_output, num_verbs, len(ids)).astype(np.float32)
    noun = _as_matrix(where, "noun_output", noun_output, num_nouns, len(ids)).astype(np.float32)
    _check_rows(where, ids, {"verb_output": verb, "noun_output": noun})
    if where.endswith(".pt"):
        import torch
        content = {"verb_output": torch.from_numpy(verb), "noun_output": torch.from_numpy(noun), "narration_id": ids}
        _atomic_write(path, lambda f: torch.save(content, f), binary=True)
    elif where.endswith(".pkl"):
        content = {"verb_output": verb, "noun_output": noun, "narration_id": ids}
        _atomic_write(path, lambda f: pickle.dump(content, f, protocol=4), binary=True)
    else:
        raise SubmissionError(f"{where}: an EPIC-100 submission is a .pt (torch.save) or .pkl (pickle) file")
    return where


def _torch_load_weights_only(where: str, what: str):
    import torch
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            return torch.load(where, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refusals are UnpicklingError; corrupt zips RuntimeError
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else type(e).__name__)
        raise SubmissionError(f"{where}: {what} cannot be loaded with torch.load(weights_only=True), which "
                              f"admits only tensors, numpy arrays and plain containers ({reason})") from None


def _load_epic100_content(where: str):
    if not os.path.isfile(where):
        raise SubmissionError(f"{where}: submission file not found")
    if where.endswith(".pt"):
        return _torch_load_weights_only(where, "EPIC-100 submission")
    if where.endswith(".pkl"):
        return safe_load(where, "EPIC-100 submission")
    raise SubmissionError(f"{where}: an EPIC-100 submission is a .pt (torch.save) or .pkl (pickle) file")


def read_epic100_submission(path, num_verbs: int = EPIC100_NUM_VERBS, num_nouns: int = EPIC100_NUM_NOUNS
                            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(narration ids, verb float64 [N, 97], noun float64 [N, 300]) from the dict or list format."""
    where = os.fspath(path)
    content = _load_epic100_content(where)
    if isinstance(content, list):  # the official list format: one dict per segment
        if not content or not all(isinstance(r, dict) and set(EPIC100_KEYS) <= set(r) for r in content):
            raise SubmissionError(f"{where}: a list-format EPIC-100 submission should be a non-empty list of "
                                  f"dicts with keys {', '.join(EPIC100_KEYS)}")
        content = {key: [r[key] for r in content] for key in EPIC100_KEYS}
        for key in ("verb_output", "noun_output"):
            content[key] = [v.detach().cpu().double().numpy() if hasattr(v, "detach") else v for v in content[key]]
    if not isinstance(content, dict) or not set(EPIC100_KEYS) <= set(content):
        got = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
        raise SubmissionError(f"{where}: expected a dict with keys {', '.join(EPIC100_KEYS)} (or a list of "
                              f"such dicts, one per segment), got {got}")
    ids = _as_ids(where, "narration_id", content["narration_id"])
    verb = _as_matrix(where, "verb_output", content["verb_output"], num_verbs, len(ids))
    noun = _as_matrix(where, "noun_output", content["noun_output"], num_nouns, len(ids))
    _check_rows(where, ids, {"verb_output": verb, "noun_output": noun})
    if not ids:
        raise SubmissionError(f"{where}: the submission holds no segments")
    return ids, verb, noun


# ----------------------------------------------------------------------------- EPIC-Kitchens-55


def write_epic55_submission(path, uids: Sequence, verb_logits, noun_logits,
                            num_verbs: int = EPIC55_NUM_VERBS, num_nouns: int = EPIC55_NUM_NOUNS) -> str:
    """The S1/S2 leaderboard JSON: softmax probabilities of the logits for every verb and noun,
    and the 100 pairs of highest p_v * p_n as "action" ("v,n": score)."""
    where = os.fspath(path)
    ids = _as_ids(where, "uids", list(uids))
    verb = _as_matrix(where, "verb_logits", verb_logits, num_verbs, len(ids))
    noun = _as_matrix(where, "noun_logits", noun_logits, num_nouns, len(ids))
    _check_rows(where, ids, {"verb_logits": verb, "noun_logits": noun})
    p_verb, p_noun = softmax(verb), softmax(noun)
    verbs, nouns, scores = top_action_pairs(p_verb, p_noun)
    results = {}
    for i, uid in enumerate(ids):
        results[uid] = {"verb": {str(c): p for c, p in enumerate(p_verb[i].tolist())},
                        "noun": {str(c): p for c, p in enumerate(p_noun[i].tolist())},
                        "action": {f"{v},{n}": s for v, n, s in zip(verbs[i].tolist(), nouns[i].tolist(),
                                                                     scores[i].tolist())}}
    content = {"version": EPIC55_VERSION, "challenge": EPIC55_CHALLENGE, "results": results}
    _atomic_write(path, lambda f: json.dump(content, f), binary=False)
    return where


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_epic55_submission(path, num_verbs: int = EPIC55_NUM_VERBS, num_nouns: int = EPIC55_NUM_NOUNS
                           ) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[tuple[int, int], float] | None]]:
    """(uids, verb float64 [N, 125], noun float64 [N, 352], actions) from the leaderboard JSON;
    scores in class order, `actions[i]` the segment's {(verb, noun): score} (exactly 100
    entries) or None where the segment has no "action"."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise SubmissionError(f"{where}: submission file not found")
    repeated_keys: list[str] = []

    def no_repeats(pairs):  # json keeps the last of repeated keys silently; a repeated uid is an error
        keys = [k for k, _ in pairs]
        repeated_keys.extend(repr(k) for k in _duplicates(keys))
        return dict(pairs)

    with open(where, encoding="utf-8") as f:
        try:
            content = json.load(f, object_pairs_hook=no_repeats)
        except json.JSONDecodeError as e:
            raise SubmissionError(f"{where}:{e.lineno}: invalid JSON at column {e.colno} ({e.msg})") from None
    if repeated_keys:
        raise SubmissionError(f"{where}: {len(repeated_keys)} key(s) repeated within a JSON object (a uid or "
                              f"class listed twice): {_listing(repeated_keys)}")
    if not isinstance(content, dict) or not isinstance(content.get("results"), dict):
        raise SubmissionError(f"{where}: expected a JSON object with \"version\", \"challenge\" and a "
                              f"\"results\" object {{uid: {{\"verb\", \"noun\", \"action\"}}}}")
    if content.get("version") != EPIC55_VERSION:
        raise SubmissionError(f"{where}: \"version\" should be {EPIC55_VERSION!r}, got {content.get('version')!r}")
    if content.get("challenge") != EPIC55_CHALLENGE:
        raise SubmissionError(f"{where}: \"challenge\" should be {EPIC55_CHALLENGE!r}, got "
                              f"{content.get('challenge')!r}")
    results = content["results"]
    if not results:
        raise SubmissionError(f"{where}: \"results\" holds no segments")
    num_actions = min(EPIC_ACTION_TOP_N, num_verbs * num_nouns)
    not_object = "entry(ies) that are not objects with \"verb\" and \"noun\" objects"
    lacks = {task: f"entry(ies) whose \"{task}\" lacks some of the classes 0..{count - 1}"
             for task, count in (("verb", num_verbs), ("noun", num_nouns))}
    extra = {task: f"entry(ies) whose \"{task}\" has keys outside 0..{count - 1}"
             for task, count in (("verb", num_verbs), ("noun", num_nouns))}
    bad_value = "entry(ies) with non-numeric, NaN or inf scores"
    action_problem = {"count": f"entry(ies) whose \"action\" does not have exactly {num_actions} entries",
                      "key": f"entry(ies) whose \"action\" has keys that are not \"v,n\" with v < {num_verbs} "
                             f"and n < {num_nouns}, or names a pair twice",
                      "value": bad_value}
    problems = {text: [] for text in (not_object, *lacks.values(), *extra.values(), bad_value,
                                      action_problem["count"], action_problem["key"])}
    class_keys = {"verb": [str(c) for c in range(num_verbs)], "noun": [str(c) for c in range(num_nouns)]}
    uids, verb, noun, actions = [], [], [], []
    for uid, entry in results.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("verb"), dict) and isinstance(entry.get("noun"), dict)):
            problems[not_object].append(repr(uid))
            continue
        rows = {}
        for task in ("verb", "noun"):
            given = entry[task]
            if set(given) != set(class_keys[task]):
                missing = [k for k in class_keys[task] if k not in given]
                if missing:
                    problems[lacks[task]].append(f"{uid!r} (e.g. {_listing(missing, 3)})")
                unknown = sorted(set(given) - set(class_keys[task]))
                if unknown:
                    problems[extra[task]].append(f"{uid!r} ({_listing([repr(k) for k in unknown], 3)})")
                continue
            values = [given[k] for k in class_keys[task]]
            if not all(_is_number(v) for v in values) or not np.isfinite(values).all():
                problems[bad_value].append(repr(uid))
                continue
            rows[task] = values
        action = _parse_action(entry["action"], num_verbs, num_nouns) if "action" in entry else None
        if isinstance(action, str):
            problems[action_problem[action]].append(repr(uid))
        elif len(rows) == 2:
            uids.append(str(uid))
            verb.append(rows["verb"])
            noun.append(rows["noun"])
            actions.append(action)
    _raise_problems(where, problems)
    return uids, np.array(verb, np.float64), np.array(noun, np.float64), actions


def _parse_action(action, num_verbs: int, num_nouns: int):
    """{(v, n): score} from an "action" object, or the kind of problem: "count", "key", "value"."""
    if not isinstance(action, dict) or len(action) != min(EPIC_ACTION_TOP_N, num_verbs * num_nouns):
        return "count"
    parsed = {}
    for key, score in action.items():
        match = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", str(key))
        if match is None or int(match.group(1)) >= num_verbs or int(match.group(2)) >= num_nouns:
            return "key"
        if not _is_number(score) or not np.isfinite(score):
            return "value"
        pair = (int(match.group(1)), int(match.group(2)))
        if pair in parsed:  # "1,2" and "1, 2" name the same pair
            return "key"
        parsed[pair] = float(score)
    return parsed
