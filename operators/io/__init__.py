"""Stream readers: ARFF (MEKA/MULAN multi-label) and JSON-lines documents, yielding ``Instance``s."""
