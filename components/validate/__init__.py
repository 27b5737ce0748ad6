from components.validate.component import validate_data

__all__ = ["validate_data"]
