"""The command line's terminal: log lines and the progress bar."""
