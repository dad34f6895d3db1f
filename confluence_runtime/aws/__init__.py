"""The AWS module: every AWS call goes through :mod:`.api`, paced and retried by :mod:`.pacing`."""
