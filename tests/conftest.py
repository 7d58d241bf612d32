import os

# Tests run on a 2-core machine, possibly beside other jobs: one thread per process,
# and never reach for a model hub.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
