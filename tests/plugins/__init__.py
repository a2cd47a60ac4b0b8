"""Plugins the tests load, written as the plugin reference page teaches: its import paths,
class and field names, and the three hooks."""
