"""`make demo`: the whole lifecycle on this machine, told step by step, and its closing page."""
