"""The ground floor: errors meant for the user and the name registries. Imports nothing of the project."""
