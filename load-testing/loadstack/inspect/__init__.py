"""Non-destructive inspection of RabbitMQ queues and Redis keyspaces (``loadstack inspect``)."""
