"""One module of exercise checkers per chapter topic; each ``check_*`` prints feedback and returns a bool."""
