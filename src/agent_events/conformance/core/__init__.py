"""The pure core: sans-I/O state machines and the data they judge with (no sockets, clocks or files)."""
