from components.skew.component import check_feature_skew

__all__ = ["check_feature_skew"]
