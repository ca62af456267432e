"""OTLP receivers: requests → rows, group commit, the write-ahead log."""
