"""A small RQ application to watch: job functions, a producer, and a local stack runner."""
