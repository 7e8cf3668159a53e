"""mediasvc image moderation (NSFW score) with open_nsfw on onnxruntime."""
