"""The loadstack demo platform: the built-in system under test (``loadstack demo serve``)."""
