"""One thin entry point per DVC stage: parse params, call the library, write outputs."""

from pipeline.environment import require_project_environment

require_project_environment()
