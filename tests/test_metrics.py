"""forensics.metrics against scikit-learn, brute force and values worked out by hand."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from forensics.metrics import accuracy, best_threshold, eer, frame_metrics, mask_accuracy, tpr_at_fpr, \
    video_metrics, video_scores


def _random(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: plenty of ties
    return labels, scores


def test_auc_and_ap_equal_scikit_learn():
    for seed in range(5):
        labels, scores = _random(seed=seed)
        m = frame_metrics(labels, scores)
        assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert m["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        assert m["frames"] == len(labels) and m["fake_frames"] == labels.sum()


def test_small_case_by_hand():
    labels = [0, 0, 0, 1, 1]
    scores = [0.1, 0.2, 0.7, 0.5, 0.9]
    m = frame_metrics(labels, scores, threshold=0.5)
    assert m["auc"] == pytest.approx(5 / 6)          # 5 of the 6 (fake, real) pairs are ordered right
    assert m["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["eer"] == pytest.approx(1 / 3)          # at 0.5 < t <= 0.7: FPR 1/3, FNR from 1/2 to 0
    assert m["acc"] == pytest.approx(4 / 5)          # calls 0.7, 0.5, 0.9 fake
    assert (m["best_threshold"], m["best_acc"]) == (0.5, pytest.approx(0.8))  # 0.5 and 0.9 tie: lowest wins
    assert m["tpr_at_fpr"] == {"1e-01": 0.5, "1e-02": 0.5, "1e-03": 0.5, "1e-04": 0.5}
    assert accuracy(labels, scores, 0.95) == pytest.approx(3 / 5)


def test_eer_interpolates_between_roc_points():
    assert eer([0, 0, 1, 1], [0, 1, 1, 2]) == pytest.approx(0.25)   # segment (0, 1/2) -> (1/2, 0) in (FPR, FNR)
    assert eer([0, 1], [1, 1]) == pytest.approx(0.5)
    assert eer([0, 1, 0, 1], [1, 2, 3, 4]) == pytest.approx(0.5)
    assert eer([0, 0, 1, 1], [1, 2, 3, 4]) == 0.0
    assert eer([1, 1, 0, 0], [1, 2, 3, 4]) == 1.0


def test_eer_lies_where_fpr_meets_fnr():
    labels, scores = _random(seed=3)
    value = eer(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = np.argmax(fnr - fpr <= 0)
    assert min(fpr[i - 1], fnr[i]) - 1e-12 <= value <= max(fpr[i], fnr[i - 1]) + 1e-12


def test_best_threshold_and_tpr_equal_brute_force():
    labels, scores = _random(seed=7)
    candidates = np.append(np.unique(scores), np.inf)
    accs = [((scores >= t) == labels).mean() for t in candidates]
    assert best_threshold(labels, scores) == (candidates[int(np.argmax(accs))], pytest.approx(max(accs)))
    negatives, positives = scores[labels == 0], scores[labels == 1]
    for target, got in zip((1e-1, 1e-2), tpr_at_fpr(labels, scores, (1e-1, 1e-2)).values()):
        best = max((positives >= t).mean() for t in candidates if (negatives >= t).mean() <= target)
        assert got == pytest.approx(best)


def test_video_level_with_different_frame_counts():
    videos = ["Deepfakes/a", "Deepfakes/a", "Deepfakes/a", "real/b", "real/c", "real/c"]
    scores = [1.0, 2.0, 3.0, 10.0, 4.0, 6.0]
    labels = [1, 1, 1, 0, 0, 0]
    ids, means, video_labels = video_scores(videos, scores, labels)
    assert list(ids) == ["Deepfakes/a", "real/b", "real/c"]
    assert means.tolist() == [2.0, 10.0, 5.0] and video_labels.tolist() == [1, 0, 0]
    m = video_metrics(videos, scores, labels, threshold=7.0)
    assert m["videos"] == 3 and m["video_auc"] == 0.0          # the one fake video scores lowest
    assert m["video_acc"] == pytest.approx(1 / 3)              # only c (5 < 7: real) is right
    assert m["video_best_acc"] == pytest.approx(2 / 3)         # all real; frame weighting would give 1/2
    with pytest.raises(ValueError, match="both real and fake"):
        video_scores(["x", "x"], [0.1, 0.2], [0, 1])


def test_mask_accuracy_by_hand():
    maps = np.array([[[0.2, 0.6], [0.5, 0.4]]], np.float16)
    masks = np.array([[[0, 1], [0, 0]]], np.uint8)
    assert mask_accuracy(maps, masks) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="shape"):
        mask_accuracy(maps, masks[:, :1])


def test_undefined_metrics_are_none():
    m = frame_metrics([1, 1, 1], [0.2, 0.4, 0.9], threshold=0.5)
    assert m["auc"] is None and m["eer"] is None and m["tpr_at_fpr"]["1e-01"] is None
    assert m["acc"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="NaN"):
        frame_metrics([0, 1], [0.1, np.nan])
