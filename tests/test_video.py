"""data/video.py: exact frame-index decoding against a plain sequential decode, error handling,
rotation, frame folders, JPEG header sizes, writing."""

import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torchvision.io

import data.video as video
from data.video import (
    VideoError,
    VideoReader,
    decode_frames,
    jpeg_size,
    probe_video,
    read_frame_folder,
    read_jpeg_bytes,
    read_jpeg_folder,
    rotate_frame,
    write_video,
)

N = 60  # frames in most test videos
H, W = 48, 64


def indexed_frames(n: int = N, height: int = H, width: int = W) -> np.ndarray:
    """Frame i: a band of grey level 16 + 3i on top (reads back the index through lossy
    coding) over a bright bar that moves 3 px a frame (so frames differ in more than a level)."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, :16] = 16 + 3 * i
        frames[i, 16:, (3 * i) % width : (3 * i) % width + 4] = 255
    return frames


def index_codes(frames: np.ndarray) -> np.ndarray:
    return np.round((frames[:, :16].astype(np.float64).mean(axis=(1, 2, 3)) - 16) / 3).astype(int)


def sequential_decode(path: str) -> np.ndarray:
    """Every frame in decode order with PyAV's own conversion: the definition of frame index."""
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


VFR_TIMES = np.concatenate([[0.0], np.cumsum([0.02, 0.05, 0.033] * 20)])[:N].tolist()
VIDEOS = {  # name: (codec, write_video options)
    "cfr_bframes.mp4": ("libx264", {"gop": 12, "crf": 10}),
    "cfr.webm": ("libvpx-vp9", {"gop": 12, "crf": 4}),
    "late_start.mp4": ("libx264", {"gop": 12, "crf": 10, "timestamps": [1.5 + i / 25 for i in range(N)]}),
    "late_start.webm": ("libvpx-vp9", {"crf": 4, "timestamps": [1.5 + i / 25 for i in range(N)]}),
    "vfr.mp4": ("libx264", {"gop": 10, "crf": 10, "timestamps": VFR_TIMES}),
    "vfr.webm": ("libvpx-vp9", {"gop": 10, "crf": 4, "timestamps": VFR_TIMES}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames = indexed_frames()
    paths = {}
    for name, (codec, options) in VIDEOS.items():
        paths[name] = str(root / name)
        write_video(paths[name], frames, 25, codec, **options)
    return paths


@pytest.mark.parametrize("name", list(VIDEOS))
def test_decode_matches_sequential_decode(videos, name):
    path = videos[name]
    reference = sequential_decode(path)
    assert len(reference) == N
    assert (index_codes(reference) == np.arange(N)).all()  # the written frames, in order
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.rotation) == (N, W, H, 0)
    rng = np.random.default_rng(0)
    cases = [[0], [N - 1], list(range(N)), [5, 5, 5], [40, 3, 17, 3], [0, 59, 60, 75], [11, 12, 13]]
    cases += [rng.integers(0, N + 10, size=rng.integers(1, 33)).tolist() for _ in range(12)]
    for indices in cases:
        got = decode_frames(path, indices)
        assert got.dtype == np.uint8 and got.shape == (len(indices), H, W, 3)
        np.testing.assert_array_equal(got, reference[np.minimum(indices, N - 1)], err_msg=f"{name} {indices}")


def test_start_times_and_timestamps_are_what_was_written(videos):
    with av.open(videos["late_start.mp4"]) as c:
        assert float(c.streams.video[0].start_time * c.streams.video[0].time_base) == pytest.approx(1.5)
    with av.open(videos["vfr.mp4"]) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    np.testing.assert_allclose(times, VFR_TIMES, atol=1e-3)


def test_threaded_decoding_gives_the_same_frames(videos):
    path = videos["cfr_bframes.mp4"]
    indices = [3, 30, 31, 59]
    np.testing.assert_array_equal(decode_frames(path, indices, threads=0), decode_frames(path, indices))


def test_short_video_repeats_its_last_frame(tmp_path):
    path = str(tmp_path / "short.mp4")
    write_video(path, indexed_frames(10), 30, crf=0)
    got = decode_frames(path, [0, 5, 9, 12, 40])
    assert index_codes(got).tolist() == [0, 5, 9, 9, 9]
    assert probe_video(path).num_frames == 10


class _SeekLate:
    """Container proxy whose first seek lands `frames_late` frames after the target, as a seek
    to a keyframe shown after the target frame (B-frames) would."""

    def __init__(self, container, step: int, frames_late: int):
        self._container, self._late, self.seeks = container, step * frames_late, []

    def seek(self, offset, **kwargs):
        self.seeks.append(offset)
        late = self._late if len(self.seeks) == 1 else 0
        return self._container.seek(offset + late, **kwargs)

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_seek_that_lands_after_the_target_backs_off(videos):
    path = videos["cfr_bframes.mp4"]
    reference = sequential_decode(path)
    with VideoReader(path) as reader:
        step = int(reader._pts[1] - reader._pts[0])
        reader._container = _SeekLate(reader._container, step, frames_late=13)
        got = reader.decode([30, 31])
        assert len(reader._container.seeks) == 2  # overshoot detected, retried earlier
    np.testing.assert_array_equal(got, reference[[30, 31]])


@pytest.mark.parametrize("first_wrong", [0, 21])
def test_wrong_uniform_grid_falls_back_to_the_real_timestamps(videos, monkeypatch, first_wrong):
    # The guess goes off-grid from frame `first_wrong` on. Decoding from the keyframe before
    # frame 18 finds that out mid-file; the packet scan that follows must still list the whole
    # stream, not start where decoding left the demuxer.
    path = videos["cfr_bframes.mp4"]
    reference = sequential_decode(path)
    real = video._uniform_grid_pts

    def off_grid(stream):
        grid = real(stream)
        grid[first_wrong:] += 7
        return grid

    monkeypatch.setattr(video, "_uniform_grid_pts", off_grid)
    with VideoReader(path) as reader:
        np.testing.assert_array_equal(reader.decode([18, 25, 50, 50]), reference[[18, 25, 50, 50]])
        assert reader._scanned


@pytest.mark.parametrize("name", ["cfr_bframes.mp4", "cfr.webm"])  # table from the MOV index / a packet scan
def test_a_listed_frame_that_never_decodes_is_noticed_between_targets(videos, name):
    # A table entry with no decoded frame behind it (a packet that decodes to nothing, a hole in
    # the grid) between two wanted frames shifts every later index by one; the decoder must notice
    # the missing pts rather than return the frame after the wanted one.
    path = videos[name]
    reference = sequential_decode(path)
    with VideoReader(path) as reader:
        table = reader._pts
        reader._pts = np.insert(table, 21, (table[20] + table[21]) // 2)
        np.testing.assert_array_equal(reader.decode([18, 25]), reference[[18, 25]])


def test_without_usable_timestamps_frames_are_counted_in_decode_order(videos, monkeypatch):
    path = videos["vfr.webm"]
    reference = sequential_decode(path)
    monkeypatch.setattr(VideoReader, "_scan_packets", lambda self: None)
    with VideoReader(path) as reader:
        assert reader.num_frames == N
        np.testing.assert_array_equal(reader.decode([7, 1, 59, 70]), reference[[7, 1, 59, 59]])


@pytest.mark.parametrize("rotation, corner, shape", [
    (90, "bottom_left", (W, H)),  # counter-clockwise quarter turn
    (180, "bottom_right", (H, W)),
    (270, "top_right", (W, H)),
    (-90, "top_right", (W, H)),
])
def test_rotation_metadata_is_applied(tmp_path, rotation, corner, shape):
    frames = np.zeros((4, H, W, 3), np.uint8)
    frames[:, :8, :8] = 255  # mark the coded top-left corner
    path = str(tmp_path / "rotated.mp4")
    write_video(path, frames, 25, crf=0, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation % 360 and (info.height, info.width) == shape
    got = decode_frames(path, [0, 3])
    h, w = shape
    corners = {"top_left": got[:, 2, 2], "top_right": got[:, 2, w - 3],
               "bottom_left": got[:, h - 3, 2], "bottom_right": got[:, h - 3, w - 3]}
    assert [name for name, px in corners.items() if px.min() > 200] == [corner]


def test_rotate_frame_turns_counter_clockwise():
    frame = np.arange(6).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]
    assert rotate_frame(frame, 90)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert rotate_frame(frame, 180)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_frame(frame, -90)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert rotate_frame(frame, 0) is frame or (rotate_frame(frame, 0) == frame).all()


# -- broken inputs ------------------------------------------------------------------------------


def _write_faststart_mp4(path: str, frames: np.ndarray) -> None:
    """MP4 with its index in front, so a truncated copy still opens and lists every frame."""
    with av.open(path, "w", options={"movflags": "+faststart"}) as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))


