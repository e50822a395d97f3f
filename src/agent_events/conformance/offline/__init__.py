"""The offline shell: reading recordings (transcripts, JSONL) into the core."""
