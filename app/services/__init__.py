"""What a request means, between the thin routes of app/api and the store: submitting a job
(JSON or one-shot with files, jobs.py) and turning uploads into models and datasets
(ingest.py)."""
