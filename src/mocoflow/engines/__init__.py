"""Generation engines: one interface over backends, with a response cache and cost accounting."""
