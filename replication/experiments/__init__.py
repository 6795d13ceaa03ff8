"""Experiments: each module runs one experiment and writes rows to a results CSV."""
