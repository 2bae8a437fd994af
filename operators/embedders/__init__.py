"""Embedders: text in, feature vectors out (sparse hashing features or dense embeddings)."""
