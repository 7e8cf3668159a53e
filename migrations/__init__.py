"""The core's Piccolo migrations, shipped as package data (see mediasvc.piccolo_app)."""
