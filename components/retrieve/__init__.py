from components.retrieve.component import retrieve_training_data

__all__ = ["retrieve_training_data"]
