"""Quantize a trained run to TFLite and write a verified bundle (needs TensorFlow, imported lazily)."""

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
