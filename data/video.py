"""Decoding clips from video files and JPEG frame folders, and writing videos.

The training loader spends most of its time here, so decoding does only the work a clip needs:
it seeks to the keyframe before the first wanted frame, feeds the decoder up to the packet of
the last wanted frame (then drains it rather than decoding more packets to push frames out),
and converts to RGB only the frames that are kept, through one reused scaler per call. Any set
of frames, e.g. all the overlapping windows of a video's test views, comes from one such pass.

H.264 pictures that are neither wanted nor a reference for other pictures (NAL header
nal_ref_idc = 0) are left out of the decoder: nothing is predicted from them, so every other
frame decodes to the same pixels (B-frames at stride 2 or 8 are most of the frames not
sampled). The packets' NAL headers are read from their bytes (H264Parser); a bitstream the
parser does not expect, or a decoder that disagrees with what was left out, makes the call
decode every packet as without it.

Damaged data is an error, not a clip: FFmpeg conceals broken slices and flags the frame
(frame.is_corrupt). A flagged frame among those decoded for a call -- the wanted ones and the
pictures decoded before them from the keyframe, which may be their references -- raises
VideoError; only a flagged picture known to be a non-reference one (and not wanted) is let
pass, since its damage reaches no other frame. Damage FFmpeg does not detect is not seen.

Frame index = position of a frame in a full sequential decode of the video stream (presentation
order, 0-based). To seek, every frame's presentation timestamp (pts) is needed:
  * MP4/MOV whose sample index is evenly spaced (constant frame rate): frame i has pts
    start_time + i·step; no file reading needed.
  * anything else (WebM/MKV, variable frame rate): one demux-only pass over the packets (no
    decoding, ~3 µs a packet) lists the pts, sorted into presentation order.
Decoded frames are then matched to indices by their exact pts. If the file contradicts its
table (a pts that is not listed, or a listed frame the decoder skips between the first and last
wanted frames), decoding restarts from the beginning and counts frames in decode order, which is
the definition itself. (A listed frame that never decodes *before* the decoded span cannot be
seen without decoding from the start; it would shift indices by one.)

Decoder objects are opened inside each call and closed before it returns, so nothing is shared
across DataLoader worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import av.logging
import numpy as np
import torch
import torchvision.io
from av.video.reformatter import VideoReformatter

# FFmpeg prints pages of warnings for corrupt inputs; the errors that matter reach us as
# exceptions (turned into VideoError below), so its own log stays off.
av.logging.set_level(None)


class VideoError(RuntimeError):
    """A video or frame folder could not be read; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int  # frames a full sequential decode returns
    fps: float  # the stream's average frame rate
    width: int  # size of the frames decode_frames returns (after rotation)
    height: int
    rotation: int  # 0/90/180/270: counter-clockwise rotation applied for display


def _rotation_steps(degrees: float) -> int:
    """Number of 90° counter-clockwise turns (np.rot90's k) for a display rotation in degrees.

    FFmpeg's display matrix gives the angle by which the coded frame must be turned
    counter-clockwise to be shown upright; odd angles are rounded to the nearest quarter turn.
    """
    return int(round(degrees / 90.0)) % 4


