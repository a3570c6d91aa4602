"""What every app shares and none owns: domain errors (errors.py), id helpers (ids.py)
and the one point where services hand work to Celery (dispatch.py). It imports no
app of the project."""
