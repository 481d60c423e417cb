"""The pipeline: its feed cycle (cycle), the page retries (retries), the stages they share
(stages) and the extraction workers (workers)."""

from .cycle import Pipeline, open_pipeline
from .stages import CLUSTER_DAYS
from .workers import WORKER_JOBS, Workers

__all__ = ["CLUSTER_DAYS", "WORKER_JOBS", "Pipeline", "Workers", "open_pipeline"]
