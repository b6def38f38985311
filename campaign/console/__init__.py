"""The command line's side of a run: log setup, the progress bar, SIGINT/SIGTERM."""
