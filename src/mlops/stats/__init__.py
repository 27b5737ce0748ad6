"""Statistics shared by validation and monitoring: column summaries, dataset profiles and the drift methods (PSI, KS, chi-squared, Jensen-Shannon, ...)."""
