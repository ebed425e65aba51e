"""Watching smallfirst after go-live: shadow sampling (live accuracy against the frontier), what the records it
wrote say about volume, cost, drift and live accuracy (stats, its sources, tables, plots and dashboard), and the
end-to-end smoke check of a deployment."""
