"""Detection metrics as pure functions of numpy arrays (no I/O), shared by eval.py and the paper table.

Convention everywhere: label 1 = fake, a higher score = more likely fake, and a frame is called fake when
score >= threshold (as train.py's validation threshold). A metric that is undefined on the data (AUC with a
single class, say) is None rather than NaN, so that it survives JSON.
"""
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

FPR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4)
MAP_THRESHOLD = 0.5  # maps and masks binarised here for the pixel accuracy


def _arrays(labels, scores):
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return labels, scores


def _both_classes(labels):
    return labels.size > 0 and 0 < labels.sum() < labels.size


def accuracy(labels, scores, threshold):
    labels, scores = _arrays(labels, scores)
    return float(((scores >= threshold) == labels).mean()) if labels.size else None


def verdict(score, threshold):
    """'fake' when score >= threshold, 'real' below, None without a threshold."""
    if threshold is None:
        return None
    return "fake" if score >= threshold else "real"


def best_threshold(labels, scores):
    """(threshold, accuracy) of the best accuracy over all thresholds. Candidates are the scores themselves
    and +inf (everything real); among ties the lowest threshold wins, as in train.py's validation."""
    labels, scores = _arrays(labels, scores)
    if not labels.size:
        return None, None
    fake, real = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])
    candidates = np.append(np.unique(scores), np.inf)
    fakes_called_fake = fake.size - np.searchsorted(fake, candidates, side="left")
    reals_called_real = np.searchsorted(real, candidates, side="left")
    correct = fakes_called_fake + reals_called_real
    best = int(np.argmax(correct))
    return float(candidates[best]), float(correct[best] / labels.size)


def eer(labels, scores):
    """Equal error rate: where the ROC's FPR equals its FNR, linearly interpolated between ROC points."""
    labels, scores = _arrays(labels, scores)
    if not _both_classes(labels):
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    diff = (1 - tpr) - fpr  # FNR - FPR: starts at 1, ends at -1, never increases
    i = int(np.argmax(diff <= 0))
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(labels, scores, targets=FPR_TARGETS):
    """Highest TPR at an FPR no greater than each target, as the released eval computed it."""
    labels, scores = _arrays(labels, scores)
    if not _both_classes(labels):
        return {f"{t:.0e}": None for t in targets}
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {f"{t:.0e}": float(tpr[fpr <= t].max()) for t in targets}


def frame_metrics(labels, scores, threshold=None):
    """Every frame-level number of the report; acc needs a threshold chosen elsewhere (on validation)."""
    labels, scores = _arrays(labels, scores)
    both = _both_classes(labels)
    chosen, best = best_threshold(labels, scores)
    return {
        "frames": int(labels.size), "real_frames": int((labels == 0).sum()), "fake_frames": int(labels.sum()),
        "auc": float(roc_auc_score(labels, scores)) if both else None,
        "ap": float(average_precision_score(labels, scores)) if both else None,
        "eer": eer(labels, scores),
        "acc": accuracy(labels, scores, threshold) if threshold is not None else None,
        "threshold": None if threshold is None else float(threshold),
        "best_acc": best, "best_threshold": chosen,
        "tpr_at_fpr": tpr_at_fpr(labels, scores),
    }


def video_scores(video_ids, scores, labels):
    """(video ids, mean frame score, label) per video; videos may have any number of frames.
    Ids must be unique across methods (fakes of two methods share a name): pass e.g. 'method/video'."""
    labels, scores = _arrays(labels, scores)
    video_ids = np.asarray(video_ids).ravel()
    if video_ids.shape != scores.shape:
        raise ValueError(f"{video_ids.size} video ids but {scores.size} scores")
    ids, inverse, counts = np.unique(video_ids, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=scores, minlength=ids.size) / counts
    fake_frames = np.bincount(inverse, weights=labels, minlength=ids.size)
    mixed = (fake_frames != 0) & (fake_frames != counts)
    if mixed.any():
        raise ValueError(f"video {ids[mixed][0]!r} has both real and fake frames; video ids must name one video")
    return ids, means, (fake_frames > 0).astype(np.int64)


def video_metrics(video_ids, scores, labels, threshold=None):
    """AUC and accuracy of the mean frame score per video."""
    _, means, video_labels = video_scores(video_ids, scores, labels)
    both = _both_classes(video_labels)
    chosen, best = best_threshold(video_labels, means)
    return {
        "videos": int(video_labels.size),
        "video_auc": float(roc_auc_score(video_labels, means)) if both else None,
        "video_acc": accuracy(video_labels, means, threshold) if threshold is not None else None,
        "video_threshold": None if threshold is None else float(threshold),
        "video_best_acc": best, "video_best_threshold": chosen,
    }


def mask_accuracy(maps, masks, threshold=MAP_THRESHOLD):
    """Pixel accuracy of predicted attention maps against ground-truth masks of the same size, both
    binarised at the threshold, over all pixels of all frames (real frames have all-zero masks)."""
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps of shape {maps.shape} but masks of shape {masks.shape}")
    if not maps.size:
        return None
    return float(((maps.astype(np.float32) >= threshold) == (masks.astype(np.float32) >= threshold)).mean())
