"""The feature store: schema, Zarr/HDF5 backends, writer, reader, verify."""
