"""Formats of other projects: the R2-Router research release (read) and RouterArena (write)."""
