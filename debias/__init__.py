"""De-biasing training options: batch transforms and loss terms chosen in the config (see docs/DEVELOPING.md)."""
