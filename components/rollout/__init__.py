from components.rollout.component import roll_out_model

__all__ = ["roll_out_model"]
