"""mediasvc text in images (OCR) with RapidOCR (PP-OCR) on onnxruntime."""
