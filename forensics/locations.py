"""The face-location files: dlib_<method>.json ({video: {frame: [x, y, size]}}, the format released with the
paper's code), and the dlib_<method>.shard-K-of-N.json parts that detect_faces.py --shard writes.
"""
from pathlib import Path

from .fileio import read_json, write_json


def locs_path(locs_dir, method):
    return Path(locs_dir) / f"dlib_{method}.json"


def shard_locs_path(locs_dir, method, shard):
    k, n = shard
    return Path(locs_dir) / f"dlib_{method}.shard-{k}-of-{n}.json"


def load_locs(locs_dir, method, tally):
    """{video: {frame: [x, y, size]}} for one method, merged from dlib_<method>.json and any shard files.
    None when there is none. A shard missing from a set gets a skip line in tally: its job may still run."""
    paths = [p for p in [locs_path(locs_dir, method)] if p.exists()]
    parts = sorted(Path(locs_dir).glob(f"dlib_{method}.shard-*-of-*.json"))
    paths += parts
    if not paths:
        return None
    counts = {}
    for p in parts:
        k, _, n = p.name.split(".")[-2][len("shard-"):].split("-")
        counts.setdefault(int(n), set()).add(int(k))
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
            try:
                locs.setdefault(video, {}).update({int(f): [int(v) for v in b] for f, b in boxes.items()})
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"{p}: video {video!r}: expected {{frame: [x, y, size]}}; "
                                 "regenerate it with detect_faces.py") from None
    return locs


def write_locs(locs_dir, method, locs, shard=None):
    """Write {video: {frame: [x, y, size]}} as dlib_<method>.json (a shard's part with shard=(K, N)); its path."""
    path = shard_locs_path(locs_dir, method, shard) if shard else locs_path(locs_dir, method)
    write_json(path, {video: {str(f): b for f, b in boxes.items()} for video, boxes in locs.items()})
    return path