def _broken_files(root, videos) -> dict[str, str]:
    def cut(name, src, fraction):
        data = open(src, "rb").read()
        path = str(root / name)
        with open(path, "wb") as f:
            f.write(data[: int(len(data) * fraction)])
        return path

    faststart = str(root / "faststart.mp4")
    _write_faststart_mp4(faststart, indexed_frames())
    garbage = root / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (root / "empty.webm").write_bytes(b"")
    audio = str(root / "audio_only.wav")
    with av.open(audio, "w") as c:
        stream = c.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        c.mux(stream.encode(samples))
        c.mux(stream.encode(None))
    return {
        "missing": str(root / "does_not_exist.mp4"),
        "directory": str(root),
        "garbage": str(garbage),
        "empty": str(root / "empty.webm"),
        "audio only": audio,
        "mp4 cut (index at the end)": cut("cut.mp4", videos["cfr_bframes.mp4"], 0.6),
        "webm cut": cut("cut.webm", videos["cfr.webm"], 0.5),
        "mp4 cut (index in front)": cut("cut_faststart.mp4", faststart, 0.8),
    }


def test_broken_inputs_raise_video_error_naming_the_file(tmp_path, videos, capfd):
    for what, path in _broken_files(tmp_path, videos).items():
        with pytest.raises(VideoError) as error:
            decode_frames(path, list(range(0, N, 4)))
        assert path in str(error.value), what
        with pytest.raises(VideoError):
            with VideoReader(path) as reader:
                reader.decode([N - 1])
    assert capfd.readouterr().err == ""  # FFmpeg's log stays quiet


