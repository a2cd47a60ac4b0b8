"""Hook data types, one module per hook family."""
