"""Generators that drive a model API directly: the tool loop, its tools, OpenAI and Anthropic."""
