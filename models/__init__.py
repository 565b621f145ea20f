"""Networks: the split Xception with regression-map attention, the anti-compression detector, the baseline."""
from .xception import AttentionHead, RegressionMap, XceptionHead, XceptionTail, load_pretrained_backbone
from .detector import AntiCompressionDetector, CompressionCritic, XceptionBaseline, build_model

__all__ = ["AttentionHead", "RegressionMap", "XceptionHead", "XceptionTail", "load_pretrained_backbone",
           "AntiCompressionDetector", "CompressionCritic", "XceptionBaseline", "build_model"]
