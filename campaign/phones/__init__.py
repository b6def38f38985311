"""Phone numbers: E.164 normalisation, validity, type, timezones and US state."""
