"""The face-location files: dlib_<method>.json ({video: {frame: [x, y, size]}}, the format released with the
paper's code), and the dlib_<method>.shard-K-of-N.json parts that detect_faces.py --shard writes.
"""
import re
from pathlib import Path

from . import ffpp
from .fileio import read_json, write_json


def locs_path(locs_dir, method):
    return Path(locs_dir) / f"dlib_{method}.json"


def shard_locs_path(locs_dir, method, shard):
    k, n = shard
    return Path(locs_dir) / f"dlib_{method}.shard-{k}-of-{n}.json"


def load_locs(locs_dir, method, tally):
    """{video: {frame: [x, y, size]}} for one method, merged from dlib_<method>.json and any shard files.
    None when there is none. A shard missing from a set gets a skip line in tally: its job may still run.

    Location files are often downloaded from others. A key that is not a plain name (a path such as '/x' or
    '../x') skips that entry, and a malformed box skips its frame, each with a skip line naming the file: the
    rest of a large file stays usable, nothing is written outside the crop tree, and --strict still fails. A
    file that is not {video: {frame: box}} at all is refused as a whole."""
    paths = [p for p in [locs_path(locs_dir, method)] if p.exists()]
    shard = re.compile(rf"dlib_{re.escape(method)}\.shard-(\d+)-of-(\d+)\.json")
    parts = sorted(p for p in Path(locs_dir).glob(f"dlib_{method}.shard-*-of-*.json") if shard.fullmatch(p.name))
    paths += parts
    if not paths:
        return None
    counts = {}
    for p in parts:
        k, n = (int(v) for v in shard.fullmatch(p.name).groups())
        counts.setdefault(n, set()).add(k)
    for n, ks in counts.items():
        if len(ks) < n:
            missing = ", ".join(str(k) for k in range(n) if k not in ks)
            tally.skip(f"{Path(locs_dir) / f'dlib_{method}.shard-K-of-{n}.json'}: "
                       f"shards {missing} not found: their {method} videos skipped (is that job still running?)")
    locs = {}
    for p in paths:
        data = read_json(p, "face-location file")
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected {{video: {{frame: [x, y, size]}}}}; regenerate it with detect_faces.py")
        for video, boxes in data.items():
            if not ffpp.is_plain_name(video):
                tally.skip(f"{p}: video key {video!r} is not a plain name (letters, digits, _ and - only): that "
                           "entry skipped, since it would become a path outside the crop tree", videos=1)
                continue
            if not isinstance(boxes, dict):
                raise ValueError(f"{p}: video {video!r}: expected {{frame: [x, y, size]}}; "
                                 "regenerate it with detect_faces.py")
            good, bad = parse_boxes(boxes)
            if bad:
                shown = ", ".join(f"{f} ({b!r})" for f, b in bad[:3]) + (", ..." if len(bad) > 3 else "")
                tally.skip(f"{p}: video {video}: {len(bad)} frames whose entry is not frame: [x, y, size] with "
                           f"x, y >= 0 and size > 0: {shown}: those frames skipped (regenerate the file with "
                           "detect_faces.py)", frames=len(bad))
            locs.setdefault(video, {}).update(good)
    return locs


def parse_boxes(boxes):
    """({frame: [x, y, size]} of the well-formed entries, [(frame, box)] of the others), for one video's
    {frame: box} as read from JSON. A bad entry costs its frame, not the video's other frames."""
    good, bad = {}, []
    for frame, box in boxes.items():
        try:
            index = int(frame)
            values = [_integral(v) for v in box]
        except (TypeError, ValueError, OverflowError):
            bad.append((frame, box))
            continue
        if index < 0 or len(values) != 3 or values[0] < 0 or values[1] < 0 or values[2] <= 0:
            bad.append((frame, box))
        else:
            good[index] = values
    return good, bad


def _integral(value):
    """A box coordinate as int: ints, and floats with an integral value (JSON writers differ)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(value)
    return int(value)


def write_locs(locs_dir, method, locs, shard=None):
    """Write {video: {frame: [x, y, size]}} as dlib_<method>.json (a shard's part with shard=(K, N)); its path."""
    path = shard_locs_path(locs_dir, method, shard) if shard else locs_path(locs_dir, method)
    write_json(path, {video: {str(f): b for f, b in boxes.items()} for video, boxes in locs.items()})
    return path
