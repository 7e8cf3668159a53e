"""mediasvc video processors."""
