"""HTML reports: per participant (figures of maps, registration, synthesis) and per group."""
