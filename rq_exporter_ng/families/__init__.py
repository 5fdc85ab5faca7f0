"""Metric families: the catalogue of every metric, families held as rows, and the core families
(the snapshot's and the exporter's own). Each concern's families are its own (rq_exporter_ng/concerns/)."""
