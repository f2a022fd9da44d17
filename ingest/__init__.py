"""Probers, the simulated fleet and the bulk loader: everything that turns the network into rows."""
