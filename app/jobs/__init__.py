"""Jobs: the job record in Redis, presets, progress, results, cancellation, expiry."""
