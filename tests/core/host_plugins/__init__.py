"""Small plugins for the plugin host's tests: a wrapper, a failing plugin, an optional hook."""
