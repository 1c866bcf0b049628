"""Trial records (one JSON per trial, written atomically) and their consolidation into a table."""
