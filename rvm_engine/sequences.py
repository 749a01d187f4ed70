"""Frame sequences on disk: patterns and frame ranges as VFX people write them, via fileseq.

Patterns: ``shot.####.exr``, ``shot.%04d.exr``, ``shot.$F4.exr``, ``shot.@@@@.exr`` and
``shot.#.exr``. A run of several ``#`` is one digit per ``#`` (Nuke); a single ``#`` is
four digits (fileseq's default, RV, oiiotool); ``@`` is always one digit per ``@``. The
frame token sits just before the extension, as fileseq requires. Frame ranges use
fileseq's syntax: ``1001-1100``, ``1001-1100x2``, ``1001,1005,1010-1012``; ranges include
both ends. A plain file name (no token) is a one-frame sequence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import fileseq

from rvm_engine.errors import PlateError
from rvm_engine.movie_frames import frame_count, is_movie

_TOKEN_CHARS = re.compile(r"#|@|%0?\d*d|\$F\d*")
# In a folder name a lone "@" is too common (user@host, @eaDir) to call a frame token.
_FOLDER_TOKEN = re.compile(r"#|@@|%0?\d*d|\$F\d*")
_TOKEN_HINT = "shot.####.exr, shot.%04d.exr, shot.$F4.exr or shot.@@@@.exr"


@dataclass
class FrameSequence:
    """Frames of one clip and where each lives on disk.

    ``frames`` keeps the order asked for (ascending when found on disk).
    ``padding`` is the number of digits (0 for a single file, used as is).
    """

    pattern: str
    frames: list[int]
    padding: int
    head: str = ""  # folder and name before the frame number
    tail: str = ""  # extension (and anything fileseq keeps after the number)
    single_file: bool = False

    def path(self, frame: int) -> str:
        """The file for ``frame``; a single-file sequence returns its one file for any frame."""
        if self.single_file:
            return self.pattern
        return f"{self.head}{int(frame):0{self.padding}d}{self.tail}"

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def gaps(self) -> list[int]:
        """Frames between the lowest and highest frame that are not in ``frames``."""
        have = set(self.frames)
        return [f for f in range(min(have), max(have) + 1) if f not in have]

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[int]:
        return iter(self.frames)

    def output(self, pattern: str | os.PathLike[str], *, create_folder: bool = False) -> FrameSequence:
        """Map these frames onto an output ``pattern``; see :func:`output_sequence`.

        Also raises PlateError when an output path is one of this sequence's own files.
        """
        out = output_sequence(pattern, self.frames, create_folder=create_folder)
        for frame in self.frames:
            target = out.path(frame)
            if os.path.abspath(target) == os.path.abspath(self.path(frame)):
                raise PlateError(
                    f"Output {target} is the source plate of frame {frame}; choose another "
                    "output name so the source is not overwritten."
                )
        return out


def parse_sequence(pattern: str | os.PathLike[str], frames: str | Sequence[int] | None = None) -> FrameSequence:
    """Resolve ``pattern`` and ``frames`` to a :class:`FrameSequence` whose files all exist.

    ``frames`` is a fileseq range string (``"1001-1100x2"``, both ends included) or a list
    of frame numbers. When it is None, the frames are those found on disk (a range written
    inside the pattern, ``shot.1001-1100#.exr``, is used instead if present); holes
    between them are listed by ``FrameSequence.gaps``.

    Raises PlateError, before any frame is read, when a requested frame is missing (the
    message names the frames and an example path), when nothing matches on disk, when the
    range cannot be parsed, when the frame token is not just before the extension or sits in
    a folder name, or when a single file named is a folder.
    """
    text = os.fspath(pattern)
    _check_no_token_in_folder(text)
    if not _has_token(text) or _is_movie_file(text):  # take#2.mov is a movie, not a frame token
        return _single_file(text, frames)
    seq, width, head = _parse(text)
    tail = seq.extension()
    if frames is not None:
        wanted = _frames_from(frames, text)
    elif (in_pattern := seq.frameSet()) is not None:
        wanted = _whole_frames(in_pattern, text)
    else:
        wanted = _frames_on_disk(head, width, tail, text)
    result = FrameSequence(text, wanted, width, head, tail)
    _check_present(result)
    return result


def output_sequence(
    pattern: str | os.PathLike[str], frames: Iterable[int], *, create_folder: bool = False
) -> FrameSequence:
    """Map ``frames`` onto an output ``pattern`` (nothing need exist yet).

    The pattern needs a frame token unless there is exactly one frame. The folder must
    exist and be writable (or is created when ``create_folder``), checked now so a render
    fails before its first frame rather than after it.

    Raises PlateError for a missing token, a token in a folder name, a missing or unwritable
    folder.
    """
    text = os.fspath(pattern)
    wanted = [int(f) for f in frames]
    if not wanted:
        raise PlateError(f"No frames to write to {text}.")
    _check_no_token_in_folder(text)
    folder = os.path.dirname(os.path.abspath(text))
    if create_folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise PlateError(f"Cannot create output folder {folder}: {exc}.") from exc
        except RecursionError:  # os.makedirs recurses once per missing folder
            raise PlateError(f"Cannot create output folder {folder[:200]}...: it is {folder.count(os.sep)} folders "
                             "deep; choose a shallower output folder.") from None
    if not os.path.isdir(folder):
        raise PlateError(
            f"Output folder {folder} does not exist; create it (or ask for create_folder) "
            f"before writing {os.path.basename(text)}."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PlateError(f"Output folder {folder} is not writable; fix its permissions or choose another.")
    if not _has_token(text):
        if len(wanted) > 1:
            raise PlateError(
                f"Output {text} has no frame token, so {len(wanted)} frames would overwrite one "
                f"file. Add a token, e.g. {_TOKEN_HINT}."
            )
        return FrameSequence(text, wanted, 0, single_file=True)
    seq, width, head = _parse(text)
    return FrameSequence(text, wanted, width, head, seq.extension())


def frame_path(pattern: str | os.PathLike[str], frame: int) -> str:
    """The file of ``frame`` in ``pattern`` (the pattern itself when it has no frame token).

    Nothing is checked on disk, so it suits comparing patterns and naming plates before their
    folder exists. Raises PlateError when the token is not just before the extension.
    """
    text = os.fspath(pattern)
    if not _has_token(text):
        return text
    seq, width, head = _parse(text)
    return f"{head}{int(frame):0{width}d}{seq.extension()}"


# ---------------------------------------------------------------- helpers


def _has_token(text: str) -> bool:
    return bool(_TOKEN_CHARS.search(os.path.basename(text)))


def _is_movie_file(text: str) -> bool:

    return is_movie(text) and os.path.isfile(text)


def _check_no_token_in_folder(text: str) -> None:
    """Refuse a frame token in a folder name (``/shots/sh010_####/plate.exr``) unless that folder
    really exists under that name: the token would otherwise be taken literally, or not at all."""
    folder = os.path.dirname(text)
    if not folder or not _FOLDER_TOKEN.search(folder) or os.path.isdir(folder):
        return
    named = next(part for part in reversed(folder.replace("\\", "/").split("/")) if _FOLDER_TOKEN.search(part))
    raise PlateError(
        f"{text} has a frame token in the folder name {named!r}; frame tokens belong in the file name, "
        f"e.g. {os.path.join('sh010', 'plate.####.exr')}. Move the token into the file name."
    )


def _parse(text: str) -> tuple[fileseq.FileSequence, int, str]:
    """fileseq's view of ``text``'s file name, the digit count of its frame token, and the head
    (folder and name before the frame number). Only the name goes through fileseq, so a folder
    that really has a ``#`` in its name (checked by _check_no_token_in_folder) is kept as it is."""
    name = os.path.basename(text)
    try:
        seq = fileseq.FileSequence(name, pad_style=fileseq.PAD_STYLE_HASH1)
        head = text[: len(text) - len(name)] + seq.basename()
        token = seq.padding()
        if not token:
            raise PlateError(f"The frame token in {text} must come just before the extension, e.g. {_TOKEN_HINT}.")
        # One lone "#" means four digits (fileseq's default); longer runs are one digit each.
        style = fileseq.PAD_STYLE_HASH4 if token == "#" else fileseq.PAD_STYLE_HASH1
        return seq, int(fileseq.getPaddingNum(token, pad_style=style)), head
    except fileseq.FileSeqException as exc:
        raise PlateError(f"Cannot read the sequence pattern {text}: {exc}.") from exc
    except ValueError:  # fileseq's view of two tokens (a.####.####.exr): one "####.####" padding
        raise PlateError(f"The sequence pattern {text} has more than one frame token; give it one, just before "
                         f"the extension, e.g. {_TOKEN_HINT}.") from None


def _single_file(text: str, frames: str | Sequence[int] | None) -> FrameSequence:
    if os.path.isdir(text):
        raise PlateError(
            f"Plate {text} is a folder, not a file. Name a plate in it, or a sequence such as "
            f"{os.path.join(text, 'shot.####.exr')}."
        )
    if not os.path.isfile(text):
        raise PlateError(
            f"Plate {text} does not exist. For a sequence put a frame token in the name, e.g. {_TOKEN_HINT}."
        )

    if is_movie(text):  # a movie is a clip of its own: frames 0 .. count-1
        count = frame_count(text)
        wanted = list(range(count)) if frames is None else _frames_from(frames, text)
        outside = [frame for frame in wanted if not 0 <= frame < count]
        if outside:
            raise PlateError(f"movie {text} has frames 0-{count - 1}; frames {', '.join(str(f) for f in outside[:5])} are not in it.")
        return FrameSequence(text, wanted, 0, single_file=True)
    # A name like shot.1001.exr carries its own frame number; a still is frame 1.
    found = fileseq.FileSequence(text).frameSet()
    numbers = list(found) if found is not None else []
    own = int(float(str(numbers[0]))) if len(numbers) == 1 and _is_whole(numbers[0]) else 1
    if frames is not None and _frames_from(frames, text) != [own]:
        raise PlateError(
            f"{text} is a single file (frame {own}) but frames {frames!r} were asked for. "
            f"Give a pattern with a frame token instead, e.g. {_TOKEN_HINT}."
        )
    return FrameSequence(text, [own], 0, single_file=True)


def _frames_from(frames: str | Sequence[int], pattern: str) -> list[int]:
    if isinstance(frames, str):
        try:
            parsed = fileseq.FrameSet(frames.strip())
        except fileseq.MaxSizeException:  # a ValueError, not a FileSeqException
            raise PlateError(
                f"The frame range {frames!r} for {pattern} holds more than {fileseq.constants.MAX_FRAME_SIZE} "
                "frames; ask for a shorter range."
            ) from None
        except (fileseq.FileSeqException, ValueError) as exc:
            raise PlateError(
                f"Cannot read the frame range {frames!r} for {pattern}; write it like "
                "1001-1100, 1001-1100x2 or 1001,1005,1010-1012."
            ) from exc
        return _whole_frames(parsed, pattern)
    wanted = [int(f) for f in frames]
    if not wanted:
        raise PlateError(f"No frames asked for from {pattern}.")
    return wanted


def _whole_frames(frame_set: fileseq.FrameSet | None, pattern: str) -> list[int]:
    values = list(frame_set) if frame_set is not None else []
    if not values:
        raise PlateError(f"The frame range for {pattern} is empty.")
    if not all(_is_whole(v) for v in values):
        raise PlateError(f"Frames for {pattern} must be whole numbers, not sub-frames ({frame_set}).")
    return [int(v) for v in values]


def _is_whole(value: object) -> bool:
    return float(str(value)).is_integer()


def _frames_on_disk(head: str, width: int, tail: str, pattern: str) -> list[int]:
    # Scanned here rather than by fileseq, which cannot parse a folder with "#" in its name. A
    # number counts when it is written exactly as this pattern writes it (fileseq's strict
    # padding): 0999, 12345 and -001 for ####, not 7 or 01000.
    folder, prefix = os.path.split(head)
    folder = folder or os.curdir
    found: list[int] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        if len(name) <= len(prefix) + len(tail) or not name.startswith(prefix) or not name.endswith(tail):
            continue
        digits = name[len(prefix) : len(name) - len(tail)]
        if re.fullmatch(r"-?\d+", digits) and digits == f"{int(digits):0{width}d}" and entry.is_file():
            found.append(int(digits))
    if not found:
        raise PlateError(
            f"No frames of {pattern} found in {os.path.abspath(folder)} (with {width}-digit frame numbers). "
            "Check the name, the padding and the folder."
        )
    return sorted(found)


def _check_present(seq: FrameSequence) -> None:
    missing = [f for f in seq.frames if not os.path.isfile(seq.path(f))]
    if missing:
        listed = str(fileseq.FrameSet.from_iterable(missing, sort=True))
        raise PlateError(
            f"Sequence {seq.pattern} is missing {len(missing)} frame(s): {listed} "
            f"(e.g. {seq.path(missing[0])}). Render or copy them, or ask for a range without them."
        )
