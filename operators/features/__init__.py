"""Feature extraction and scaling."""