def rotate_frame(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an [H, W, C] frame counter-clockwise by `rotation` degrees (a view, no copy)."""
    return np.rot90(frame, k=_rotation_steps(rotation), axes=(0, 1))


def _uniform_grid_pts(stream: av.video.stream.VideoStream) -> np.ndarray | None:
    """All frame pts of a constant-frame-rate MP4/MOV from its sample index, else None.

    The MOV index lists every sample by decode timestamp. When those are evenly spaced and the
    index covers every frame, presentation timestamps form the same grid starting at the
    stream's start time (B-frames only permute frames within it). The decoder verifies this:
    a frame whose pts is off the grid makes the caller fall back to a packet scan.
    """
    entries = stream.index_entries
    n = len(entries)
    if n < 2 or n != stream.frames or stream.start_time is None:
        return None
    dts = np.fromiter((e.timestamp for e in entries), dtype=np.int64, count=n)
    steps = np.diff(dts)
    if steps[0] <= 0 or np.any(steps != steps[0]) or any(e.is_discard for e in entries):
        return None
    return stream.start_time + steps[0] * np.arange(n, dtype=np.int64)


# -- H.264 NAL unit headers ------------------------------------------------------------------

# NAL unit types (H.264 Table 7-1) that a packet of a picture nothing refers to may hold besides
# its slices (type 1, coded slice of a non-IDR picture, with nal_ref_idc 0): SEI, access unit
# delimiter, filler data. Any other type (IDR slices, data partitions, parameter sets, end of
# sequence, extensions) means the packet is decoded.
_NON_IDR_SLICE = 1
_HARMLESS_NAL_TYPES = frozenset({6, 9, 12})


class H264Parser:
    """Tells from an H.264 packet's bytes whether it holds only non-reference pictures.

    Every NAL unit starts with a one-byte header: forbidden_zero_bit (1 bit, always 0),
    nal_ref_idc (2 bits; 0 = no other picture is predicted from this one) and nal_unit_type
    (5 bits). MP4/MOV/MKV store H.264 as AVCC: each NAL unit is preceded by its big-endian
    length, in lengthSizeMinusOne + 1 bytes (1, 2 or 4), the low two bits of byte 4 of the avcC
    record that is the stream's extradata (byte 0, configurationVersion, is 1). Raw streams and
    MPEG-TS use Annex B: NAL units after start codes 00 00 01 (or 00 00 00 01), and extradata,
    if any, that does not start with 1 -- FFmpeg's own rule for telling the two apart.
    """

    def __init__(self, extradata: bytes | None):
        """Raises ValueError for an avcC record too short or with an invalid length size."""
        self.length_size: int | None = None  # None: Annex B
        if extradata and extradata[0] == 1:
            if len(extradata) < 7:
                raise ValueError(f"avcC record of {len(extradata)} bytes; it has at least 7")
            self.length_size = (extradata[4] & 3) + 1
            if self.length_size == 3:
                raise ValueError("avcC record gives NAL length fields of 3 bytes; H.264 allows 1, 2 or 4")

    @classmethod
    def for_stream(cls, codec_context) -> H264Parser | None:
        """The parser for an H.264 stream; None for other codecs or an unreadable avcC record."""
        if codec_context.name != "h264":
            return None
        try:
            return cls(codec_context.extradata)
        except ValueError:
            return None

    def nal_headers(self, data) -> list[int] | None:
        """The header byte of each NAL unit in a packet; None when the bytes are not laid out
        as the format says (lengths that do not tile the packet exactly, no start code first,
        an empty unit, a set forbidden bit)."""
        data = memoryview(data).cast("B")
        n = len(data)
        headers = []
        if self.length_size is not None:
            size, pos = self.length_size, 0
            while pos < n:
                if pos + size >= n:
                    return None
                length = int.from_bytes(data[pos : pos + size], "big")
                pos += size
                if length == 0 or pos + length > n:
                    return None
                headers.append(data[pos])
                pos += length
        else:
            raw = data.tobytes()
            start = raw.find(b"\x00\x00\x01")
            if start < 0 or raw[:start].strip(b"\x00"):  # only zero bytes may precede the first start code
                return None
            while start >= 0:
                if start + 3 >= n:
                    return None
                headers.append(raw[start + 3])
                start = raw.find(b"\x00\x00\x01", start + 3)
        if not headers or any(h & 0x80 for h in headers):
            return None
        return headers

    def is_non_reference(self, data) -> bool | None:
        """True when the packet holds slices of non-reference pictures only (besides SEI,
        delimiters and filler): no other picture is predicted from it. False when it holds
        anything else, None when its bytes do not parse (nal_headers)."""
        headers = self.nal_headers(data)
        if headers is None:
            return None
        slices = False
        for header in headers:
            ref_idc, kind = header >> 5 & 3, header & 0x1F
            if kind == _NON_IDR_SLICE and ref_idc == 0:
                slices = True
            elif kind not in _HARMLESS_NAL_TYPES:
                return False
        return slices


class VideoReader:
    """One open video file: frame count and rate, and exact decoding of frames by index.

    Use as a context manager. `threads` is FFmpeg's decoder thread count: 1 (default) decodes
    on the calling thread, the best use of the cores when every core runs a DataLoader worker
    (bench/bench_loader.py measures it); 0 lets FFmpeg pick frame+slice threading.
    `skip_non_reference=False` feeds every H.264 packet to the decoder (same frames, slower;
    for comparisons).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, skip_non_reference: bool = True):
        self.path = os.fspath(path)
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        if not os.path.isfile(self.path):
            what = "not a regular file" if os.path.exists(self.path) else "no such file"
            raise VideoError(f"{self.path}: {what}")
        try:
            self._container = av.open(self.path)
        except Exception as e:  # FFmpeg raises a zoo of types (InvalidDataError, IndexError, ...)
            raise VideoError(f"{self.path}: cannot open: {e}") from e
        self.rotation: int | None = None  # known once a frame has been decoded
        self._count: int | None = None  # frame count when it had to be found by decoding
        try:
            if not self._container.streams.video:
                raise VideoError(f"{self.path}: no video stream")
            self._stream = self._container.streams.video[0]
            ctx = self._stream.codec_context
            if ctx is None:  # e.g. a file cut before the codec's parameters
                raise VideoError(f"{self.path}: the video stream cannot be decoded (codec parameters missing)")
            ctx.thread_count = threads
            ctx.thread_type = "SLICE" if threads == 1 else "AUTO"
            self.skip_non_reference = skip_non_reference
            self.packets_decoded = 0  # packets handed to the decoder so far (benchmarks, tests)
            self._parser = H264Parser.for_stream(ctx)  # None: not H.264, or an avcC record it cannot read
            self._scanned = False
            self._index_of: dict[int, int] = {}  # frame index by pts, for the table `_index_table`
            self._index_table: np.ndarray | None = None
            self._pts: np.ndarray | None = _uniform_grid_pts(self._stream)
            if self._pts is None:
                self._pts = self._scan_packets()
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _rewind(self) -> None:
        """Back to the start of the stream: the packet scan and counting frames read from there,
        whatever an earlier decode left the demuxer at."""
        self._container.seek(0, backward=True, any_frame=False, stream=self._stream)

    # -- frame table -----------------------------------------------------------------------
    def _scan_packets(self) -> np.ndarray | None:
        """Every frame's pts, sorted, from one demux-only pass over the stream.

        None when the container has no usable timestamps (missing or repeated pts); decoding
        then counts frames from the start.
        """
        self._scanned = True
        pts: list[int] = []
        end = None  # largest pts + duration: where the video data stops
        usable = True
        try:
            self._rewind()
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:  # end-of-stream marker / edit-list trim
                    continue
                if packet.pts is None:
                    usable = False
                    continue
                pts.append(packet.pts)
                packet_end = packet.pts + (packet.duration or 0)
                end = packet_end if end is None else max(end, packet_end)
        except Exception as e:
            raise VideoError(f"{self.path}: corrupt container: {e}") from e
        if not pts and usable:
            raise VideoError(f"{self.path}: the video stream has no frames")
        table = np.sort(np.asarray(pts, dtype=np.int64))
        if not usable or np.any(np.diff(table) == 0):
            return None
        self._check_not_truncated(table, end)
        return table

    def _check_not_truncated(self, table: np.ndarray, end: int) -> None:
        """Raises if the file's data stops well before the duration the container header announces.

        A WebM cut short still demuxes and decodes cleanly up to the cut, so truncation shows
        only as missing time. The header's duration is the longest stream's, and a valid file's
        audio may outlast its video by seconds; a cut, though, stops every stream at the same
        point. So when the video falls short, the other streams are demuxed too (only then) and
        the one that lasts longest is compared.
        """
        declared = self._container.duration  # microseconds, from the header; None if unknown
        if declared is None or declared <= 0:
            return
        declared_s = declared / 1e6
        data_s = _span_seconds(int(table[0]), end, self._stream.time_base)
        others = [s for s in self._container.streams if s.index != self._stream.index]
        if declared_s - data_s > 0.5 and others:
            data_s = max(data_s, self._others_span_seconds(others))
        if declared_s - data_s > 0.5:
            raise VideoError(
                f"{self.path}: truncated: the header says {declared_s:.2f} s "
                f"but the data lasts {data_s:.2f} s"
            )

    def _others_span_seconds(self, streams: list) -> float:
        """How long the data of `streams` lasts (seconds; 0 if they hold no timed packets)."""
        first: dict[int, int] = {}
        end: dict[int, int] = {}
        try:
            self._rewind()
            for packet in self._container.demux(streams):
                if packet.size == 0 or packet.pts is None:
                    continue
                i = packet.stream.index
                first[i] = min(first.get(i, packet.pts), packet.pts)
                end[i] = max(end.get(i, packet.pts), packet.pts + (packet.duration or 0))
        except Exception as e:
            raise VideoError(f"{self.path}: corrupt container: {e}") from e
        time_base = {s.index: s.time_base for s in streams}
        return max((_span_seconds(first[i], end[i], time_base[i]) for i in end), default=0.0)

    @property
    def num_frames(self) -> int:
        """Frames a full sequential decode returns."""
        if self._pts is not None:
            return len(self._pts)
        if self._count is None:
            self._count = sum(1 for _ in self._frames_from_start())
        return self._count

    @property
    def fps(self) -> float:
        """The stream's average frame rate (from the container, else from the timestamps)."""
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            return float(rate)
        if self._pts is not None and len(self._pts) > 1:
            span = (self._pts[-1] - self._pts[0]) * self._stream.time_base
            return float((len(self._pts) - 1) / span)
        raise VideoError(f"{self.path}: cannot tell the frame rate")

    @property
    def info(self) -> VideoInfo:
        """Frame count, rate, display size and rotation (decodes the first frame)."""
        first = self.decode([0])
        return VideoInfo(
            path=self.path,
            num_frames=self.num_frames,
            fps=self.fps,
            width=first.shape[2],
            height=first.shape[1],
            rotation=self.rotation,
        )

    # -- decoding --------------------------------------------------------------------------
    def decode(self, frame_indices) -> np.ndarray:
        """uint8 [len(frame_indices), H, W, 3] RGB frames at the given 0-based indices.

        Indices may repeat and need not be sorted; indices past the last frame are clamped to
        it (PySlowFast-style padding of short videos). Frames are turned upright per the
        display rotation. All of them come from one decoding pass (module docstring), whose
        damaged frames raise VideoError.
        """
        wanted = np.asarray(frame_indices)
        if wanted.ndim != 1 or wanted.size == 0 or not np.issubdtype(wanted.dtype, np.integer):
            raise ValueError(
                f"frame_indices must be a non-empty 1-D sequence of ints, "
                f"got dtype {wanted.dtype} shape {wanted.shape} ({self.path})"
            )
        if wanted.min() < 0:
            raise ValueError(f"frame_indices must be >= 0, got {int(wanted.min())} ({self.path})")
        wanted = wanted.astype(np.int64)
        frames = None
        if self._pts is not None:
            skip = self.skip_non_reference and self._parser is not None
            frames = self._decode_by_pts(wanted, skip)
            if frames is None and skip:
                # The parser gave up, or the decoder's output disagrees with what was left out
                # of it: feed it every packet before doubting the timestamps.
                frames = self._decode_by_pts(wanted, False)
            if frames is None and not self._scanned:
                # The evenly-spaced guess from the MOV index was wrong: list the real pts.
                self._pts = self._scan_packets()
                if self._pts is not None:
                    frames = self._decode_by_pts(wanted, False)
            if frames is None:  # the file contradicts its own timestamps: count instead
                self._pts = None
        if frames is None:
            frames = self._decode_in_order(wanted)
        return frames

    def _decode_by_pts(self, wanted: np.ndarray, skip: bool) -> np.ndarray | None:
        """Seek + decode using the pts table; None if the file contradicts the table."""
        table = self._pts
        if self._index_table is not table:  # pts -> frame index, for the frames of every pass
            self._index_of, self._index_table = dict(zip(table.tolist(), range(len(table)))), table
        wanted = np.minimum(wanted, len(table) - 1)
        targets = np.unique(wanted)  # sorted
        # The seek lands on the keyframe at or before the target *decode* time; with B-frames
        # that keyframe can be shown after the target frame, so back off further and retry.
        for back_off in (0, 16, 64, 256, len(table)):
            seek_index = max(int(targets[0]) - back_off, 0)
            frames = self._decode_pass(table, wanted, targets, seek_index, skip)
            if frames is not _SEEK_EARLIER:
                return frames
            if seek_index == 0:
                return None
        return None

    def _decode_pass(self, table: np.ndarray, wanted: np.ndarray, targets: np.ndarray, seek_index: int,
                     skip: bool):
        """One pass from the keyframe at or before frame `seek_index`: the frames, None (the
        file contradicts the table, or the parser gave up while skipping), or _SEEK_EARLIER.

        Packets are fed up to the last one (in decode order) holding a target, then the
        decoder is drained, so every fed picture comes out and its damage flag is seen. With
        `skip`, packets of non-reference pictures that are not targets are left out.

        Between the first and the last target every listed frame must be accounted for: it
        comes out of the decoder, or its packet was left out, or its packet comes after the
        last target's (read from the demuxer, not decoded, once the targets are out). A listed
        frame with no packet, or a fed one that never comes out, means the table is wrong.
        """
        sink = _FrameSink(wanted)
        index_of = self._index_of
        target_set = set(targets.tolist())
        unfed = set(target_set)  # targets whose packet has not reached the decoder yet
        fed: set[int] = set()
        skipped: set[int] = set()
        unseen_gaps: set[int] = set()  # frames between targets that neither came out nor were demuxed yet
        non_reference: set[int] = set()  # fed pictures the parser found no picture refers to
        keyframe = None  # index of the first keyframe fed: where decoding really starts
        k = 0  # next target
        previous = -1
        if seek_index == 0:
            self._rewind()  # a timestamp at the first frame may still land past it (MPEG-TS seeks by bytes)
        else:
            self._container.seek(int(table[seek_index]), backward=True, any_frame=False, stream=self._stream)
        packets = self._container.demux(self._stream)
        try:
            for packet in packets:
                index = index_of.get(packet.pts) if packet.size else None
                unseen_gaps.discard(index)
                if index is not None and self._parser is not None:
                    kind = self._parser.is_non_reference(packet)
                    if kind is None:  # not the bitstream the parser expects: stop trusting it
                        self._parser = None
                        if skip:
                            return None
                    elif kind and index not in target_set:
                        if skip:
                            skipped.add(index)
                            continue
                        non_reference.add(index)
                if keyframe is None and packet.is_keyframe:
                    keyframe = index
                frames = packet.decode()
                self.packets_decoded += 1
                fed.add(index)
                unfed.discard(index)
                if not unfed:
                    frames += self._stream.decode(None)  # drain: the frames still held come out
                for frame in frames:
                    i = index_of.get(frame.pts)
                    if i is None:
                        return None
                    if frame.is_corrupt and i not in non_reference:
                        if seek_index > 0 and (keyframe is None or i < keyframe):
                            return _SEEK_EARLIER  # a leading picture: it needs data from before the seek
                        raise VideoError(
                            f"{self.path}: damaged video data: frame {i} was decoded with errors (FFmpeg "
                            f"concealed them), on the way to frame(s) {_describe(targets)}"
                        )
                    if k == len(targets):
                        continue  # drained pictures after the last target: checked for damage only
                    if k > 0:
                        if i <= previous:
                            return None
                        for j in range(previous + 1, i):
                            if j in fed:
                                return None  # a listed frame that was decoded never came out
                            if j not in skipped:
                                unseen_gaps.add(j)
                    previous = i
                    if i < targets[k]:
                        continue
                    if i > targets[k]:  # the seek landed past the first target / a target is missing
                        return _SEEK_EARLIER if k == 0 else None
                    sink.put(i, frame)
                    k += 1
                if not unfed:
                    break
            if k == len(targets) and unseen_gaps:
                for packet in packets:  # demux only: the packets of the frames not yet accounted for
                    unseen_gaps.discard(index_of.get(packet.pts) if packet.size else None)
                    if not unseen_gaps:
                        break
        except VideoError:
            raise
        except Exception as e:
            raise VideoError(f"{self.path}: decoding failed near frame {int(targets[min(k, len(targets) - 1)])}: "
                             f"{e}") from e
        if k == len(targets):
            if unseen_gaps:
                return None  # listed frames with no packet behind them
            self.rotation = sink.rotation
            return sink.frames
        if not unfed:  # every target was fed but one never came out
            return _SEEK_EARLIER if k == 0 and seek_index > 0 else None
        if seek_index > 0 and (keyframe is None or keyframe > targets[k]):
            return _SEEK_EARLIER  # the seek landed past the target's keyframe (MPEG-TS seeks by bytes)
        raise VideoError(
            f"{self.path}: truncated or corrupt: the container lists {len(table)} frames "
            f"but decoding stopped before frame {int(targets[k])}"
        )

    def _frames_from_start(self):
        self._rewind()
        try:
            for packet in self._container.demux(self._stream):
                self.packets_decoded += packet.size > 0
                yield from packet.decode()
        except Exception as e:
            raise VideoError(f"{self.path}: decoding failed: {e}") from e

    def _decode_in_order(self, wanted: np.ndarray) -> np.ndarray:
        """Decode from the start, index = decode order; past-the-end indices take the last frame.

        Without timestamps a frame cannot be tied to its packet, so every frame up to the last
        target (and those the decoder still holds then) must be free of damage."""
        targets = np.unique(wanted)
        sink = _FrameSink(wanted)
        k = 0
        last = None
        count = 0
        for count, frame in enumerate(self._frames_from_start(), start=1):
            self._check_undamaged(frame, count - 1, targets)
            last = frame
            if count - 1 == targets[k]:
                sink.put(count - 1, frame)
                k += 1
                if k == len(targets):
                    break
        else:
            if last is None:
                raise VideoError(f"{self.path}: no frame could be decoded")
            self._count = count
            sink.put_slots(np.flatnonzero(wanted >= targets[k]), last)
        if k == len(targets):
            try:
                held = self._stream.decode(None)
            except av.error.EOFError:  # the last target came with the end of the file: nothing is held
                held = []
            except Exception as e:
                raise VideoError(f"{self.path}: decoding failed: {e}") from e
            for offset, frame in enumerate(held, start=count):
                self._check_undamaged(frame, offset, targets)
        self.rotation = sink.rotation
        return sink.frames

    def _check_undamaged(self, frame: av.VideoFrame, index: int, targets: np.ndarray) -> None:
        if frame.is_corrupt:
            raise VideoError(
                f"{self.path}: damaged video data: frame {index} was decoded with errors (FFmpeg "
                f"concealed them), on the way to frame(s) {_describe(targets)}"
            )


