"""Modeling (torch): the shared encoder, multi-task heads and losses, model versions on disk, ONNX export."""
