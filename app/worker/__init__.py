"""The worker: its own OS process, the only owner of the devices, one job at a time."""
