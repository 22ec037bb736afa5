"""Shared HTTP pieces: path resolution, file responses, ranges, preconditions, errors."""
