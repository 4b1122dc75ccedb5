"""Training: fit, weightings, tasks and their metrics, and the problem (data + backbone) a trial trains on."""