def _write_webm_with_audio(path: str, frames: np.ndarray, fps: int, audio_seconds: float) -> None:
    """VP9 video plus a silent mono Opus track of `audio_seconds`, muxed in time order."""
    rate, chunk = 48000, 960  # 20 ms Opus frames
    with av.open(path, "w") as c:
        video_stream = c.add_stream("libvpx-vp9", rate=fps)
        video_stream.width, video_stream.height, video_stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video_stream.options = {"crf": "10", "b:v": "0", "cpu-used": "8", "deadline": "realtime"}
        audio_stream = c.add_stream("libopus", rate=rate)
        audio_stream.format, audio_stream.layout = "s16", "mono"
        chunks = int(audio_seconds * rate) // chunk
        events = [(i / fps, "v", i) for i in range(len(frames))] + [(k * chunk / rate, "a", k) for k in range(chunks)]
        for _, kind, i in sorted(events):
            if kind == "v":
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                c.mux(video_stream.encode(frame))
            else:
                samples = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.int16), format="s16", layout="mono")
                samples.sample_rate, samples.pts, samples.time_base = rate, i * chunk, Fraction(1, rate)
                c.mux(audio_stream.encode(samples))
        c.mux(video_stream.encode(None))
        c.mux(audio_stream.encode(None))


def test_audio_outlasting_the_video_is_not_truncation(tmp_path):
    # The header's duration is the longest stream's: 3 s of audio over 1 s of video is a valid
    # file (video and audio of web videos often end apart), not a cut one.
    path = str(tmp_path / "long_audio.webm")
    frames = indexed_frames(25)
    _write_webm_with_audio(path, frames, 25, audio_seconds=3.0)
    with av.open(path) as c:
        assert c.duration / 1e6 == pytest.approx(3.0, abs=0.1)
    assert probe_video(path).num_frames == 25
    assert index_codes(decode_frames(path, [0, 12, 24])).tolist() == [0, 12, 24]
    # A file with audio that is cut short still is truncated: every stream stops at the cut.
    whole = str(tmp_path / "with_audio.webm")
    _write_webm_with_audio(whole, indexed_frames(75), 25, audio_seconds=3.0)
    assert probe_video(whole).num_frames == 75
    data = open(whole, "rb").read()
    cut = tmp_path / "with_audio_cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"with_audio_cut\.webm: truncated"):
        probe_video(str(cut))


