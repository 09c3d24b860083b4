"""Segmentation accuracy: object-level matching at an IoU threshold (F1, precision, recall).

With IoU > 0.5 an object can overlap at most one partner that much, so matching needs no
assignment step: every pair above the threshold is a true positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class MatchScore:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 0.0

    @property
    def f1(self) -> float:
        total = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / total if total else 1.0


def match(truth: Array, predicted: Array, iou: float = 0.5) -> MatchScore:
    """Objects of ``predicted`` matched to those of ``truth`` (label images, 0 = background)
    at intersection-over-union above ``iou`` (>= 0.5)."""
    if iou < 0.5:
        raise ValueError("matching without assignment needs iou >= 0.5")
    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(predicted, return_inverse=True)
    t, p = t.ravel(), p.ravel()
    nt, npred = len(t_ids), len(p_ids)
    pairs = np.bincount(t.astype(np.int64) * npred + p, minlength=nt * npred)
    inter = pairs.reshape(nt, npred)
    t_area, p_area = inter.sum(axis=1), inter.sum(axis=0)
    t_fg, p_fg = t_ids != 0, p_ids != 0
    inter = inter[np.ix_(t_fg, p_fg)]
    union = t_area[t_fg][:, None] + p_area[p_fg][None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        hit = (inter / union) > iou
    tp = int(hit.sum())
    return MatchScore(tp, int(p_fg.sum()) - tp, int(t_fg.sum()) - tp)
