"""File formats: HDF5 state vectors and checkpoints (``hdf5.py`` owns h5py)."""
