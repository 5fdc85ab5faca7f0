"""Job timing: how long jobs ran and waited, and how many finished and failed, exactly once each.

A concern (rq_exporter_ng/concern.py) in these modules:

- job_timing.py: the concern, ``JobTiming``: its options, what it keeps for the life of the
  process (per /probe target), its families;
- reads.py: its reads in the reader's rounds 2 and 3 (the tracker's plan as read commands, the
  new jobs' hashes, each registry judged ahead as they arrive) and its result;
- registry_reads.py: round 2 per registry: the reads of its plan, and what their answers say;
- tracker.py: which finished and failed registry entries are new since the last scrape (score
  windows per TTL, TTL learning, the probe and the sweep), kept across scrapes;
- cursors.py: how one registry's tracking moves past a scrape that read it (apply's last step);
- records.py: what the tracker keeps across scrapes and the immutable values its phases hand on;
- windows.py, hmget.py: round 2's one-window reads and round 3's HMGETs, packed from templates;
- ranked.py: a busy registry's window read by counts of its whole seconds, not with its scores;
- rules.py: the verdict on one new entry, a function per rule;
- plain.py: the common verdict (every entry counted and timed) for a whole registry at once;
- stamps.py: RQ's timestamps, read as the job hashes' answers arrive (floats from then on);
- histograms.py: the jobs found ended as counters and histograms (with the func label).

Exception classes (rq_exporter_ng/concerns/exception_classes.py) are a concern of their own that
takes this one's result.
"""