# A pass that must start from an earlier keyframe (VideoReader._decode_pass).
_SEEK_EARLIER = object()


def _describe(indices: np.ndarray) -> str:
    """A short list of frame indices for messages."""
    shown = ", ".join(str(int(i)) for i in indices[:6])
    return shown + (f", ... ({len(indices)} frames)" if len(indices) > 6 else "")


def _span_seconds(first: int, end: int, time_base: Fraction) -> float:
    """Seconds a stream's data covers, from its first pts to `end` (last pts + duration).

    Containers disagree on whether their duration counts from time 0 or from the first packet
    (a stream may start late, or before 0), so the longer of the two readings is taken.
    """
    return max(float((end - first) * time_base), float(end * time_base))


class _FrameSink:
    """Converts each kept frame to RGB once and copies it to every output slot that wants it.

    One VideoReformatter serves the whole call: PyAV's frame.to_ndarray() builds a fresh
    swscale context per frame, which costs 0.15-0.25 ms a frame at these sizes.
    """

    def __init__(self, wanted: np.ndarray):
        self.wanted = wanted
        self.reformatter = VideoReformatter()
        self.frames: np.ndarray | None = None
        self.size: tuple[int, int] | None = None  # coded (width, height) of the first frame
        self.rotation = 0

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self.size is None:
            self.size = (frame.width, frame.height)
            self.rotation = 90 * _rotation_steps(frame.rotation)
        w, h = self.size
        # A mid-stream size change is scaled back to the first frame's size: one clip, one array.
        rgb = self.reformatter.reformat(frame, format="rgb24", width=w, height=h, threads=1)
        plane = rgb.planes[0]
        arr = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : 3 * w].reshape(h, w, 3)
        return rotate_frame(arr, self.rotation)

    def put(self, index: int, frame: av.VideoFrame) -> None:
        self.put_slots(np.flatnonzero(self.wanted == index), frame)

    def put_slots(self, slots: np.ndarray, frame: av.VideoFrame) -> None:
        arr = self._rgb(frame)
        if self.frames is None:
            self.frames = np.empty((len(self.wanted), *arr.shape), dtype=np.uint8)
        self.frames[slots] = arr


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate, display size and rotation of a video; raises VideoError."""
    with VideoReader(path) as reader:
        return reader.info


def decode_frames(path: str | os.PathLike, frame_indices, threads: int = 1,
                  skip_non_reference: bool = True) -> np.ndarray:
    """uint8 [len(frame_indices), H, W, 3] RGB frames of `path` at the given frame indices.

    See VideoReader.decode for the index rules; raises VideoError naming the file.
    """
    with VideoReader(path, threads=threads, skip_non_reference=skip_non_reference) as reader:
        return reader.decode(frame_indices)


# -- JPEG frame folders (Charades-Ego, EPIC-Kitchens rgb_frames) -----------------------------


def read_jpeg_bytes(paths: Sequence[str | os.PathLike]) -> list[torch.Tensor]:
    """The encoded bytes of each image as a uint8 tensor (for decoding on the GPU later)."""
    data = []
    for path in paths:
        try:
            data.append(torchvision.io.read_file(os.fspath(path)))
        except (OSError, RuntimeError) as e:
            raise VideoError(f"{os.fspath(path)}: cannot read frame: {e}") from e
    return data


# Markers that open a frame header (SOF0-3, 5-7, 9-11, 13-15), which holds the image size;
# 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) sit in the same range but are tables, not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field after them: TEM and the restart markers RST0-7.
_BARE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])


def jpeg_size(data: bytes | np.ndarray | torch.Tensor, name: str = "<bytes>") -> tuple[int, int]:
    """(height, width) of a JPEG image, read from its frame header without decoding anything.

    A JPEG file is SOI (FF D8) followed by marker segments, FF <code> <2-byte big-endian length
    counting itself> <payload>, of which APPn (EXIF, ICC...), DQT and DHT come before the frame
    header SOFn: precision (1 byte), height (2), width (2), components. The walk skips every
    segment by its length up to the first SOFn. This is the size torchvision's decode_jpeg
    returns (it does not apply EXIF orientation unless asked).

    `data` is the file's bytes (bytes, or a 1-D uint8 array/tensor as read_jpeg_bytes gives).
    Raises VideoError naming `name` for a file that is not a JPEG, a header cut short, a scan
    that starts before any frame header, or a height of 0 (size deferred to a DNL marker, which
    libjpeg-turbo does not decode either).
    """
    if isinstance(data, torch.Tensor):
        if data.dtype != torch.uint8 or data.dim() != 1:
            raise ValueError(f"{name}: jpeg_size needs the file's bytes as a 1-D uint8 tensor, got "
                             f"{data.dtype} {tuple(data.shape)}")
        data = data.cpu().numpy()
    view = memoryview(data).cast("B")
    n = len(view)
    if n < 2 or view[0] != 0xFF or view[1] != 0xD8:
        raise VideoError(f"{name}: not a JPEG file (it does not start with the SOI marker FF D8)")
    pos = 2
    while True:
        if pos >= n:
            raise VideoError(f"{name}: truncated JPEG: the file ends before the frame header (SOF marker)")
        if view[pos] != 0xFF:
            raise VideoError(f"{name}: corrupt JPEG header: expected a marker at byte {pos}, found 0x{view[pos]:02X}")
        while pos < n and view[pos] == 0xFF:  # any number of FF fill bytes may precede a code
            pos += 1
        if pos >= n:
            raise VideoError(f"{name}: truncated JPEG: the file ends inside a marker")
        code = view[pos]
        pos += 1
        if code in _BARE_MARKERS:
            continue
        if code in (0xDA, 0xD9):
            what = "a scan (SOS)" if code == 0xDA else "the end of the image (EOI)"
            raise VideoError(f"{name}: corrupt JPEG: {what} comes before any frame header (SOF marker)")
        if code in (0x00, 0xD8):
            raise VideoError(f"{name}: corrupt JPEG header: marker FF {code:02X} at byte {pos - 2}")
        if pos + 2 > n:
            raise VideoError(f"{name}: truncated JPEG: the file ends inside the header of marker FF {code:02X}")
        length = view[pos] << 8 | view[pos + 1]
        if length < 2:
            raise VideoError(f"{name}: corrupt JPEG header: marker FF {code:02X} has length {length}")
        if code in _SOF_MARKERS:
            if length < 8 or pos + 7 > n:
                raise VideoError(f"{name}: truncated JPEG: the frame header (SOF marker) is cut short")
            height = view[pos + 3] << 8 | view[pos + 4]
            width = view[pos + 5] << 8 | view[pos + 6]
            if width == 0:
                raise VideoError(f"{name}: corrupt JPEG: the frame header gives width 0")
            if height == 0:
                raise VideoError(f"{name}: JPEG with height 0 in its frame header (set later by a DNL "
                                 "marker) is not supported")
            return height, width
        pos += length


def read_jpeg_folder(paths: Sequence[str | os.PathLike]) -> tuple[list[torch.Tensor], tuple[int, int]]:
    """The encoded bytes of each frame (for decoding on the training device) and the clip's
    frame size (H, W) from the JPEG headers.

    Paths may repeat (padding of short segments): each file is read once and its tensor repeats
    in the list. Raises VideoError naming the file for an unreadable or non-JPEG frame, and the
    folder when its frames differ in size (one clip is one array on the device).
    """
    if len(paths) == 0:
        raise ValueError("read_jpeg_folder needs at least one path")
    names = [os.fspath(p) for p in paths]
    unique = list(dict.fromkeys(names))
    data = dict(zip(unique, read_jpeg_bytes(unique)))
    sizes = {name: jpeg_size(data[name], name) for name in unique}
    size = sizes[unique[0]]
    for name, other in sizes.items():
        if other != size:
            raise VideoError(
                f"frame folder {os.path.dirname(unique[0]) or '.'}: {name} is {other[0]}x{other[1]} but "
                f"{unique[0]} is {size[0]}x{size[1]}; the frames of one clip must share one size"
            )
    return [data[name] for name in names], size


def read_frame_folder(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """uint8 [len(paths), H, W, 3] RGB frames from image files (JPEG or PNG).

    Paths may repeat (padding of short segments); each file is read and decoded once.
    """
    if len(paths) == 0:
        raise ValueError("read_frame_folder needs at least one path")
    names = [os.fspath(p) for p in paths]
    unique = list(dict.fromkeys(names))
    images = {}
    for name, data in zip(unique, read_jpeg_bytes(unique)):
        try:
            image = torchvision.io.decode_image(data, mode=torchvision.io.ImageReadMode.RGB)
        except RuntimeError as e:
            raise VideoError(f"{name}: cannot decode image: {e}") from e
        images[name] = image.permute(1, 2, 0)  # [3, H, W] -> [H, W, 3]
    size = images[unique[0]].shape
    for name, image in images.items():
        if image.shape != size:
            raise VideoError(
                f"{name}: frame size {tuple(image.shape[:2])} differs from "
                f"{tuple(size[:2])} of {unique[0]}"
            )
    frames = np.empty((len(names), *size), dtype=np.uint8)
    for slot, name in enumerate(names):
        frames[slot] = images[name].numpy()
    return frames


# -- writing (tests, generated data, benchmarks) ---------------------------------------------

_ENCODER_OPTIONS = {
    # Constant-quality modes; crf 0 is lossless for x264, 0-10 near-lossless for VP9.
    "libx264": lambda crf: {"crf": str(crf), "preset": "veryfast"},
    "libvpx-vp9": lambda crf: {"crf": str(crf), "b:v": "0", "deadline": "good", "cpu-used": "5"},
}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    codec: str = "libx264",
    *,
    crf: int = 18,
    gop: int | None = None,
    timestamps: Sequence[float] | None = None,
    rotation: int = 0,
) -> None:
    """Encodes uint8 [T, H, W, 3] RGB frames as MP4/H.264 ("libx264") or WebM/VP9 ("libvpx-vp9").

    gop: keyframe interval in frames (encoder default if None). timestamps: presentation time
    of each frame in seconds (variable frame rate, or a non-zero start); default i / fps.
    rotation: display rotation, counter-clockwise degrees, stored as the stream's display
    matrix (the frames are written as given; decoders turn them for display).
    """
    path = os.fspath(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"write_video({path}): frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if codec not in _ENCODER_OPTIONS:
        raise ValueError(f"write_video({path}): codec must be one of {sorted(_ENCODER_OPTIONS)}, got {codec!r}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"write_video({path}): yuv420p needs an even frame size, got {width}x{height}")
    if timestamps is None:
        time_base = 1 / Fraction(fps).limit_denominator(1001)
        pts = list(range(len(frames)))
    else:
        if len(timestamps) != len(frames):
            raise ValueError(f"write_video({path}): {len(timestamps)} timestamps for {len(frames)} frames")
        time_base = Fraction(1, 1000)
        pts = [round(t * 1000) for t in timestamps]
        if any(b <= a for a, b in zip(pts, pts[1:])) or pts[0] < 0:
            raise ValueError(f"write_video({path}): timestamps must be >= 0 and increasing by >= 1 ms")
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        options = _ENCODER_OPTIONS[codec](crf)
        if gop is not None:
            options["g"] = str(gop)
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for image, t in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
