"""DVP CMS: the parts the scheduler needs (the plugin API of scheduled tasks)."""
