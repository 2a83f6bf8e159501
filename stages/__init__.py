"""One thin entry point per DVC stage: parse params, call the library, write outputs."""
