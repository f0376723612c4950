"""The builders the composition root (`interfaces.bootstrap`) calls, by what they wire."""
