"""Networks: the split Xception with regression-map attention, the anti-compression detector, the baseline."""
from .detector import TAIL_BATCHES, AntiCompressionDetector, CompressionCritic, XceptionBaseline, build_model
from .xception import (AttentionHead, RegressionMap, XceptionHead, XceptionTail, load_pretrained_backbone,
                       released_init)

__all__ = ["AttentionHead", "RegressionMap", "XceptionHead", "XceptionTail", "load_pretrained_backbone",
           "released_init", "TAIL_BATCHES", "AntiCompressionDetector", "CompressionCritic", "XceptionBaseline",
           "build_model"]
