"""The learning core of the trained tier: embedders, a calibrated classifier head, head artifacts and their stores,
training data with provenance, the promotion gate and the fine-tuning export.

Each module has one job; import from the module itself (nothing heavy is imported here, and nothing loads at import).
"""
