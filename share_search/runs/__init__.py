"""Runs: a run folder, its study, the trial record, the leaderboard, export and load_model,
the report and the dashboard. No Ray: a run folder is read without it."""
