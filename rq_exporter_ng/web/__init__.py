"""HTTP: the endpoints, writing families out as text or OpenMetrics, TLS and basic auth."""
