"""A stand-in regulation plugin for the pipeline benchmark: it lets every message through.

The benchmark measures the pipeline, at any hour: France's own rules would defer its
campaigns outside 08:00-20:00 and on Sundays, and refuse them to patients without consent.
A country needs a regulation plugin enabled before non-essential messages may leave (fail
closed); this one answers no hook, so every message is allowed.
"""

kind = "regulation"
