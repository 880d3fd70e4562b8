"""Ray job entry points: parse arguments, start Ray and MLflow, call into the library."""
