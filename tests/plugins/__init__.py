"""Plugins the executor tests load, written as the plugin reference page teaches."""
