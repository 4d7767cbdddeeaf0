"""The pure optimization core: scenario model, devices, LP building, solving, Plan."""
