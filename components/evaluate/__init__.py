from components.evaluate.component import evaluate_model

__all__ = ["evaluate_model"]
