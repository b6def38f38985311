"""Reports: results.csv, summary.json and report.html from the checkpoint."""
