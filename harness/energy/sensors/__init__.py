"""One module per sensor; each exposes `create(config, estimate_params) -> Sensor`."""
