"""Suite-wide settings, applied before any test module imports torch or numpy.

The tiny models the tests build do too little work per operation for a thread pool to pay off:
on the 2-core CI machine torch's and OpenMP's default of one thread per core made the model tests
slower (about a third, more when the machine is busy), so the suite runs them on one thread.
Production code keeps the libraries' defaults."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
