"""Leaving unreferenced H.264 pictures out of the decoder (data/video.py): the NAL header parser
on hand-built AVCC and Annex-B packets, and frames bit-identical to a full sequential decode on
every kind of test file -- x264 defaults (B-pyramid, scene-cut keyframes), B-frames without
pyramid, open GOP, no B-frames, a rotation, variable frame rate, Annex B in MPEG-TS, VP9 WebM
(not H.264: decoded as before) and a truncated file -- with and without the skipping, plus the
fall-back when the parser gives up.

The x264 files are written with PyAV's libx264 encoder at its defaults (preset medium: up to 3
B-frames, b-pyramid normal, keyint 250, scenecut 40, closed GOP) unless `x264-params` says
otherwise; the content pans over a texture with two scene cuts, so x264 places B-frames and
scene-cut keyframes as it would on real footage.
"""

from fractions import Fraction

import av
from av.video.frame import PictureType
import numpy as np
import pytest

import data.video as video
from data.video import H264Parser, VideoError, VideoReader, decode_frames, rotate_frame, write_video

N = 80
H, W = 96, 128
CUTS = (30, 55)  # scene cuts: x264 starts a new IDR picture there


def panning_scenes(n: int = N, height: int = H, width: int = W, cuts=CUTS, seed: int = 0) -> np.ndarray:
    """A camera panning over a blocky random texture, a new texture after each cut, a moving
    white bar and sensor noise: enough motion and detail for x264 to use B-frames."""
    rng = np.random.default_rng(seed)
    textures = [np.kron(rng.integers(0, 256, (height // 4 + 8, width // 4 + 8, 3)).astype(np.float32),
                        np.ones((4, 4, 1), np.float32)) for _ in range(len(cuts) + 1)]
    scene = np.searchsorted(np.asarray(cuts), np.arange(n), side="right")
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        dx, dy = t % 16, (t // 2) % 16
        frame = textures[scene[t]][dy : dy + height, dx : dx + width].copy()
        frame[(3 * t) % (height - 8) : (3 * t) % (height - 8) + 8, 10:30] = 255
        frames[t] = np.clip(frame + rng.normal(0, 3, (height, width, 1)), 0, 255)
    return frames


def write_x264(path: str, frames: np.ndarray, fps: int = 25, x264_params: str | None = None) -> str:
    """MP4/H.264 through PyAV's libx264 at the encoder's defaults, plus `x264_params`."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if x264_params:
            stream.options = {"x264-params": x264_params}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def remux(src: str, dst: str, format: str) -> str:
    """The same packets in another container (MPEG-TS stores H.264 as Annex B)."""
    with av.open(src) as inp, av.open(dst, "w", format=format) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return dst


def sequential_decode(path: str) -> np.ndarray:
    """Every frame in decode order, upright: the definition of frame index."""
    with av.open(path) as container:
        frames = [(f.to_ndarray(format="rgb24"), f.rotation) for f in container.decode(video=0)]
    return np.stack([rotate_frame(image, rotation) for image, rotation in frames])


def picture_kinds(path: str) -> str:
    """One letter per packet in decode order: I (IDR), R (reference), b (non-reference)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        parser = H264Parser(stream.codec_context.extradata)
        kinds = ""
        for packet in container.demux(stream):
            if packet.size:
                types = [h & 0x1F for h in parser.nal_headers(packet)]
                kinds += "I" if 5 in types else "b" if parser.is_non_reference(packet) else "R"
    return kinds


VFR_TIMES = np.concatenate([[0.0], np.cumsum([0.02, 0.05, 0.033] * 30)])[:N].tolist()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("skip")
    frames = panning_scenes()
    paths = {
        "x264 defaults": write_x264(str(root / "default.mp4"), frames),
        "b-frames, no pyramid": write_x264(str(root / "no_pyramid.mp4"), frames, x264_params="b-pyramid=none"),
        "open gop": write_x264(str(root / "open_gop.mp4"), frames, x264_params="open-gop=1:keyint=20"),
        "no b-frames": write_x264(str(root / "no_b.mp4"), frames, x264_params="bframes=0"),
    }
    paths["annex b (mpeg-ts)"] = remux(paths["x264 defaults"], str(root / "default.ts"), "mpegts")
    paths["rotated"] = str(root / "rotated.mp4")
    write_video(paths["rotated"], frames, 25, rotation=90)
    paths["vfr"] = str(root / "vfr.mp4")
    write_video(paths["vfr"], frames, 25, timestamps=VFR_TIMES)
    paths["vfr webm"] = str(root / "vfr.webm")
    write_video(paths["vfr webm"], frames[:40], 25, "libvpx-vp9", crf=30, timestamps=VFR_TIMES[:40])
    return paths


def test_the_test_files_have_the_structures_they_stand_for(files):
    default = picture_kinds(files["x264 defaults"])
    assert len(default) == N and default.count("I") == 1 + len(CUTS) and "b" in default
    # b-pyramid: some B-frames are references (between their neighbours in display order)
    with av.open(files["x264 defaults"]) as c:
        pict = "".join(PictureType(f.pict_type).name for f in c.decode(video=0))
    assert pict.count("B") > default.count("b")
    assert "R" in picture_kinds(files["no b-frames"]) and "b" not in picture_kinds(files["no b-frames"])
    with av.open(files["open gop"]) as c:
        keys = [p for p in c.demux(c.streams.video[0]) if p.is_keyframe and p.size]
    assert len(keys) > picture_kinds(files["open gop"]).count("I")  # non-IDR keyframes: open GOP
    with av.open(files["b-frames, no pyramid"]) as c:
        pict = "".join(PictureType(f.pict_type).name for f in c.decode(video=0))
    assert pict.count("B") == picture_kinds(files["b-frames, no pyramid"]).count("b") > 0  # no B is a reference


# -- the parser --------------------------------------------------------------------------------


def avcc(length_size: int) -> bytes:
    """An avcC record: version 1, profile/compat/level, 0xFC | lengthSizeMinusOne, no SPS/PPS."""
    return bytes([1, 0x64, 0x00, 0x1E, 0xFC | (length_size - 1), 0xE0, 0x00])


def units(length_size: int, *nals: bytes) -> bytes:
    return b"".join(len(nal).to_bytes(length_size, "big") + nal for nal in nals)


NONREF_SLICE = bytes([0x01, 0x9E, 0x12, 0x34])  # nal_ref_idc 0, type 1
REF_SLICE = bytes([0x41, 0x9A, 0x12, 0x34])  # nal_ref_idc 2, type 1
IDR_SLICE = bytes([0x65, 0x88, 0x84, 0x00])  # nal_ref_idc 3, type 5
SEI = bytes([0x06, 0x05, 0x01, 0x00, 0x80])
AUD = bytes([0x09, 0xF0])
SPS = bytes([0x67, 0x64, 0x00, 0x1E])


@pytest.mark.parametrize("length_size", [1, 2, 4])
def test_avcc_packets_hand_worked(length_size):
    parser = H264Parser(avcc(length_size))
    assert parser.length_size == length_size
    packet = units(length_size, SEI, NONREF_SLICE, NONREF_SLICE)
    assert parser.nal_headers(packet) == [0x06, 0x01, 0x01]
    assert parser.is_non_reference(packet) is True
    assert parser.is_non_reference(units(length_size, AUD, NONREF_SLICE)) is True
    assert parser.is_non_reference(units(length_size, REF_SLICE)) is False
    assert parser.is_non_reference(units(length_size, NONREF_SLICE, REF_SLICE)) is False  # a ref field
    assert parser.is_non_reference(units(length_size, IDR_SLICE)) is False
    assert parser.is_non_reference(units(length_size, SPS, NONREF_SLICE)) is False  # parameter sets: decode
    assert parser.is_non_reference(units(length_size, SEI)) is False  # no picture in it
    # bytes that do not tile into length-prefixed units are not what the parser expects
    good = units(length_size, NONREF_SLICE)
    assert parser.is_non_reference(good + b"\x00") is None  # a length field cut short
    assert parser.is_non_reference(good[:-1]) is None  # a unit longer than the packet
    assert parser.is_non_reference(units(length_size, b"") + good) is None  # an empty unit
    assert parser.is_non_reference(units(length_size, bytes([0x81, 0x00]))) is None  # forbidden bit
    assert parser.is_non_reference(b"") is None


@pytest.mark.parametrize("extradata", [None, b"", bytes([0, 0, 0, 1, 0x67, 0x64])])
def test_annex_b_packets_hand_worked(extradata):
    parser = H264Parser(extradata)
    assert parser.length_size is None
    packet = b"\x00\x00\x00\x01" + AUD + b"\x00\x00\x01" + NONREF_SLICE + b"\x00\x00\x01" + NONREF_SLICE
    assert parser.nal_headers(packet) == [0x09, 0x01, 0x01]
    assert parser.is_non_reference(packet) is True
    assert parser.is_non_reference(b"\x00\x00\x01" + REF_SLICE) is False
    assert parser.is_non_reference(b"\x00\x00\x01" + SEI + b"\x00\x00\x00\x01" + IDR_SLICE) is False
    assert parser.is_non_reference(NONREF_SLICE) is None  # no start code
    assert parser.is_non_reference(b"\x07\x00\x00\x01" + NONREF_SLICE) is None  # bytes before the start code
    assert parser.is_non_reference(b"\x00\x00\x01") is None  # a start code with no unit


def test_unreadable_avcc_records():
    with pytest.raises(ValueError, match="at least 7"):
        H264Parser(bytes([1, 0x64, 0x00]))
    with pytest.raises(ValueError, match="3 bytes"):
        H264Parser(avcc(3))


def test_parsers_are_made_for_h264_streams_only(files):
    with av.open(files["x264 defaults"]) as c:
        assert H264Parser.for_stream(c.streams.video[0].codec_context).length_size == 4  # x264 in MP4
    with av.open(files["annex b (mpeg-ts)"]) as c:
        assert H264Parser.for_stream(c.streams.video[0].codec_context).length_size is None
    with av.open(files["vfr webm"]) as c:
        assert H264Parser.for_stream(c.streams.video[0].codec_context) is None


def test_avcc_and_annex_b_agree_on_real_packets(files):
    # The same pictures stored both ways; non-reference ones decode to B pictures, never I or P.
    def kinds(path):
        with av.open(path) as c:
            stream = c.streams.video[0]
            parser = H264Parser.for_stream(stream.codec_context)
            return [(p.pts - stream.start_time, parser.is_non_reference(p)) for p in c.demux(stream) if p.size]

    mp4, ts = kinds(files["x264 defaults"]), kinds(files["annex b (mpeg-ts)"])
    assert [k for _, k in mp4] == [k for _, k in ts] and None not in [k for _, k in mp4]
    with av.open(files["x264 defaults"]) as c:
        stream = c.streams.video[0]
        types = {f.pts - stream.start_time: PictureType(f.pict_type).name for f in c.decode(stream)}
    assert {types[pts] for pts, non_reference in mp4 if non_reference} == {"B"}


# -- decoding ----------------------------------------------------------------------------------

ALL_FILES = ["x264 defaults", "b-frames, no pyramid", "open gop", "no b-frames", "annex b (mpeg-ts)", "rotated",
             "vfr", "vfr webm"]


def index_sets(n: int, rng: np.random.Generator) -> list[list[int]]:
    """Every frame; windows at stride 1, 2 (SlowFast) and 8 (Slow) from random starts and next
    to each keyframe kind; single frames; random sets with repeats and past-the-end indices."""
    cases = [list(range(n)), [0], [n - 1], [n + 5], [29, 30, 31], [54, 55, 56], [19, 20, 21, 40]]
    for stride, length in ((1, 12), (2, 16), (8, 8)):
        span = stride * (length - 1) + 1
        for start in rng.integers(0, max(n - span, 1), size=4).tolist() + [0, max(n - span, 0)]:
            cases.append(list(range(start, start + span, stride)))
    cases += [rng.integers(0, n + 4, size=rng.integers(1, 20)).tolist() for _ in range(6)]
    return [[min(i, n + 10) for i in case] for case in cases]


@pytest.mark.parametrize("name", ALL_FILES)
def test_frames_are_bit_identical_to_a_sequential_decode(files, name):
    path = files[name]
    reference = sequential_decode(path)
    n = len(reference)
    rng = np.random.default_rng(1)
    for indices in index_sets(n, rng):
        want = reference[np.minimum(indices, n - 1)]
        for skip in (True, False):
            with VideoReader(path, skip_non_reference=skip) as reader:
                got = reader.decode(indices)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} skip={skip} {indices}")


@pytest.mark.parametrize("name", ["x264 defaults", "open gop", "annex b (mpeg-ts)", "rotated"])
def test_unsampled_non_reference_pictures_are_left_out(files, name):
    # A stride-2 window from a keyframe: the decoder gets fewer packets, the same frames.
    path = files[name]
    indices = list(range(30, 62, 2))
    with VideoReader(path, skip_non_reference=False) as reader:
        full = reader.decode(indices)
        fed_all = reader.packets_decoded
    with VideoReader(path) as reader:
        skipping = reader.decode(indices)
        fed_skipping = reader.packets_decoded
        assert reader._parser is not None  # nothing surprised the parser
    np.testing.assert_array_equal(skipping, full)
    kinds = picture_kinds(files["x264 defaults"] if name == "annex b (mpeg-ts)" else path)
    assert fed_skipping < fed_all <= len(kinds)


def test_no_b_frames_means_nothing_to_leave_out(files):
    with VideoReader(files["no b-frames"], skip_non_reference=False) as reader:
        reader.decode(list(range(30, 62, 2)))
        fed_all = reader.packets_decoded
    with VideoReader(files["no b-frames"]) as reader:
        reader.decode(list(range(30, 62, 2)))
        assert reader.packets_decoded == fed_all


def test_a_parser_that_gives_up_falls_back_to_decoding_every_packet(files, monkeypatch):
    # From the 6th packet on the bytes "do not parse": the pass that was skipping starts again
    # feeding every packet, and the parser is not used again for this file.
    path = files["x264 defaults"]
    reference = sequential_decode(path)
    real = H264Parser.nal_headers
    calls = []

    def gives_up(self, data):
        calls.append(1)
        return None if len(calls) > 5 else real(self, data)

    monkeypatch.setattr(H264Parser, "nal_headers", gives_up)
    indices = list(range(0, 40, 2))
    with VideoReader(path) as reader:
        np.testing.assert_array_equal(reader.decode(indices), reference[indices])
        assert reader._parser is None
        fed = reader.packets_decoded
        np.testing.assert_array_equal(reader.decode([41, 45]), reference[[41, 45]])
    with VideoReader(path, skip_non_reference=False) as reader:
        reader.decode(indices)
        assert fed >= reader.packets_decoded  # the retry fed everything the full pass does


def test_an_avcc_record_the_parser_cannot_read_decodes_every_packet(files, monkeypatch):
    monkeypatch.setattr(video.H264Parser, "for_stream", classmethod(lambda cls, ctx: None))
    path = files["x264 defaults"]
    reference = sequential_decode(path)
    with VideoReader(path) as reader:
        np.testing.assert_array_equal(reader.decode(list(range(30, 62, 2))), reference[30:62:2])
        with VideoReader(path, skip_non_reference=False) as full:
            full.decode(list(range(30, 62, 2)))
        assert reader.packets_decoded == full.packets_decoded


def _write_faststart(path: str, frames: np.ndarray) -> str:
    """x264 defaults with the MP4 index in front, so a truncated copy still lists every frame."""
    with av.open(path, "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_a_truncated_file_decodes_up_to_the_cut_and_names_it_after(tmp_path):
    whole = _write_faststart(str(tmp_path / "whole.mp4"), panning_scenes())
    reference = sequential_decode(whole)
    data = open(whole, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    decodable = 0  # frames a plain decode gives before the cut stops it
    with av.open(str(cut)) as container:
        try:
            for _ in container.decode(video=0):
                decodable += 1
        except av.error.FFmpegError:
            pass
    assert 10 < decodable < N
    early = list(range(0, decodable - 8, 2))  # clear of the B-frames the cut leaves unfinished
    for skip in (True, False):
        np.testing.assert_array_equal(decode_frames(str(cut), early, skip_non_reference=skip), reference[early])
        with pytest.raises(VideoError, match="truncated or corrupt|decoding failed near frame") as error:
            decode_frames(str(cut), [decodable + 4, N - 1], skip_non_reference=skip)
        assert str(cut) in str(error.value)


@pytest.mark.parametrize("name", ["x264 defaults", "open gop", "rotated", "vfr webm"])
def test_training_clips_are_the_sequentially_decoded_frames(files, name):
    # load_clip at SlowFast 8x8-like and Slow 8x8-like strides: the clip's frames are the
    # sequential decode's at its indices, cut to the pre-crop region its box sits in
    from data.transforms import ClipSampling, load_clip, precrop_region

    path = files[name]
    reference = sequential_decode(path)
    for sampling in (ClipSampling(clip_len=16, stride=2, min_size=64, max_size=80, crop_size=56),
                     ClipSampling(clip_len=8, stride=8, min_size=64, max_size=80, crop_size=56)):
        for seed in range(4):
            sample = load_clip(path, sampling, np.random.default_rng(seed))
            height, width = reference.shape[1:3]
            x0, y0, x1, y1 = precrop_region(sample["transform"].source_box(), height, width)
            want = reference[sample["frame_indices"].numpy()][:, y0:y1, x0:x1]
            np.testing.assert_array_equal(sample["frames"].numpy(), want, err_msg=f"{name} {sampling} {seed}")