def test_corrupt_bytes_inside_the_stream(tmp_path, videos):
    data = bytearray(open(videos["cfr_bframes.mp4"], "rb").read())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="corrupt.mp4"):
        decode_frames(str(path), list(range(N)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        write_video("x.mp4", np.zeros((2, 5, 8, 3), np.uint8), 25)
    with pytest.raises(ValueError, match="uint8"):
        write_video("x.mp4", np.zeros((2, 4, 8, 3), np.float32), 25)
    with pytest.raises(ValueError, match="codec"):
        write_video("x.mp4", np.zeros((2, 4, 8, 3), np.uint8), 25, codec="mpeg2")


def test_bad_indices(videos):
    path = videos["cfr.webm"]
    for bad in ([], [-1, 3], [1.5]):
        with pytest.raises(ValueError, match="frame_indices"):
            decode_frames(path, bad)


# -- frame folders --------------------------------------------------------------------------------


def test_frame_folder_reads_each_file_once_in_the_given_order(tmp_path, monkeypatch):
    frames = indexed_frames(6)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(str(tmp_path / f"frame_{i:010d}.png"))  # lossless, so the check is exact
        torchvision.io.write_png(torch.from_numpy(frame).permute(2, 0, 1), paths[-1])
    decoded = []
    real = torchvision.io.decode_image
    monkeypatch.setattr(torchvision.io, "decode_image", lambda *a, **k: decoded.append(1) or real(*a, **k))
    order = [4, 0, 4, 5, 5, 5]
    got = read_frame_folder([paths[i] for i in order])
    np.testing.assert_array_equal(got, frames[order])
    assert len(decoded) == 3


def test_frame_folder_jpeg_and_bytes(tmp_path):
    frames = indexed_frames(3)
    paths = [str(tmp_path / f"{i}.jpg") for i in range(3)]
    for frame, path in zip(frames, paths):
        torchvision.io.write_jpeg(torch.from_numpy(frame).permute(2, 0, 1), path, quality=95)
    got = read_frame_folder(paths)
    assert got.shape == (3, H, W, 3) and (index_codes(got) == [0, 1, 2]).all()
    raw = read_jpeg_bytes(paths)
    assert [bytes(r.numpy()) for r in raw] == [open(p, "rb").read() for p in paths]


def test_frame_folder_errors(tmp_path):
    good = str(tmp_path / "good.png")
    torchvision.io.write_png(torch.zeros(3, 8, 8, dtype=torch.uint8), good)
    other = str(tmp_path / "other.png")
    torchvision.io.write_png(torch.zeros(3, 8, 10, dtype=torch.uint8), other)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    missing = str(tmp_path / "missing.jpg")
    for paths, culprit in (([good, missing], missing), ([good, str(bad)], str(bad)), ([good, other], other)):
        with pytest.raises(VideoError) as error:
            read_frame_folder(paths)
        assert culprit in str(error.value)
    with pytest.raises(VideoError, match="missing.jpg"):
        read_jpeg_bytes([missing])


# -- JPEG headers (frame folders decoded on the training device) -------------------------------


def _segment(code: int, payload: bytes) -> bytes:
    """A JPEG marker segment: FF <code>, 2-byte big-endian length counting itself, payload."""
    return bytes([0xFF, code]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_jpeg_size_hand_worked_header():
    # SOI; APP0 "JFIF"; a 300-byte APP1 (length 0x012E: a 2-byte length over 255); DQT; a
    # restart marker (no length); two FF fill bytes; then SOF2 (progressive):
    # precision 8, height 0x0102 = 258, width 0x0304 = 772, 3 components.
    header = (b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
              + _segment(0xE1, b"Exif" + bytes(296)) + _segment(0xDB, bytes(65)) + b"\xff\xd3"
              + b"\xff\xff" + _segment(0xC2, bytes([8, 0x01, 0x02, 0x03, 0x04, 3]) + bytes(9)))
    assert jpeg_size(header) == (258, 772)
    assert jpeg_size(torch.frombuffer(bytearray(header), dtype=torch.uint8)) == (258, 772)
    # DHT (C4), JPG (C8) and DAC (CC) sit among the SOF codes but carry no size: skipped
    tables = b"\xff\xd8" + b"".join(_segment(c, bytes([8, 0, 9, 0, 9, 1])) for c in (0xC4, 0xC8, 0xCC))
    assert jpeg_size(tables + _segment(0xC0, bytes([8, 0, 17, 0, 23, 1, 1, 0x11, 0]))) == (17, 23)


def _splice_app1(data: bytes, size: int) -> bytes:
    """The JPEG `data` with a `size`-byte APP1 segment and fill bytes inserted after SOI."""
    return data[:2] + _segment(0xE1, b"Exif\x00\x00" + bytes(size - 6)) + b"\xff\xff" + data[2:]


@pytest.mark.parametrize("height, width, channels", [(48, 64, 3), (17, 23, 3), (31, 8, 1), (1, 300, 3)])
def test_jpeg_size_agrees_with_the_decoder(height, width, channels):
    image = torch.randint(0, 256, (channels, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    encoded = torchvision.io.encode_jpeg(image, quality=90)
    spliced = torch.frombuffer(bytearray(_splice_app1(bytes(encoded.numpy()), 1000)), dtype=torch.uint8)
    for data in (encoded, spliced):
        decoded = torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
        assert jpeg_size(data) == tuple(decoded.shape[1:]) == (height, width)


def test_jpeg_size_errors_name_the_file(tmp_path):
    encoded = bytes(torchvision.io.encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8)).numpy())
    sof = encoded.index(b"\xff\xc0")
    for cut in range(sof + 9):  # every header cut short of the frame size
        with pytest.raises(VideoError, match=r"^f\.jpg: (not a JPEG|truncated)"):
            jpeg_size(encoded[:cut], "f.jpg")
    png = tmp_path / "frame.png"
    torchvision.io.write_png(torch.zeros(3, 4, 4, dtype=torch.uint8), str(png))
    with pytest.raises(VideoError, match="frame.png: not a JPEG"):
        jpeg_size(png.read_bytes(), str(png))
    scan_first = b"\xff\xd8" + _segment(0xDA, bytes(10))
    with pytest.raises(VideoError, match=r"x\.jpg: corrupt JPEG: a scan \(SOS\) comes before any frame header"):
        jpeg_size(scan_first, "x.jpg")
    with pytest.raises(VideoError, match="expected a marker at byte 2"):
        jpeg_size(b"\xff\xd8\x00\x00")
    with pytest.raises(VideoError, match="DNL"):
        jpeg_size(b"\xff\xd8" + _segment(0xC0, bytes([8, 0, 0, 0, 5, 1, 1, 0x11, 0])))
    with pytest.raises(ValueError, match="1-D uint8"):
        jpeg_size(torch.zeros(4, dtype=torch.int64), "f.jpg")


def test_read_jpeg_folder(tmp_path):
    frames = indexed_frames(3)
    paths = [str(tmp_path / f"{i}.jpg") for i in range(3)]
    for frame, path in zip(frames, paths):
        torchvision.io.write_jpeg(torch.from_numpy(frame).permute(2, 0, 1), path, quality=95)
    data, size = read_jpeg_folder([paths[2], paths[0], paths[2]])
    assert size == (H, W)
    assert [bytes(d.numpy()) for d in data] == [open(paths[i], "rb").read() for i in (2, 0, 2)]
    assert data[0] is data[2]  # a repeated file is read once
    other = tmp_path / "other" / "9.jpg"
    other.parent.mkdir()
    torchvision.io.write_jpeg(torch.zeros(3, H, W + 2, dtype=torch.uint8), str(other))
    with pytest.raises(VideoError, match=rf"frame folder {re.escape(str(tmp_path))}: .*9\.jpg is 48x66 but .*0\.jpg is 48x64"):
        read_jpeg_folder([paths[0], str(other)])
    png = str(tmp_path / "frame.png")
    torchvision.io.write_png(torch.zeros(3, H, W, dtype=torch.uint8), png)
    with pytest.raises(VideoError, match="frame.png: not a JPEG"):
        read_jpeg_folder([paths[0], png])
    with pytest.raises(VideoError, match="missing.jpg"):
        read_jpeg_folder([paths[0], str(tmp_path / "missing.jpg")])
