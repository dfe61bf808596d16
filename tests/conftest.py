import os

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
