"""Applying a plan to AWS: submit, reconcile, cancel, run, resume and retry-failed, EFS jobs."""
