"""Running ffmpeg: the decode check at ingest, and the renditions the worker makes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from server.runtime import subprocesses

_OUT_TIME = re.compile(rb"^out_time_us=(\d+)$", re.MULTILINE)


class FfmpegError(Exception):
    """ffmpeg failed; the message is its first error line."""


class CorruptAudio(ValueError):
    """The file does not decode as the audio its header promises."""


@dataclass(frozen=True)
class DecodeReport:
    decoded_seconds: float
    errors: tuple[str, ...]
    exit_code: int


async def run_ffmpeg(args: list[str], time_limit: float) -> tuple[int, bytes, bytes]:
    """ffmpeg as a child that dies with us, killed when cancelled or out of time."""
    try:
        done = await subprocesses.run(args, time_limit)
    except FileNotFoundError:
        raise FfmpegError(f"{args[0]} is not installed (the Debian package ffmpeg)") from None
    except TimeoutError:
        raise FfmpegError(f"ffmpeg took longer than {time_limit:g} s") from None
    return done.returncode, done.stdout, done.stderr


async def decode_check(ffmpeg: str, path: Path, time_limit: float) -> DecodeReport:
    """Decode the whole first audio stream, discarding the output; report how much
    audio came out and what ffmpeg complained about."""
    code, stdout, stderr = await run_ffmpeg(
        [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", str(path),
         "-map", "0:a:0", "-f", "null", "-", "-progress", "pipe:1"],
        time_limit,
    )  # fmt: skip
    times = _OUT_TIME.findall(stdout)
    decoded = int(times[-1]) / 1_000_000 if times else 0.0
    errors = tuple(
        line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()
    )
    return DecodeReport(decoded, errors, code)


def judge_decode(report: DecodeReport, declared_seconds: float | None) -> float:
    """Accept or refuse an upload by its decode report; return the duration to record.

    Refused: ffmpeg failed, no audio came out, or clearly less audio came out than the
    header declares (a truncated file). A glitch or two that costs less than half a
    second (or 3 %) is tolerated, as players tolerate it.
    """
    if report.exit_code != 0:
        reason = report.errors[0] if report.errors else f"exit status {report.exit_code}"
        raise CorruptAudio(f"the file cannot be decoded: {reason}")
    if report.decoded_seconds < 0.05:
        raise CorruptAudio("the file contains no decodable audio")
    if declared_seconds and declared_seconds > report.decoded_seconds:
        missing = declared_seconds - report.decoded_seconds
        if missing > max(0.5, declared_seconds * 0.03):
            raise CorruptAudio(
                f"the file is truncated or corrupt: its header promises "
                f"{declared_seconds:.1f} s but only {report.decoded_seconds:.1f} s decode"
            )
    return report.decoded_seconds


async def transcode(
    ffmpeg: str, source: Path, target: Path, args: list[str], time_limit: float
) -> None:
    code, _stdout, stderr = await run_ffmpeg(
        [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(source),
         "-map", "0:a:0", "-vn", "-map_metadata", "-1", *args, str(target)],
        time_limit,
    )  # fmt: skip
    if code != 0:
        lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
        raise FfmpegError(lines[-1] if lines else f"ffmpeg exited with status {code}")


def opus_args(bitrate: str) -> list[str]:
    return ["-c:a", "libopus", "-b:a", bitrate, "-f", "ogg"]


def mp3_args(bitrate: str) -> list[str]:
    return ["-c:a", "libmp3lame", "-b:a", bitrate, "-f", "mp3"]


def preview_args(duration: float, length: float, fade: float, bitrate: str) -> list[str]:
    """The first ``length`` seconds (or all of a shorter track) fading out over ``fade``."""
    clip = min(length, duration) if duration > 0 else length
    fade = min(fade, clip / 2)
    start = max(clip - fade, 0.0)
    return [
        "-t", f"{clip:.3f}",
        "-af", f"afade=t=out:st={start:.3f}:d={fade:.3f}",
        *mp3_args(bitrate),
    ]  # fmt: skip
