"""Reading inputs: CRM exports as records that keep their physical lines."""
