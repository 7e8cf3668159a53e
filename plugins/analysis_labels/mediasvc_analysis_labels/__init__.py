"""mediasvc image labels (ImageNet-1k) with EfficientNet-Lite0 on onnxruntime."""
