"""The venue around the runs: credential renewal and the local sandbox."""
