"""Turn confluence.yaml into dependent AWS Batch array jobs, and watch, cancel, resume and retry a run."""

__version__ = "0.1.0"
