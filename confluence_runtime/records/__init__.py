"""What a run leaves behind: the submission record, the ledger, the run lock and the supervisor's document."""
