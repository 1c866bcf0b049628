"""Below everything that uses them: statistics (stats), JSON files written atomically and the lock beside a cache
entry (files), the family taxonomy (families)."""
