"""Looking at a run: its jobs as AWS and the ledger know them, its status, report, logs, and how they are rendered."""
