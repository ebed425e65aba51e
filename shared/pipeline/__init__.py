"""Pipeline I/O: parsing inputs, naming blobs, storage, and blob-driven processing."""
