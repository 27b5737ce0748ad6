from components.promote.component import promote_model

__all__ = ["promote_model"]
