from components.register.component import register_model

__all__ = ["register_model"]
