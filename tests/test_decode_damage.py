"""Damaged video data is a failure, not a clip (data/video.py, data/datasets.py): a file whose
bytes are overwritten mid-stream decodes without an FFmpeg error into concealed frames that
FFmpeg flags (frame.is_corrupt); a flagged frame among those decoded for a clip fails it on
every decode path (timestamps with and without leaving pictures out, counting from the start),
in training (replaced, named) and in evaluation (an error view). Clips that do not need the
damaged stretch still decode, bit-identical to the undamaged file."""

import shutil

import av
import numpy as np
import pytest

import data.video as video
from data.datasets import ClipDataset, VideoItem
from data.transforms import ClipSampling
from data.video import H264Parser, VideoError, VideoReader, write_video

N = 72
H, W = 64, 96
GOP = 24  # longest keyframe interval; x264 adds scene-cut keyframes where it sees fit (keyframes())


def moving_texture(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = np.kron(rng.integers(0, 256, (H // 4 + 12, W // 4 + 24, 3)), np.ones((4, 4, 1))).astype(np.float32)
    frames = np.empty((n, H, W, 3), np.uint8)
    for t in range(n):  # a steady pan, one pixel a frame across, half a pixel down
        frame = texture[t // 2 : t // 2 + H, t : t + W] + rng.normal(0, 3, (H, W, 1))
        frames[t] = np.clip(frame, 0, 255)
    return frames


def sequential_decode(path: str) -> tuple[np.ndarray, list[int]]:
    """Every frame in decode order, and the indices of those FFmpeg flags as damaged."""
    with av.open(path) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), [i for i, f in enumerate(frames) if f.is_corrupt]


def packets_by_frame(path: str) -> dict[int, tuple[int, int, bool]]:
    """frame index -> (byte position, size, is a non-reference picture) of its packet."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        parser = H264Parser(stream.codec_context.extradata)
        packets = [(p.pts, p.pos, p.size, parser.is_non_reference(p)) for p in container.demux(stream) if p.size]
    order = {pts: i for i, pts in enumerate(sorted(p[0] for p in packets))}
    return {order[pts]: (pos, size, non_reference) for pts, pos, size, non_reference in packets}


def keyframes(path: str) -> list[int]:
    """Indices of the keyframes (IDR pictures: closed GOPs), sorted."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    order = sorted(pts for pts, _ in packets)
    return sorted(order.index(pts) for pts, key in packets if key)


def gop_of(path: str, frame: int) -> tuple[int, int]:
    """(first frame of the GOP holding `frame`, first frame of the next GOP or N)."""
    keys = keyframes(path) + [N]
    return max(k for k in keys if k <= frame), min(k for k in keys if k > frame)


def overwrite_picture(src: str, dst: str, frame: int) -> None:
    """Zeroes the second half of the frame's coded picture in a copy of the file: the slice
    data breaks off, the container and the NAL lengths stay intact."""
    pos, size, _ = packets_by_frame(src)[frame]
    data = bytearray(open(src, "rb").read())
    data[pos + size // 2 : pos + size] = bytes(size - size // 2)
    open(dst, "wb").write(data)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("damage") / "clean.mp4")
    write_video(path, moving_texture(), 25, crf=23, gop=GOP)
    return path


def damaged_copy(clean, tmp_path, non_reference: bool, after: int):
    """A copy with one picture overwritten -- the first after frame `after` of the wanted kind
    whose damage FFmpeg flags -- and that frame's index."""
    packets = packets_by_frame(clean)
    for frame in range(after, N):
        if packets[frame][2] != non_reference:
            continue
        path = str(tmp_path / f"damaged_{frame}.mp4")
        overwrite_picture(clean, path, frame)
        try:
            _, flagged = sequential_decode(path)
        except av.error.FFmpegError:  # damage FFmpeg reports as an error: not the case under test
            continue
        if flagged == [frame]:
            return path, frame
    pytest.fail(f"no {'non-' if non_reference else ''}reference picture after frame {after} whose damage is flagged")


def test_overwritten_bytes_decode_without_error_into_different_frames(clean, tmp_path):
    # what the loader must catch: no exception from FFmpeg, frames off, only the flag says so
    path, frame = damaged_copy(clean, tmp_path, non_reference=False, after=30)
    reference, flagged = sequential_decode(clean)
    damaged, _ = sequential_decode(path)
    assert flagged == [] and len(damaged) == N
    assert not np.array_equal(damaged[frame], reference[frame])
    np.testing.assert_array_equal(damaged[:GOP], reference[:GOP])


def _timestamp_paths():
    return [("timestamps, leaving pictures out", {"skip_non_reference": True}),
            ("timestamps, every packet", {"skip_non_reference": False})]


@pytest.mark.parametrize("how, options", _timestamp_paths())
def test_a_damaged_reference_picture_fails_the_clips_that_decode_it(clean, tmp_path, how, options):
    path, frame = damaged_copy(clean, tmp_path, non_reference=False, after=36)
    reference, _ = sequential_decode(clean)
    gop_start, next_key = gop_of(path, frame)
    assert next_key - gop_start > 8
    failing = [[frame], [frame, frame + 2], [next_key - 1], list(range(gop_start, next_key, 4))]
    for indices in failing:  # the frame itself, or frames predicted from it (up to the next IDR)
        with pytest.raises(VideoError, match=rf"damaged video data: frame {frame} was decoded with errors") as error:
            with VideoReader(path, **options) as reader:
                reader.decode(indices)
        assert path in str(error.value), how
    before = list(range(0, gop_start, 3))  # earlier GOPs
    after = list(range(next_key, N, 5))  # from the next IDR on
    for indices in (before, after):
        with VideoReader(path, **options) as reader:
            np.testing.assert_array_equal(reader.decode(indices), reference[indices], err_msg=how)


def test_counting_from_the_start_fails_on_damage_too(clean, tmp_path, monkeypatch):
    # no usable timestamps: frames are counted in decode order, and flagged ones still fail
    path, frame = damaged_copy(clean, tmp_path, non_reference=False, after=30)
    reference, _ = sequential_decode(clean)
    monkeypatch.setattr(video, "_uniform_grid_pts", lambda stream: None)
    monkeypatch.setattr(VideoReader, "_scan_packets", lambda self: None)
    with VideoReader(path) as reader:
        with pytest.raises(VideoError, match=rf"{path}: damaged video data: frame {frame}"):
            reader.decode([frame + 1])
        np.testing.assert_array_equal(reader.decode([3, 10]), reference[[3, 10]])


@pytest.mark.parametrize("skip", [True, False])
def test_a_damaged_non_reference_picture_fails_only_clips_that_sample_it(clean, tmp_path, skip):
    # Nothing is predicted from it: a clip that spans it without sampling it is intact, whether
    # the picture is left out of the decoder or decoded and known to be a non-reference one.
    path, frame = damaged_copy(clean, tmp_path, non_reference=True, after=2)
    reference, _ = sequential_decode(clean)
    around = [i for i in range(max(frame - 6, 0), frame + 7) if i != frame]
    with VideoReader(path, skip_non_reference=skip) as reader:
        np.testing.assert_array_equal(reader.decode(around), reference[around])
        with pytest.raises(VideoError, match=rf"damaged video data: frame {frame}"):
            reader.decode([frame])


SAMPLING = ClipSampling(clip_len=4, stride=2, min_size=48, max_size=56, crop_size=40, test_size=48,
                        num_clips=6, num_crops=3)


def test_training_replaces_and_names_a_damaged_sample(clean, tmp_path):
    path, frame = damaged_copy(clean, tmp_path, non_reference=False, after=2)
    gop_start, _ = gop_of(path, frame)
    # a segment that ends at the damaged picture, so every clip of it decodes that picture
    good = str(tmp_path / "good.mp4")
    shutil.copy(clean, good)
    videos = [VideoItem(video_id="damaged", source=path, label=0, first_frame=gop_start,
                        num_frames=frame - gop_start + 1),
              VideoItem(video_id="good", source=good, label=1)]
    ds = ClipDataset(videos, True, ClipSampling(clip_len=4, stride=1, min_size=48, max_size=56, crop_size=40))
    sample = ds[0]
    assert sample["video_id"] == "good" and len(sample["failed"]) == 1
    message = sample["failed"][0]
    assert message.startswith("damaged: ") and path in message and "damaged video data" in message


def test_evaluation_turns_the_views_that_need_the_damage_into_errors(clean, tmp_path):
    # Six windows over 72 frames: the views of the windows that decode the damaged GOP are error
    # views naming the video, the view and the damage; the others load as from the clean file.
    path, frame = damaged_copy(clean, tmp_path, non_reference=False, after=GOP)
    gop_start, next_key = gop_of(path, frame)
    clean_ds = ClipDataset([VideoItem(video_id="v", source=clean, label=0)], False, SAMPLING)
    ds = ClipDataset([VideoItem(video_id="v", source=path, label=0)], False, SAMPLING)
    samples = ds.__getitems__(list(range(len(ds))))
    errors = [s for s in samples if "error" in s]
    assert errors and len(errors) < len(samples)
    for sample in samples:
        want = clean_ds[sample["index"]]
        if "error" in sample:
            assert sample["view"] == sample["index"] and sample["video_id"] == "v"
            assert path in sample["error"] and f"frame {frame}" in sample["error"]
            first, last = want["frame_indices"].min().item(), want["frame_indices"].max().item()
            assert last >= gop_start and first < next_key  # it needs the damaged GOP
            assert ds[sample["index"]]["error"] == sample["error"]  # as the view on its own
        else:
            assert torch_equal(sample["frames"], want["frames"]) and sample["view"] == want["view"]


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
