"""Prequential evaluation: multi-label metrics, the test-then-train loop, learning-curve plots."""
