"""Built-in plugins: channels, country regulations and features, loaded like third-party ones."""
