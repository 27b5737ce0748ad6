from components.ingest.component import ingest_data

__all__ = ["ingest_data"]
