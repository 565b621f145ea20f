"""What detect.py --overlay draws: the face box coloured by its score, the regression map blended over the face,
and the plot of the score over time with the threshold."""
import io
from pathlib import Path

import cv2
import numpy as np

from .fileio import write_bytes, write_image
from .metrics import verdict
from .video import VideoWriter

GREEN, YELLOW, RED = np.array([0, 170, 0]), np.array([0, 215, 255]), np.array([0, 0, 255])  # BGR
MAP_OPACITY = 0.6  # where the map is 1; where it is 0 the face shows unchanged


def score_colour(score, threshold):
    """BGR colour of a score: green at 0, yellow at the threshold, red at twice the threshold and above.
    Without a threshold a score says nothing about fake or real: yellow."""
    if threshold is None:
        return tuple(int(c) for c in YELLOW)
    t = float(np.clip(score / (2 * threshold), 0.0, 1.0)) if threshold > 0 else float(score >= threshold)
    colour = GREEN + (YELLOW - GREEN) * 2 * t if t < 0.5 else YELLOW + (RED - YELLOW) * (2 * t - 1)
    return tuple(int(c) for c in colour)


def blend_map(face, attention):
    """The face with the model's attention map (h x w in [0, 1]) resized onto it as a heat map, opaque where
    the map is high: the regions the model was trained to mark as manipulated."""
    side_y, side_x = face.shape[:2]
    heat_map = cv2.resize(np.asarray(attention, np.float32), (side_x, side_y), interpolation=cv2.INTER_LINEAR)
    heat_map = np.clip(heat_map, 0.0, 1.0)
    heat = cv2.applyColorMap((heat_map * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (MAP_OPACITY * heat_map)[..., None]
    return (face * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def draw_faces(frame, faces, threshold):
    """A copy of a BGR frame with each face drawn: faces is [(box [x, y, size], score, attention or None,
    label)]; the box's colour follows score_colour, the label is written above it."""
    out = frame.copy()
    h, w = out.shape[:2]
    thickness = max(2, round(max(h, w) / 400))
    font_scale = max(0.5, max(h, w) / 1400)
    for box, score, attention, label in faces:
        x, y, s = (int(v) for v in box)
        if attention is not None:
            out[y:y + s, x:x + s] = blend_map(out[y:y + s, x:x + s], attention)
        colour = score_colour(score, threshold)
        cv2.rectangle(out, (x, y), (x + s - 1, y + s - 1), colour, thickness)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        ty = y - base - thickness if y - th - base - thickness >= 0 else y + s + th + thickness
        tx = min(max(x, 0), max(w - tw, 0))
        cv2.rectangle(out, (tx, ty - th - thickness), (tx + tw, ty + base), colour, -1)
        cv2.putText(out, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), max(1, thickness // 2),
                    cv2.LINE_AA)
    return out


def score_plot(series, thresholds, title, fps=None):
    """PNG bytes of the scores over time: series is {name: (frame indices, scores)}, thresholds
    {name: threshold or None} drawn as dashed lines of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        for k, (name, (frames, scores)) in enumerate(series.items()):
            colour = f"C{k % 10}"
            x = np.asarray(frames, float) / fps if fps else np.asarray(frames, float)
            ax.plot(x, scores, color=colour, lw=1.2, marker="." if len(frames) < 60 else None, label=name)
            threshold = thresholds.get(name)
            if threshold is not None:
                ax.axhline(threshold, color=colour, ls="--", lw=1, label=f"{name} threshold {threshold:.3g}")
        ax.set_xlabel("time (s)" if fps else "frame")
        ax.set_ylabel("score (higher: more likely fake)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


class Overlay:
    """--overlay for one input: the MP4 of its scored frames (an image: a PNG) and the plot of the scores.
    thresholds: {head: threshold or None}; the first head's map and colour are drawn."""

    def __init__(self, source, out_dir, name, thresholds, fps=None, stride=1, video=True):
        self.source, self.thresholds, self.fps = Path(source), thresholds, fps
        self.head = next(iter(thresholds))
        self.image_path = out_dir / f"{name}.overlay.png"
        self.video_path = out_dir / f"{name}.overlay.mp4"
        self.plot_path = out_dir / f"{name}.scores.png"
        self.writer = VideoWriter(self.video_path, fps=(fps or 25.0) / stride, preset="veryfast") if video else None

    def label(self, scores):
        """E.g. 'fake 21.3', 'lq fake 21.3 hq real 4.1', or '21.3' without a threshold."""
        words = []
        for h, s in scores.items():
            words += [h] if len(scores) > 1 else []
            words += [w for w in (verdict(s, self.thresholds[h]), f"{s:.3g}") if w]
        return " ".join(words)

    def frame(self, index, frame, here):
        """Draw one frame's faces: here is [(face, box, {head: score}, {head: map})]."""
        drawn = [(box, scores[self.head], maps[self.head], self.label(scores)) for _, box, scores, maps in here]
        image = draw_faces(frame, drawn, self.thresholds[self.head])
        if self.writer is None:
            write_image(self.image_path, image)
        else:
            self.writer.write(image)

    def finish(self, entry):
        """Close the video and write the plot of a results.json entry; returns the paths written."""
        if self.writer is None:
            return {"overlay": str(self.image_path)}
        self.writer.close()
        series, thresholds = {}, {}
        for face in entry["faces"]:
            for h in entry["score"]:
                name = f"face {face['face']} {h}" if len(entry["faces"]) > 1 else h
                series[name] = ([fr["frame"] for fr in face["frames"]], [fr["scores"][h] for fr in face["frames"]])
                thresholds[name] = self.thresholds[h]
        verdicts = ", ".join(f"{h}: {entry['verdict'][h] or 'no verdict'} ({entry['score'][h]:.4g})"
                             for h in entry["score"])
        write_bytes(self.plot_path, score_plot(series, thresholds, f"{self.source.name}  {verdicts}", self.fps))
        return {"overlay": str(self.video_path), "plot": str(self.plot_path)}

    def abort(self):
        if self.writer is not None:
            self.writer.abort()
