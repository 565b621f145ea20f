"""Networks: the split Xception with regression-map attention, the anti-compression detector, the baseline."""
from .detector import HEADS, TAIL_BATCHES, AntiCompressionDetector, CompressionCritic, XceptionBaseline, build_model
from .xception import (INPUT_SIZE, PRETRAINED_CFG, AttentionHead, RegressionMap, XceptionHead, XceptionTail,
                       input_size, load_pretrained_backbone, released_init)

__all__ = ["AttentionHead", "RegressionMap", "XceptionHead", "XceptionTail", "load_pretrained_backbone",
           "released_init", "INPUT_SIZE", "PRETRAINED_CFG", "input_size", "HEADS", "TAIL_BATCHES",
           "AntiCompressionDetector", "CompressionCritic", "XceptionBaseline", "build_model"]
