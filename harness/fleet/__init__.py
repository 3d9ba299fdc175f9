"""A device lab from one controller (issue 18): an inventory of devices reached over ssh, adb or
locally, each running `python -m harness` itself on its share of a matrix's cells; records pulled
incrementally to the controller and merged into one report. `--engine ray` drives the same
devices as Ray actors when one controller host is not enough.

Rooms: inventory (fleet.yaml), transports/ (local, ssh, adb), device (what runs on the device),
session (one device as the controller sees it), pull (incremental mirrors), plan (queues, journal,
fleet folder), engine (in-process scheduler and the command), ray_engine, setup.
"""
