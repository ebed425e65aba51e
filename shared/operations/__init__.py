"""Operating smallfirst after go-live: what the records it wrote say about volume, cost and live accuracy."""
