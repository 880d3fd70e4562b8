"""File I/O around the pure core: image decoding, bin files."""
