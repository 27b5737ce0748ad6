from components.features.component import build_features

__all__ = ["build_features"]
