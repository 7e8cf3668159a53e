"""mediasvc image and PDF processors."""
