"""Small real audio files for tests, made with ffmpeg (a few seconds each)."""

from __future__ import annotations

import subprocess
from pathlib import Path

CODECS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "96k"],
    "flac": ["-c:a", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "2"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "wav": ["-c:a", "pcm_s16le"],
    "aiff": ["-c:a", "pcm_s16be"],
}


def make_audio(
    path: Path,
    fmt: str,
    *,
    seconds: float = 2.0,
    frequency: int = 440,
    tags: dict[str, str] | None = None,
    cover: Path | None = None,
) -> Path:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency={frequency}:duration={seconds}:sample_rate=44100"]  # fmt: skip
    if cover is not None:
        args += ["-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:v", "png",
                 "-disposition:v", "attached_pic"]  # fmt: skip
    args += CODECS[fmt]
    for key, value in (tags or {}).items():
        args += ["-metadata", f"{key}={value}"]
    if fmt == "mp3":
        args += ["-id3v2_version", "3"]
    args += ["-f", {"m4a": "ipod", "ogg": "ogg", "opus": "ogg"}.get(fmt, fmt), str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def make_cover(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         "color=c=purple:size=64x64", "-frames:v", "1", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path
