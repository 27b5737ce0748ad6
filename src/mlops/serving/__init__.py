"""Online serving: the KServe predictor and feature transformer, shadow mirroring and the local traffic splitter."""
