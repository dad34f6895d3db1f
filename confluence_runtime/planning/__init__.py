"""Pure planning: a config becomes SubmitJob requests (:mod:`.shaping`, :mod:`.plan`), priced by :mod:`.estimate`."""
