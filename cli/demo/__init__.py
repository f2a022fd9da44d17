"""``netpulse demo``: the whole product on the embedded stack, with a simulated network and its tooling."""
