"""SceneMotion generator (placeholder until its module lands)."""
