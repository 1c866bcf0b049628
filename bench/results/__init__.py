"""Trial records (one JSON per trial, written atomically), their consolidation into a table, and what reads a sweep's
records to decide: the learning rate each method should use (choose_lr), a generation task's trivial baseline."""
